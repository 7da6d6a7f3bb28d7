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

from studio.core.accuracy.jobs import analyse_job
from studio.core.atomic import atomic_write_json
from studio.core.calibration.samples import default_calibration_source, heldout_source
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
    from studio.core.quantize import QuantPlan
    from studio.core.workflows.quantize import QuantizeRequest, quantize_model

    data = calib or default_calibration_source(model)[0]  # the model's samples, else random
    request = QuantizeRequest(
        model=str(model),
        output=str(out / "model_qdq.onnx"),
        calib=data,
        plan=QuantPlan(activation_bitwidth=act_bits),
        input_shapes=shapes,
        cache_dir=str(out / "calibration_cache"),
        sqnr=False,  # the pipeline reports the profile; SQNR is the quantize command's
    )
    outcome = quantize_model(request, ctx)
    stats, plan, result = outcome.stats, outcome.plan, outcome.built
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


def _precision(quant: dict[str, Any]) -> tuple[str, str]:
    if "activation bitwidth" not in quant:
        return "as given (QDQ)", quant.get("note", "")
    widths = quant.get("activations by width") or {}
    mixed = len(widths) > 1
    text = f"W{quant['weight bitwidth']}A{quant['activation bitwidth']}" + (
        " mixed" if mixed else ""
    )
    detail = ", ".join(f"{v} × {k}" for k, v in widths.items()) + (
        " activations; per-channel weights" if quant.get("per-channel weights") else ""
    )
    return text, detail


def headline(
    src: Path,
    qdq: Path,
    bundle: Path | None,
    *,
    quant: dict[str, Any],
    offload: dict[str, Any],
    sqnr: dict[str, Any] | None,
    eval_data: str,
    device: Any = None,
) -> dict[str, Any]:
    """The report's headline: each figure with its kind (estimated, measured, emulated, none).

    The on-device latency and the speed-up come from the device model
    (``studio.core.devices.estimate``) for the target device, never from the x86 emulator's
    wall time; without a device model they are shown as not available, not guessed.
    """
    from studio.core.workflows.summary import folder_size

    precision, precision_detail = _precision(quant)
    h: dict[str, Any] = {
        "model": src.name,
        "model_detail": f"{ModelGraph.load(src).summary().get('node_count', '?')} nodes",
        "precision": precision,
        "precision_detail": precision_detail,
        "warnings": [],
    }
    try:
        from studio.core.devices.catalogue import resolve_device
        from studio.core.devices.estimate import estimate_model

        dev = resolve_device(device)
        h["device"] = dev.name
        h["device_detail"] = f"{dev.chipset}, HTP v{dev.htp_arch}, soc_model {dev.soc_model}"
        quantised = estimate_model(qdq, dev)
        h["latency"] = {"ms": quantised.total_ms, "kind": "estimated", "label": quantised.label}
        if qdq != src:
            floating = estimate_model(src, dev)
            h["speedup"] = {
                "ratio": floating.total_ms / quantised.total_ms if quantised.total_ms else None,
                "kind": "estimated",
                "label": f"float ({floating.precision}) ≈{floating.total_ms:.3g} ms vs "
                f"{quantised.precision} ≈{quantised.total_ms:.3g} ms on {dev.name}",
            }
        if quantised.median_abs_rel_err is None:
            h["warnings"].append(
                f"device estimate for {dev.name}: its error is not measured for this device"
            )
    except StudioError as exc:
        h["device"] = "none"
        h["latency"] = {"kind": "none", "label": f"no device estimate: {exc}"}
    if "speedup" not in h:
        h["speedup"] = {"kind": "none", "label": "needs a float and a quantised device figure"}
    if sqnr:
        h["sqnr"] = {
            "db": _as_db(sqnr.get("output_sqnr_db")),
            "kind": "measured" if not eval_data.startswith("random:") else "assumed",
            "label": f"{sqnr.get('samples')} held-out sample(s) ({Path(eval_data).name}), "
            f"{str(sqnr.get('backend', 'cpu')).upper()} QDQ vs float",
        }
    else:
        h["sqnr"] = {"kind": "none", "label": "not measured"}
    if offload:
        fallback = [n for n in offload.get("nodes left on CPU", []) if n]
        h["placement"] = {
            "full": bool(offload.get("fully offloaded")),
            "fallback": fallback,
            "detail": "every compute node compiled for HTP by the real QNN compiler"
            + "; graph-input quantise / output dequantise may run on the CPU (see warnings)",
        }
    else:
        h["placement"] = {"full": None, "detail": "not compiled for HTP here"}
    binaries = bundle / "context_binaries" if bundle is not None else None
    if binaries is not None and binaries.is_dir():
        after, what = folder_size(binaries), "float ONNX vs the HTP context binary the device loads"
    else:
        after, what = folder_size(qdq), "float ONNX vs QDQ ONNX"
    h["size"] = {
        "before": folder_size(src),
        "after": after if qdq != src or bundle is not None else None,
        "detail": what,
    }
    return h


def _as_db(value: Any) -> float | None:
    if value == "inf":
        return float("inf")
    return float(value) if isinstance(value, (int, float)) else None


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
    graph = _inspect_stage(src, out, input_shapes, st, ctx)
    qdq, quant = _quantize_stage(src, out, calib, act_bits, input_shapes, st, ctx)
    bundle, assignment = _compile_stage(qdq, out, input_shapes, runner, st, ctx)
    sqnr, eval_data = _accuracy_stage(src, qdq, out, input_shapes, runner, st, ctx)
    request = {"runs": runs, "warmup": warmup, "input_shapes": input_shapes}
    runs_done = _profile_stage(src, qdq, bundle, out, request, compare_cpu, runner, st, ctx)
    head = headline(
        src, qdq, bundle, quant=quant, offload=assignment, sqnr=sqnr, eval_data=eval_data
    )
    _report_stage(
        graph, runs_done, out, input_shapes, quant, assignment, head, sqnr, eval_data, st, ctx
    )
    return st.data


