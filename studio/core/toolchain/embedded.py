"""Embedded compile: a QNN context binary through onnxruntime-qnn's EPContext, with no SDK.

ORT writes an EPContext model (``ep.context_enable=1``) whose node points at a separate ``.bin``
(``ep.context_embed_mode=0``) by a path relative to the model. We write it to a scratch folder,
move it into the bundle as ``context_binaries/htp_context.{onnx,bin}`` and rewrite that reference,
then RE-LOAD the result and run it against the source model on the same inputs: a context binary
that was written but does not load, or computes something else, is a failed compile.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studio.core.errors import BackendUnavailableError, JobFailedError
from studio.core.jobs.protocol import JobContext
from studio.core.toolchain.bundle import CONTEXT_DIR

EP_CONTEXT_OP = "EPContext"


def rewrite_context_refs(model_path: Path, renames: dict[str, str]) -> None:
    """Point EPContext nodes' ``ep_cache_context`` at the renamed .bin files."""
    model = onnx.load(str(model_path))
    for node in model.graph.node:
        if node.op_type != EP_CONTEXT_OP:
            continue
        embed = next((a.i for a in node.attribute if a.name == "embed_mode"), 1)
        for attr in node.attribute:
            if attr.name == "ep_cache_context" and embed == 0:
                old = attr.s.decode("utf-8")
                if old in renames:
                    attr.s = renames[old].encode("utf-8")
    onnx.save(model, str(model_path))


def context_nodes(model_path: str | Path) -> list[dict[str, Any]]:
    """The EPContext nodes of a model: name, the .bin it references, embed mode, SDK version."""
    model = onnx.load(str(model_path), load_external_data=False)
    found = []
    for node in model.graph.node:
        if node.op_type == EP_CONTEXT_OP:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            embed = int(attrs.get("embed_mode", 1))
            ref = attrs.get("ep_cache_context", b"")
            found.append(
                {
                    "name": node.name,
                    "embed_mode": embed,
                    "binary": ref.decode("utf-8")
                    if embed == 0 and isinstance(ref, bytes)
                    else None,
                    "ep_sdk_version": (attrs.get("ep_sdk_version") or b"").decode("utf-8"),
                }
            )
    return found


