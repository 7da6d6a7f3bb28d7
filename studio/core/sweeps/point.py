"""One sweep point: the same core jobs the worker runs for a single model, in one process.

calibrate (cached per node by model + data hash) -> build the QDQ model from the point's plan ->
output SQNR on the held-out evaluation data -> compile for QNN HTP (EPContext; does HTP take the
whole graph?) -> the target device's latency estimate -> a short HTP profile whose record is the
ordinary :class:`~studio.core.profiling.records.ProfileRun` the Profiling workspace opens.

Nothing here is specific to Ray: :func:`sweep_point` is an ``@job`` the engine runs with
``run_in_worker`` on whichever node Ray chose, so a native crash takes down that process only and
comes back as a JobFailedError naming the signal. A refusal by QNN (a compile that fails, a graph
not fully on HTP) is a result, not a crash: the point keeps the figures it has and says why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.jobs.protocol import JobContext, job


def _provider_options(params: dict[str, Any], device: Any) -> dict[str, str]:
    """The QNN EP options of the point: its performance mode and the target's architecture."""
    return {
        "htp_performance_mode": str(params.get("perf_mode") or "burst"),
        **device.provider_options(),
    }


def estimate(model: str, device: Any) -> dict[str, Any]:
    """The device model's latency estimate of ``model`` on ``device`` (cached by content hash),
    without its per-node breakdown (the estimate view recomputes that from the cache)."""
    from studio.core.devices.estimate import estimate_model

    data = estimate_model(model, device).to_json()
    data.pop("nodes", None)
    return data


@job
def sweep_point(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"model", "calib", "eval", "params", "options", "work_dir", "cache_dir"}`` (node-local
    paths) -> ``{"row": figures, "plan": QuantPlan JSON, "profile": ProfileRun JSON | None,
    "stages_s": {...}, "error": None | {...}}``."""
    from studio.core.accuracy.jobs import load_feeds
    from studio.core.accuracy.sqnr import Analyser
    from studio.core.calibration import calibrate
    from studio.core.quantize import QuantPlan, build_qdq

    params = dict(request["params"])
    options = dict(request.get("options") or {})
    work = Path(request["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    row: dict[str, Any] = {}
    notes: list[str] = []

    def stage(name: str) -> float:
        ctx.stage = name
        ctx.progress(0.0, name)
        return time.perf_counter()

    t = stage("calibrate")
    stats = calibrate(request["model"], request["calib"], cache_dir=request["cache_dir"], ctx=ctx)
    notes.extend(stats.warnings)
    stages["calibrate"] = time.perf_counter() - t
    ctx.check_cancelled()

    t = stage("quantize")
    plan = QuantPlan(
        activation_bitwidth=int(params["act_bw"]),
        weight_bitwidth=int(params["weight_bw"]),
        per_channel=bool(params["per_channel"]),
        method=str(params["method"]),
        percentile=float(params["percentile"]),
    )
    techniques = list(params.get("techniques") or [])
    if techniques:  # only names the quantiser's registry lists get this far (spec.py)
        plan.techniques = techniques  # type: ignore[attr-defined]
    qdq = work / "model_qdq.onnx"
    built = build_qdq(stats, plan, qdq, ctx=ctx)
    notes.extend(built.warnings)
    row["size_bytes"] = qdq.stat().st_size
    row["wide_tensors"] = len(built.wide_tensors)
    stages["quantize"] = time.perf_counter() - t
    ctx.check_cancelled()

    t = stage("sqnr")
    feeds = load_feeds(str(stats.prepared_model), request["eval"], limit=None)
    backend = str(options.get("sqnr_backend", "cpu"))
    report = Analyser(stats.prepared_model, cache_float=False).analyse(qdq, feeds, backend=backend)
    sq = report.to_json()
    row["sqnr_db"] = sq["output_sqnr_db"]
    row["sqnr_backend"] = backend
    row["sqnr_samples"] = report.samples
    stages["sqnr"] = time.perf_counter() - t
    ctx.check_cancelled()

    from studio.core.devices.catalogue import resolve_device

    device = resolve_device(params.get("device"))  # None: the studio's default target
    row["device"] = device.name
    row["htp_arch"] = device.htp_arch
    error: dict[str, Any] | None = None
    t = stage("compile")
    bundle = work / "bundle"
    try:
        from studio.core.toolchain.compile import compile_model

        compiled = compile_model(
            qdq, bundle, backend="htp", provider_options=_provider_options(params, device), ctx=ctx
        )
        offload = compiled.get("offload") or {}
        row["fully_on_htp"] = bool(offload.get("full_offload"))
        row["cpu_nodes"] = [n.get("name") for n in offload.get("cpu_nodes", [])]
        row["bundle_bytes"] = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    except StudioError as exc:  # QNN refused the graph: the point keeps its accuracy figures
        row["fully_on_htp"] = False
        error = {"stage": "compile", "kind": type(exc).__name__, "message": str(exc)}
        bundle = None  # type: ignore[assignment]
    stages["compile"] = time.perf_counter() - t
    ctx.check_cancelled()

    t = stage("estimate")
    try:
        est = estimate(str(qdq), device)
        row["estimated_ms"] = est["total_ms"]
        row["estimate_label"] = est.get("label")
        row["estimate_error"] = est.get("median_abs_rel_err")
    except StudioError as exc:
        row["estimated_ms"] = None
        error = error or {"stage": "estimate", "kind": type(exc).__name__, "message": str(exc)}
    row["measured_ms"] = None  # only on real hardware (not reachable from an x86-64 host)
    stages["estimate"] = time.perf_counter() - t

    profile: dict[str, Any] | None = None
    runs = int(options.get("profile_runs", 0))
    if bundle is not None and runs > 0:
        t = stage("profile")
        from studio.core.profiling.job import profile_model

        try:
            profile = profile_model(
                {
                    "model": str(bundle),
                    "backend": "htp",
                    "runs": runs,
                    "warmup": 1,
                    "label": request.get("label") or "sweep point",
                },
                ctx,
            )
            row["emulated_ms"] = profile["stats"]["p50_ms"]
        except StudioError as exc:
            error = error or {"stage": "profile", "kind": type(exc).__name__, "message": str(exc)}
        stages["profile"] = time.perf_counter() - t
    ctx.progress(1.0, "point done")
    return {
        "row": row,
        "plan": plan.to_json(),
        "calibration": {"stats_dir": str(stats.folder), "samples": stats.num_samples},
        "device": device.to_json(),
        "profile": profile,
        "stages_s": stages,
        "notes": list(dict.fromkeys(notes)),
        "error": error,
    }
