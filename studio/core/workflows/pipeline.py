"""The headless end-to-end flow: inspect -> quantise -> compile -> profile -> report.

What ``npu-studio pipeline MODEL -o DIR`` (and ``make run`` without a display) does. Each stage
uses the same core calls as its own command; native work (compile, profile) runs in worker
processes. When HTP cannot be used (no QNN, compile refused) the profile runs on the CPU and the
report says so; nothing is presented as an HTP figure unless HTP produced it.

Writes into DIR: ``inspect.json``, ``model_qdq.onnx`` (unless the model was already quantised),
``bundle/`` (when compiled), ``profile_<backend>.json`` per profiled run, ``report.html`` and
``pipeline.json`` (every stage: status, seconds, outputs, notes; ``schema_version``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json
from studio.core.errors import BackendUnavailableError, JobFailedError, StudioError
from studio.core.jobs.protocol import JobContext, job_kind, run_inline
from studio.core.model.graph import ModelGraph
from studio.core.profiling.job import profile_model
from studio.core.profiling.records import ProfileRun
from studio.core.profiling.suggestions import suggest
from studio.core.toolchain.jobs import compile_bundle
from studio.core.workflows.report import write_report

SCHEMA_VERSION = 1
Runner = Callable[[str, dict[str, Any], JobContext], dict[str, Any]]


def _worker_runner(kind: str, request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from studio.core.jobs.client import run_in_worker

    return run_in_worker(kind, request, ctx)


def _inline_runner(kind: str, request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from studio.core.jobs.protocol import resolve_job

    return run_inline(resolve_job(kind), request, ctx)


class _Stages:
    """Records each stage's status, duration and outputs into pipeline.json as it goes."""

    def __init__(self, path: Path, model: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "model": model,
            "stages": {},
            "notes": [],
        }

    def done(self, name: str, started: float, **outputs: Any) -> None:
        self.data["stages"][name] = {
            "status": "ok",
            "elapsed_s": time.perf_counter() - started,
            **outputs,
        }
        self.save()

    def skipped(self, name: str, reason: str) -> None:
        self.data["stages"][name] = {"status": "skipped", "reason": reason}
        self.note(f"{name}: {reason}")

    def note(self, text: str) -> None:
        self.data["notes"].append(text)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def _quantize(
    model: Path, out: Path, calib: str | None, act_bits: int, shapes: Any, ctx: JobContext
) -> tuple[Path, dict[str, Any]]:
    from studio.core.calibration.collect import calibrate
    from studio.core.quantize import QuantPlan, build_qdq

    data = calib or "random:16"
    stats = calibrate(
        model, data, input_shapes=shapes, cache_dir=out / "calibration_cache", ctx=ctx
    )
    plan = QuantPlan(activation_bitwidth=act_bits)
    result = build_qdq(stats, plan, out / "model_qdq.onnx", ctx=ctx)
    widths: dict[str, int] = {}
    for bits in result.activation_bitwidths.values():
        widths[f"{bits}-bit"] = widths.get(f"{bits}-bit", 0) + 1
    summary = {
        "calibration data": data,
        "samples": stats.num_samples,
        "method": plan.method,
        "activation bitwidth": plan.activation_bitwidth,
        "weight bitwidth": plan.weight_bitwidth,
        "per-channel weights": plan.per_channel,
        "activations by width": widths,
        "tensors left in float": result.float_tensors,
        "warnings": list(result.warnings),
    }
    return Path(result.qdq_path), summary


