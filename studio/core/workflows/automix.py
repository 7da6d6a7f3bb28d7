"""The auto-mixed-precision job: the accuracy search on the target device's latency estimate,
optionally with the profiler's cycles beside it.

Why in workflows: every point of the curve is scored by accuracy (SQNR) and, with
``"cycles": "htp"``, measured by profiling (:func:`studio.core.profiling.cycles.htp_total_cycles`);
accuracy and profiling are siblings that do not import each other, so the job that joins them
stands above both. A custom profiler may instead be named as
``"profile_fn": "studio.core.<module>:<function>"`` (resolved only inside studio.core, never
arbitrary code) taking the QDQ path and returning cycles. Either opens QNN sessions, so the UI
sends such a request to the worker process.
"""

from __future__ import annotations

import importlib
from typing import Any

from studio.core.accuracy.automp import auto_mixed_precision
from studio.core.accuracy.jobs import DEFAULT_EVAL_SAMPLES, load_feeds
from studio.core.calibration import CalibrationStats, Preprocess
from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext, job
from studio.core.profiling.cycles import htp_total_cycles
from studio.core.quantize import QuantPlan


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
    return htp_total_cycles


@job
def auto_mp_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"stats_dir", "plan"?, "data", "out", "target_db", "max_steps"?, "step_size"?,
    "max_promoted"?, "samples"?, "cycles"? ("htp"), "profile_fn"?, "backend"?,
    "estimate"? (true: every point's estimated ms on the process's target device, and moves
    ranked by it), "latency_budget_ms"?, "techniques"? (["seqmse", "adaround"]),
    "calib_data"? (where techniques are fitted; default ``data``), "rank"? ("gain" or
    "measured"), "refine"? (with "measured": moves re-measured per step)}``."""
    profile_fn = _cycles_fn(request)  # a bad request fails before any work
    budget = request.get("latency_budget_ms")
    if budget is not None and not request.get("estimate"):
        raise BadInputError("auto-MP request: 'latency_budget_ms' needs 'estimate': true")
    stats = CalibrationStats.load(request["stats_dir"])
    plan = QuantPlan.from_json(request["plan"]) if request.get("plan") else QuantPlan()
    feeds = load_feeds(
        str(stats.prepared_model),
        request["data"],
        preprocess=Preprocess.from_json(request.get("preprocess")),
        limit=int(request.get("samples", DEFAULT_EVAL_SAMPLES)),
    )
    techniques = tuple(request.get("techniques") or ())
    technique_feeds = None
    if techniques:
        technique_feeds = load_feeds(
            str(stats.prepared_model),
            request.get("calib_data") or request["data"],
            preprocess=Preprocess.from_json(request.get("preprocess")),
            limit=32,
            seed=0,
        )
    device = None
    if request.get("estimate"):
        from studio.core.devices.catalogue import current_device

        device = current_device()
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
        device=device,
        latency_budget_ms=float(budget) if budget is not None else None,
        techniques=techniques,
        technique_feeds=technique_feeds,
        rank=str(request.get("rank", "gain")),
        refine=int(request.get("refine", 0)),
    )
    return result.to_json()
