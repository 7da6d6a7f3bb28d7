"""Jobs for the GUI and the worker: SQNR analysis, and the evaluation feeds every accuracy job reads.

Requests are JSON dicts (paths, options); results are the dataclasses' ``to_json``. The
auto-mixed-precision job measures cycles with the profiler, so it stands one layer up, in
:mod:`studio.core.workflows.automix`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.core.accuracy.sqnr import Analyser
from studio.core.calibration import CalibrationSource, Preprocess
from studio.core.calibration.collect import load_fixed, model_inputs
from studio.core.jobs.protocol import JobContext, job

DEFAULT_EVAL_SAMPLES = 8


def load_feeds(
    model: str,
    data: str,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    preprocess: Preprocess | None = None,
    limit: int | None = DEFAULT_EVAL_SAMPLES,
    seed: int = 1,
) -> list[dict[str, np.ndarray]]:
    """Evaluation samples for ``model`` from a calibration-style source (checked the same way).

    ``random:N`` uses a different seed from calibration's by default, so a random evaluation
    does not score the very samples the ranges were fitted to.
    """
    inputs = model_inputs(load_fixed(model, input_shapes))
    source = CalibrationSource(data, inputs, preprocess, seed=seed, limit=limit)
    return list(source)


@job
def analyse_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"float_model", "qdq_model", "data", "backend"?, "samples"?, "input_shapes"?}``."""
    feeds = load_feeds(
        request["float_model"],
        request["data"],
        input_shapes=request.get("input_shapes"),
        preprocess=Preprocess.from_json(request.get("preprocess")),
        limit=int(request.get("samples", DEFAULT_EVAL_SAMPLES)),
    )
    from studio.core.accuracy.split import calibration_label

    label = request.get("data_label") or calibration_label(request["data"], len(feeds))
    report = Analyser(request["float_model"], cache_float=False).analyse(
        request["qdq_model"],
        feeds,
        backend=request.get("backend", "cpu"),
        ctx=ctx,
        device=request.get("device"),
        data=label,
    )
    return report.to_json()


@job
def sim_vs_htp_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"float_model", "qdq_model", "data", "samples"?, "data_label"?, "device"?,
    "threshold_db"?}``: per-layer SQNR against float on CPU (the simulation) and on the
    target's HTP, with the layers where they part flagged (``simcheck.compare_sim_htp``)."""
    from studio.core.accuracy.simcheck import DEFAULT_THRESHOLD_DB, compare_sim_htp
    from studio.core.accuracy.split import calibration_label

    feeds = load_feeds(
        request["float_model"],
        request["data"],
        limit=int(request.get("samples", DEFAULT_EVAL_SAMPLES)),
    )
    label = request.get("data_label") or calibration_label(request["data"], len(feeds))
    ctx.progress(0.1, "float, CPU simulation and HTP, per layer")
    view = compare_sim_htp(
        request["float_model"],
        request["qdq_model"],
        feeds,
        device=request.get("device"),
        threshold_db=float(request.get("threshold_db", DEFAULT_THRESHOLD_DB)),
        data=label,
    )
    ctx.progress(1.0, f"{len(view.flagged)} layer(s) differ")
    return view.to_json()