def compile_embedded(
    model_path: str | Path,
    out_dir: str | Path,
    *,
    backend: str = "htp",
    provider_options: dict[str, str] | None = None,
    session_config: dict[str, str] | None = None,
    ctx: JobContext | None = None,
    verify: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``out_dir/context_binaries/<backend>_context.{onnx,bin}`` and prove they run.

    Returns the offload report, file names and the verification figures (max |difference| between
    the context model and the source model on the backend, and vs the CPU reference).
    """
    ctx = ctx or JobContext()
    src = Path(model_path)
    dest = Path(out_dir) / CONTEXT_DIR
    dest.mkdir(parents=True, exist_ok=True)
    options = dict(provider_options or {})
    report = _offload_stage(src, backend, options, session_config, ctx)
    ctx.check_cancelled()
    result = _compile_stage(src, dest, backend, options, session_config, ctx)
    result["offload"] = report.to_json()
    if not verify:
        return result
    ctx.check_cancelled()
    _verify_stage(
        src,
        Path(result["context_model"]),
        backend,
        options,
        session_config,
        report,
        result,
        seed,
        ctx,
    )
    ctx.progress(1.0, "compiled and verified")
    return result


def _offload_stage(
    src: Path,
    backend: str,
    options: dict[str, str],
    session_config: dict[str, str] | None,
    ctx: JobContext,
) -> Any:
    """Which nodes go to QNN (logged); a backend that cannot build the model at all is an error."""
    from studio.core.engine.offload import offload_report

    ctx.stage = "offload"
    ctx.progress(0.05, "checking which nodes go to QNN")
    report = offload_report(src, backend, provider_options=options, session_config=session_config)
    if report.error:
        raise BackendUnavailableError(f"{backend.upper()} cannot build this model: {report.error}")
    ctx.log(report.summary())
    for node in report.cpu_nodes:
        ctx.log(
            f"  stays on CPU: {node.name} ({node.op_type}){': ' + node.reason if node.reason else ''}"
        )
    return report


def _compile_stage(
    src: Path,
    dest: Path,
    backend: str,
    options: dict[str, str],
    session_config: dict[str, str] | None,
    ctx: JobContext,
) -> dict[str, Any]:
    """Generate the EPContext model and its binaries in a scratch folder, then move them in."""
    from studio.core.engine.sessions import make_session

    ctx.stage = "compile"
    ctx.progress(0.3, "generating the context binary")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="studio-ctx-", dir=dest) as scratch:
        scratch_model = Path(scratch) / f"{backend}_context.onnx"
        config = dict(session_config or {})
        config.update(
            {
                "ep.context_enable": "1",
                "ep.context_file_path": str(scratch_model),
                "ep.context_embed_mode": "0",
            }
        )
        make_session(src, backend, provider_options=options, session_config=config)
        if not scratch_model.is_file():
            raise JobFailedError(
                f"onnxruntime-qnn did not write an EPContext model for {src.name} "
                "(no node was offloaded?)"
            )
        bins = sorted(p for p in Path(scratch).iterdir() if p.suffix == ".bin")
        if not bins:
            raise JobFailedError(f"onnxruntime-qnn wrote no context binary for {src.name}")
        renames = {}
        for index, path in enumerate(bins):
            name = f"{backend}_context.bin" if index == 0 else f"{backend}_context_{index}.bin"
            renames[path.name] = name
            shutil.move(str(path), dest / name)
        rewrite_context_refs(scratch_model, renames)
        final_model = dest / f"{backend}_context.onnx"
        shutil.move(str(scratch_model), final_model)
    compile_s = time.perf_counter() - started
    ctx.log(f"context binary written in {compile_s:.2f} s: {', '.join(renames.values())}")
    return {
        "context_model": str(final_model),
        "context_binaries": [str(dest / n) for n in renames.values()],
        "offload": None,  # filled by the caller (kept first, as the record always had it)
        "compile_s": round(compile_s, 4),
        "context_nodes": context_nodes(final_model),
    }


def _verify_stage(
    src: Path,
    final_model: Path,
    backend: str,
    options: dict[str, str],
    session_config: dict[str, str] | None,
    report: Any,
    result: dict[str, Any],
    seed: int,
    ctx: JobContext,
) -> None:
    """Reload the context model; its outputs must match the source model's on the backend."""
    from studio.core.engine.offload import offload_report
    from studio.core.engine.sessions import make_session, random_inputs

    ctx.stage = "verify"
    ctx.progress(0.7, "re-loading the context binary and comparing outputs")
    # The EPContext model keeps graph-I/O (de)quantize nodes outside the binary, so "full offload"
    # is checked with the same report as the source model, not with CPU fallback disabled.
    ctx_report = offload_report(final_model, backend, provider_options=options, reasons=False)
    if ctx_report.error:
        raise JobFailedError(f"the compiled context model does not load: {ctx_report.error}")
    if report.full_offload and not ctx_report.full_offload:
        raise JobFailedError(
            "the compiled context model leaves nodes on the CPU that the source model did not: "
            + ", ".join(ctx_report.cpu_node_names)
        )
    result["context_offload"] = ctx_report.to_json()
    ctx_sess, _ = make_session(final_model, backend, provider_options=options)
    feeds = random_inputs(ctx_sess, seed=seed)
    got = ctx_sess.run(None, feeds)
    src_sess, _ = make_session(
        src, backend, provider_options=options, session_config=session_config
    )
    want = src_sess.run(None, feeds)
    cpu_sess, _ = make_session(src, "cpu")
    ref = cpu_sess.run(None, feeds)
    names = [o.name for o in ctx_sess.get_outputs()]
    result["verify"] = {
        "inputs": f"random (seed {seed})",
        "outputs": names,
        "max_abs_diff_vs_source_on_backend": _max_diff(got, want),
        "max_abs_diff_vs_cpu": _max_diff(got, ref),
        "output_range": float(max(np.abs(np.asarray(r, dtype=np.float64)).max() for r in ref)),
    }
    ctx.log(
        "verified: context model vs source on {b}: max |diff| {d:.3g}; vs CPU: {c:.3g}".format(
            b=backend.upper(),
            d=result["verify"]["max_abs_diff_vs_source_on_backend"],
            c=result["verify"]["max_abs_diff_vs_cpu"],
        )
    )
    if result["verify"]["max_abs_diff_vs_source_on_backend"] > 1e-5 * max(
        1.0, result["verify"]["output_range"]
    ):
        raise JobFailedError(
            f"the compiled context model computes different outputs from {src.name} on "
            f"{backend.upper()} (max |diff| {result['verify']['max_abs_diff_vs_source_on_backend']:.3g})"
        )


def _max_diff(a: list[Any], b: list[Any]) -> float:
    return float(
        max(
            np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)).max()
            for x, y in zip(a, b, strict=True)
        )
    )
