"""Jobs for the GUI and the worker: SQNR analysis and automatic mixed precision.

Requests are JSON dicts (paths, options); results are the dataclasses' ``to_json``. The speed
axis of the mixed-precision curve: ``"cycles": "htp"`` measures every point's accelerator cycles
on QNN HTP (:func:`studio.core.profiling.cycles.htp_total_cycles`); a custom profiler may instead
be named as ``"profile_fn": "studio.core.<module>:<function>"`` (resolved only inside
studio.core, never arbitrary code) taking the QDQ path and returning cycles. Either opens QNN
sessions, so the UI sends such a request to the worker process.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from studio.core.accuracy.automp import auto_mixed_precision
from studio.core.accuracy.sqnr import Analyser
from studio.core.calibration import CalibrationSource, CalibrationStats, Preprocess
from studio.core.calibration.collect import load_fixed, model_inputs
from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext, job
from studio.core.quantize import QuantPlan

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


def _profile_fn(name: str | None):
    if not name:
        return None
    module_name, sep, func = str(name).partition(":")
    if not sep or not module_name.startswith("studio.core.") or not func.isidentifier():
        raise BadInputError(f"profile_fn '{name}' must be 'studio.core.<module>:<function>'")
    try:
        return getattr(importlib.import_module(module_name), func)
    except (ImportError, AttributeError) as exc:
        raise BadInputError(f"profile_fn '{name}' not found: {exc}") from exc


CYCLES_SOURCES = ("htp",)


def _cycles_fn(request: dict[str, Any]):
    """The per-point profiler the request asks for (None: the curve carries no cycles)."""
    cycles = request.get("cycles")
    if not cycles:
        return _profile_fn(request.get("profile_fn"))
    if cycles not in CYCLES_SOURCES:
        raise BadInputError(
            f"auto-MP request: 'cycles' must be one of {', '.join(CYCLES_SOURCES)} (got {cycles!r})"
        )
    if request.get("profile_fn"):
        raise BadInputError("auto-MP request: give 'cycles' or 'profile_fn', not both")
    from studio.core.profiling.cycles import htp_total_cycles

    return htp_total_cycles


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
def auto_mp_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"stats_dir", "plan"?, "data", "out", "target_db", "max_steps"?, "step_size"?,
    "max_promoted"?, "samples"?, "cycles"? ("htp"), "profile_fn"?, "backend"?}``."""
    profile_fn = _cycles_fn(request)  # a bad request fails before any work
    stats = CalibrationStats.load(request["stats_dir"])
    plan = QuantPlan.from_json(request["plan"]) if request.get("plan") else QuantPlan()
    feeds = load_feeds(
        str(stats.prepared_model),
        request["data"],
        preprocess=Preprocess.from_json(request.get("preprocess")),
        limit=int(request.get("samples", DEFAULT_EVAL_SAMPLES)),
    )
    result = auto_mixed_precision(
        stats,
        plan,
        feeds,
        request["out"],
        target_db=float(request["target_db"]),
        max_steps=int(request.get("max_steps", 10)),
        step_size=int(request.get("step_size", 1)),
        max_promoted=request.get("max_promoted"),
        profile_fn=profile_fn,
        backend=str(request.get("backend", "cpu")),
        ctx=ctx,
    )
    return result.to_json()


@job
def techniques_build_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"stats_dir", "plan"?, "data", "out", "techniques": "auto" | "cle,...", "device"?}``:
    build the QDQ model with post-training techniques (the GUI's Build QDQ), then check full
    offload on the target. Calibration samples fit the techniques; ``auto`` scores candidates
    on samples drawn apart from them when the data is random, else on calibration samples
    (labelled so in ``data_label``)."""
    from studio.core.accuracy.split import calibration_label
    from studio.core.accuracy.techniques import choose_techniques, run_techniques
    from studio.core.calibration import calibrate
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
