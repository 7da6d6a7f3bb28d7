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
def techniques_build_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"stats_dir", "plan"?, "data", "out", "techniques": "auto" | "cle,...", "device"?}``:
    build the QDQ model with post-training techniques (the GUI's Build QDQ), then check full
    offload on the target. Calibration samples fit the techniques; ``auto`` scores candidates
    on samples drawn apart from them when the data is random, else on calibration samples
    (labelled so in ``data_label``)."""
    from studio.core.accuracy.split import calibration_label
    from studio.core.accuracy.techniques import choose_techniques, run_techniques
    from studio.core.calibration import CalibrationStats, calibrate
    from studio.core.quantize import QuantPlan
    from studio.core.quantize.build import build_qdq, check_htp_offload
    from studio.core.quantize.techniques import parse_techniques

    names = parse_techniques(request.get("techniques"))
    stats = CalibrationStats.load(request["stats_dir"])
    plan = QuantPlan.from_json(request["plan"]) if request.get("plan") else QuantPlan()
    data = request["data"]
    calib_feeds = load_feeds(str(stats.prepared_model), data, limit=16, seed=0)
    eval_feeds = load_feeds(str(stats.prepared_model), data, limit=DEFAULT_EVAL_SAMPLES)

    def recalibrate(path: str):
        return calibrate(path, data)

    common = {"calib_feeds": calib_feeds, "eval_feeds": eval_feeds, "recalibrate": recalibrate}
    ctx.progress(0.05, "applying post-training techniques")
    if names == "auto":
        run, tried = choose_techniques(stats, plan, request["out"], log=ctx.log, **common)
    else:
        run, tried = run_techniques(stats, plan, list(names), request["out"], **common), []
    built = build_qdq(run.stats, run.plan, request["out"], model=run.technique.model)
    result = built.to_json()
    summary = run.summary()
    summary["tried"] = tried
    summary["data_label"] = calibration_label(data, len(eval_feeds))
    result["techniques"] = summary
    ok, reason = check_htp_offload(built.qdq_path, request.get("device"))
    result["htp_full_offload"] = {"ok": ok, "reason": reason}
    return result


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