def run_pipeline(
    model: str | Path,
    out_dir: str | Path,
    *,
    calib: str | None = None,
    act_bits: int = 8,
    runs: int = 50,
    warmup: int = 5,
    input_shapes: dict[str, list[int]] | None = None,
    compare_cpu: bool = True,
    ctx: JobContext | None = None,
    in_worker: bool = True,
) -> dict[str, Any]:
    """Run every stage into ``out_dir``; returns the content of pipeline.json."""
    ctx = ctx or JobContext()
    runner: Runner = _worker_runner if in_worker else _inline_runner
    src = Path(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = _Stages(out / "pipeline.json", str(src))

    t = time.perf_counter()
    ctx.stage = "inspect"
    graph = ModelGraph.load(src, input_shapes=input_shapes)
    summary = graph.summary()
    atomic_write_json(out / "inspect.json", summary)
    st.done("inspect", t, output=str(out / "inspect.json"), nodes=summary["node_count"])

    from studio.core.engine.config import is_quantized_model

    t = time.perf_counter()
    ctx.stage = "quantize"
    quant: dict[str, Any]
    if is_quantized_model(src):
        qdq, quant = src, {"note": "the model was already quantised (QDQ); used as it is"}
        st.skipped("quantize", "model already quantised")
    else:
        qdq, quant = _quantize(src, out, calib, act_bits, input_shapes, ctx)
        if not calib:
            st.note("quantize: calibrated on random data (no --calib): accuracy is not meaningful")
        st.done("quantize", t, output=str(qdq), summary=quant)

    t = time.perf_counter()
    ctx.stage = "compile"
    bundle: Path | None = out / "bundle"
    assignment: dict[str, Any] = {}
    try:
        compiled = runner(
            job_kind(compile_bundle),
            {
                "model": str(qdq),
                "backend": "htp",
                "output": str(bundle),
                "input_shapes": input_shapes,
            },
            ctx,
        )
        offload = compiled.get("offload") or {}
        assignment = {
            "backend": "htp",
            "fully offloaded": offload.get("full_offload"),
            "nodes left on CPU": [n.get("name") for n in offload.get("cpu_nodes", [])],
        }
        st.done("compile", t, output=str(bundle), offload=offload, verify=compiled.get("verify"))
    except (BackendUnavailableError, JobFailedError) as exc:
        bundle = None
        st.skipped("compile", f"HTP compile not possible here: {exc}")

    t = time.perf_counter()
    ctx.stage = "profile"
    request = {"runs": runs, "warmup": warmup, "input_shapes": input_shapes}
    runs_done: list[ProfileRun] = []
    main_req = dict(request, model=str(bundle or qdq), backend="htp", label="HTP (compiled)")
    try:
        main = ProfileRun.from_json(runner(job_kind(profile_model), main_req, ctx))
    except (BackendUnavailableError, JobFailedError) as exc:
        st.note(f"profile: HTP unavailable ({exc}); profiled on the CPU instead")
        cpu_req = dict(request, model=str(qdq), backend="cpu", label="CPU (QDQ model)")
        main = ProfileRun.from_json(runner(job_kind(profile_model), cpu_req, ctx))
        main.notes.insert(0, "HTP was not available: this run is on the CPU, not on HTP")
    runs_done.append(main)
    if compare_cpu and not (main.backend == "cpu" and qdq == src):
        base_req = dict(request, model=str(src), backend="cpu", label="CPU (original model)")
        try:
            runs_done.append(ProfileRun.from_json(runner(job_kind(profile_model), base_req, ctx)))
        except StudioError as exc:
            st.note(f"profile: CPU baseline of the original model failed: {exc}")
    paths = []
    for run in runs_done:
        path = out / f"profile_{run.backend}_{run.id}.json"
        run.save(path)
        paths.append(str(path))
    st.done("profile", t, outputs=paths, backend=main.backend, mean_ms=main.stats.mean_ms)

    t = time.perf_counter()
    ctx.stage = "report"
    mapped = main.options.get("layers_mapped_to") or main.model_path
    report_graph = ModelGraph.load(mapped, input_shapes=input_shapes)
    items = suggest(main, report_graph)
    write_report(
        out / "report.html",
        runs_done,
        report_graph,
        title=f"{graph.name}: from ONNX to {main.backend.upper()}",
        quantization=quant,
        assignment=assignment or None,
        suggestions=items,
    )
    st.done("report", t, output=str(out / "report.html"), suggestions=len(items))
    ctx.progress(1.0, f"report written: {out / 'report.html'}")
    return st.data
