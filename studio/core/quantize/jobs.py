"""Job for the GUI and the worker: build the QDQ model from cached stats and a plan."""

from __future__ import annotations

from typing import Any

from studio.core.calibration import CalibrationStats
from studio.core.jobs.protocol import JobContext, job
from studio.core.quantize.build import (
    build_coverage,
    build_qdq,
    check_htp_offload,
    htp_fallbacks,
)
from studio.core.quantize.plan import QuantPlan


@job
def build_qdq_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"stats_dir", "plan"?, "out", "check_htp"?, "device"?}`` -> BuildResult JSON plus encodings
    coverage (and, with ``check_htp``, whether QNN HTP takes the whole model and why not).

    No data and no inference: this is the rebuild after every edit in the editor.
    """
    stats = CalibrationStats.load(request["stats_dir"])
    plan = QuantPlan.from_json(request["plan"]) if request.get("plan") else QuantPlan()
    result = build_qdq(stats, plan, request["out"], ctx=ctx)
    data = result.to_json()
    data["coverage"] = build_coverage(result, stats).to_json()
    if request.get("check_htp"):
        ok, reason = check_htp_offload(result.qdq_path, request.get("device"))
        data["htp_full_offload"] = {"ok": ok, "reason": reason}
    return data


@job
def htp_fallback_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"stats_dir", "plan"?, "out", "device"?}``: build the QDQ model, then which node of it
    would fall back from the target's HTP and QNN's reason, per tensor (``htp_fallbacks``)."""
    stats = CalibrationStats.load(request["stats_dir"])
    plan = QuantPlan.from_json(request["plan"]) if request.get("plan") else QuantPlan()
    result = build_qdq(stats, plan, request["out"], ctx=ctx)
    ctx.progress(0.6, "asking QNN HTP which nodes it takes")
    return {"fallbacks": htp_fallbacks(result.qdq_path, request.get("device"))}