def _inspect_stage(src: Path, out: Path, shapes: Any, st: _Stages, ctx: JobContext) -> ModelGraph:
    t = time.perf_counter()
    ctx.stage = "inspect"
    graph = ModelGraph.load(src, input_shapes=shapes)
    summary = graph.summary()
    atomic_write_json(out / "inspect.json", summary)
    st.done("inspect", t, output=str(out / "inspect.json"), nodes=summary["node_count"])
    return graph


def _quantize_stage(
    src: Path,
    out: Path,
    calib: str | None,
    act_bits: int,
    shapes: Any,
    st: _Stages,
    ctx: JobContext,
) -> tuple[Path, dict[str, Any]]:
    """The QDQ model (the input itself when it is already quantised) and its summary."""
    from studio.core.model.ops import is_quantized_model

    t = time.perf_counter()
    ctx.stage = "quantize"
    if is_quantized_model(src):
        st.skipped("quantize", "model already quantised")
        return src, {"note": "the model was already quantised (QDQ); used as it is"}
    qdq, quant = _quantize(src, out, calib, act_bits, shapes, ctx)
    if str(quant["calibration data"]).startswith("random:"):
        st.note("quantize: calibrated on random data (no --calib): accuracy is not meaningful")
    st.done("quantize", t, output=str(qdq), summary=quant)
    return qdq, quant


def _compile_stage(
    qdq: Path, out: Path, shapes: Any, runner: Runner, st: _Stages, ctx: JobContext
) -> tuple[Path | None, dict[str, Any]]:
    """The HTP bundle (None where HTP cannot compile here) and what it offloads."""
    t = time.perf_counter()
    ctx.stage = "compile"
    bundle = out / "bundle"
    try:
        compiled = runner(
            job_kind(compile_bundle),
            {"model": str(qdq), "backend": "htp", "output": str(bundle), "input_shapes": shapes},
            ctx,
        )
    except (BackendUnavailableError, JobFailedError) as exc:
        st.skipped("compile", f"HTP compile not possible here: {exc}")
        return None, {}
    offload = compiled.get("offload") or {}
    assignment = {
        "backend": "htp",
        "fully offloaded": offload.get("full_offload"),
        "nodes left on CPU": [n.get("name") for n in offload.get("cpu_nodes", [])],
    }
    st.done("compile", t, output=str(bundle), offload=offload, verify=compiled.get("verify"))
    return bundle, assignment


def _accuracy_stage(
    src: Path, qdq: Path, out: Path, shapes: Any, runner: Runner, st: _Stages, ctx: JobContext
) -> tuple[dict[str, Any] | None, str]:
    """Output and per-layer SQNR of the QDQ model against float on the held-out samples the
    model ships (random inputs otherwise, said so), and the data it used."""
    t = time.perf_counter()
    ctx.stage = "accuracy"
    sqnr: dict[str, Any] | None = None
    held = heldout_source(src)
    eval_data = held or "random:8"
    if qdq == src:
        st.skipped("accuracy", "no float model to compare against (the input was already QDQ)")
        return None, eval_data
    try:
        sqnr = runner(
            job_kind(analyse_job),
            {
                "float_model": str(src),
                "qdq_model": str(qdq),
                "data": eval_data,
                "backend": "cpu",
                "input_shapes": shapes,
            },
            ctx,
        )
    except StudioError as exc:
        st.skipped("accuracy", f"SQNR analysis failed: {exc}")
        return None, eval_data
    atomic_write_json(out / "sqnr.json", sqnr)
    st.done(
        "accuracy",
        t,
        output=str(out / "sqnr.json"),
        data=eval_data,
        output_sqnr_db=sqnr.get("output_sqnr_db"),
    )
    if not held:
        st.note("accuracy: measured on random inputs (the model ships no held-out samples)")
    return sqnr, eval_data


def _profile_stage(
    src: Path,
    qdq: Path,
    bundle: Path | None,
    out: Path,
    request: dict[str, Any],
    compare_cpu: bool,
    runner: Runner,
    st: _Stages,
    ctx: JobContext,
) -> list[ProfileRun]:
    """The compiled model on HTP (the CPU when HTP is missing), then the float CPU baseline."""
    t = time.perf_counter()
    ctx.stage = "profile"
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
    return runs_done


def _report_stage(
    graph: ModelGraph,
    runs_done: list[ProfileRun],
    out: Path,
    shapes: Any,
    quant: dict[str, Any],
    assignment: dict[str, Any],
    head: dict[str, Any],
    sqnr: dict[str, Any] | None,
    eval_data: str,
    st: _Stages,
    ctx: JobContext,
) -> None:
    from studio.core.workflows.about import about_facts

    t = time.perf_counter()
    ctx.stage = "report"
    main = runs_done[0]
    mapped = main.options.get("layers_mapped_to") or main.model_path
    report_graph = ModelGraph.load(mapped, input_shapes=shapes)
    items = suggest(main, report_graph)
    write_report(
        out / "report.html",
        runs_done,
        report_graph,
        title=f"{graph.name}: from ONNX to {main.backend.upper()}",
        quantization=quant,
        assignment=assignment or None,
        suggestions=items,
        headline=head,
        accuracy=sqnr,
        accuracy_source=eval_data,
        warnings=[n for n in st.data["notes"] if not n.startswith("profile: HTP unavailable")]
        + head.pop("warnings", []),
        facts=about_facts(),
    )
    st.done("report", t, output=str(out / "report.html"), suggestions=len(items))
    ctx.progress(1.0, f"report written: {out / 'report.html'}")
