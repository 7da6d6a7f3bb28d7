"""Toolchain jobs run in the worker process: run inference on a model or bundle, compile a bundle.

Each is a plain ``@job`` function of a JSON request; arrays arrive and leave as ``.npz``/``.npy``
files. They run native QNN code, so callers use ``run_in_worker(job_kind(fn), request)`` (the CLI
and the GUI's JobManager do): a crash of the backend fails the job, not the studio. They sit in
toolchain, not engine, because a bundle (compiled context, SDK chain) is a toolchain thing.

Run request::

    {"model": "m.onnx" | "BUNDLE_DIR", "backend": "htp"|"cpu"|"gpu"|"qnn-cpu"|null,
     "config": "backend_config.json"|null, "inputs": "x.npz"|"DIR"|null, "output": "out.npz"|null,
     "input_shapes": {"x": [1, 3, 224, 224]}, "seed": 0, "allow_cpu_fallback": false,
     "sdk": "QNN_SDK_DIR"|null}
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from studio.core.engine.jobs import existing_path
from studio.core.errors import BackendUnavailableError, BadInputError
from studio.core.jobs.protocol import JobContext, job


def _session_args(request: dict[str, Any], backend: str, model: Path, bundle_opts: dict) -> Any:
    from studio.core.engine.config import SessionArgs, is_quantized_model, load_backend_config

    config = load_backend_config(request.get("config"))
    args: SessionArgs = config.session_args(backend, quantized=is_quantized_model(model))
    if bundle_opts:  # a bundle runs with the options it was compiled with; the file may add more
        merged = dict(bundle_opts.get("provider_options", {}))
        merged.update(args.provider_options)
        args.provider_options = merged
    return args


@job
def run(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Inference on a model or bundle; outputs to ``request['output']`` (.npz) when given."""
    from studio.core.engine.feeds import needs_fixed_shapes, write_fixed_copy
    from studio.core.engine.registry import REGISTRY
    from studio.core.toolchain.compile import resolve_model_or_bundle

    source = existing_path(request.get("model"), "model")
    if request.get("sdk"):
        return _run_with_sdk(request, source, ctx)
    model, bundle_opts = resolve_model_or_bundle(source)
    backend = str(request.get("backend") or bundle_opts.get("backend") or "htp")
    if backend not in REGISTRY:
        raise BadInputError(f"unknown backend '{backend}' (choose one of {', '.join(REGISTRY)})")
    if bundle_opts and backend != bundle_opts.get("backend"):
        raise BadInputError(
            f"this bundle was compiled for {bundle_opts.get('backend')}, not {backend}",
            path=str(source),
        )
    args = _session_args(request, backend, model, bundle_opts)
    for warning in args.warnings:
        ctx.log(f"warning: {warning}")
    with tempfile.TemporaryDirectory(prefix="studio-run-") as scratch:
        shapes = request.get("input_shapes") or None
        if shapes and not bundle_opts and needs_fixed_shapes(model, shapes):
            ctx.log(
                f"fixing input shapes {shapes} in a copy of the model (QNN needs static shapes)"
            )
            model = write_fixed_copy(model, shapes, scratch)
        return _run_session(request, ctx, source, model, backend, bundle_opts, args)


def _run_session(
    request: dict[str, Any],
    ctx: JobContext,
    source: Path,
    model: Path,
    backend: str,
    bundle_opts: dict[str, Any],
    args: Any,
) -> dict[str, Any]:
    from studio.core.engine.feeds import describe, make_feeds, save_outputs
    from studio.core.engine.offload import RECORD_ASSIGNMENT, offload_report, report_from_session
    from studio.core.engine.registry import REGISTRY, SIMULATION_NOTE, is_x86_host
    from studio.core.engine.sessions import make_session

    qnn = REGISTRY[backend].qnn_backend_type is not None
    config = dict(args.session_config)
    if qnn:
        config[RECORD_ASSIGNMENT] = "1"
    ctx.stage = "session"
    ctx.progress(0.05, f"creating the {backend.upper()} session")
    started = time.perf_counter()
    kwargs = args.make_session_kwargs()
    kwargs["session_config"] = config
    sess, info = make_session(model, backend, **kwargs)
    session_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "model": str(source),
        "bundle": bundle_opts.get("bundle"),
        "backend": backend,
        "providers": info.providers,
        "provider_options": info.provider_options,
        "warnings": args.warnings,
        "session_s": round(session_s, 4),
        "simulated": backend == "htp" and is_x86_host(),
    }
    if result["simulated"]:
        result["note"] = SIMULATION_NOTE
    if qnn:
        report = report_from_session(sess, model, backend)
        result["offload"] = {
            "full_offload": report.full_offload,
            "summary": report.summary(),
            "cpu_nodes": [n.name for n in report.cpu_nodes],
        }
        ctx.log(report.summary())
        if report.qnn_node_count == 0:  # nothing went to QNN: say why the backend is out
            from studio.core.engine.registry import probe_backend

            status = probe_backend(backend)
            if not status.available:
                raise BackendUnavailableError(
                    f"{backend.upper()} cannot run {model.name}: {status.reason}"
                )
        if not report.full_offload and not request.get("allow_cpu_fallback"):
            detailed = offload_report(model, backend, provider_options=args.provider_options)
            lines = [
                f"  {n.name} ({n.op_type}){': ' + n.reason if n.reason else ''}"
                for n in detailed.cpu_nodes
            ]
            raise BackendUnavailableError(
                f"{model.name} does not run fully on {backend.upper()}: "
                f"{len(detailed.cpu_nodes)} node(s) would fall back to the CPU EP:\n"
                + "\n".join(lines)
                + "\n(allow it with --cpu-fallback allow, or change the model)"
                + (
                    "\nThe model has dynamic shapes: fix them with --input-shape NAME=D0,D1,..."
                    if any("Cannot get shape" in (n.reason or "") for n in detailed.cpu_nodes)
                    else ""
                )
            )
    ctx.check_cancelled()
    feeds, were_random = make_feeds(
        sess, request.get("inputs"), request.get("input_shapes"), int(request.get("seed", 0))
    )
    if were_random:
        ctx.log(
            "no inputs given: using random inputs of the model's shapes and dtypes (seed "
            f"{int(request.get('seed', 0))})"
        )
    ctx.stage = "run"
    ctx.progress(0.5, "running")
    started = time.perf_counter()
    values = sess.run(None, feeds)
    result["run_s"] = round(time.perf_counter() - started, 6)
    names = [o.name for o in sess.get_outputs()]
    result["random_inputs"] = were_random
    result["inputs"] = {k: describe(v) for k, v in feeds.items()}
    if request.get("output"):
        result["outputs"] = save_outputs(request["output"], names, values)
        result["output_path"] = str(request["output"])
    else:
        result["outputs"] = {n: describe(v) for n, v in zip(names, values, strict=True)}
    ctx.progress(1.0, "done")
    return result


def _run_with_sdk(request: dict[str, Any], source: Path, ctx: JobContext) -> dict[str, Any]:
    """Run a bundle's context binary with qnn-net-run (the SDK path)."""
    import numpy as np

    from studio.core.engine.feeds import describe, load_arrays, save_outputs
    from studio.core.toolchain.compile import load_bundle
    from studio.core.toolchain.sdk import find_sdk, sdk_net_run

    sdk = find_sdk(request["sdk"])
    assert sdk is not None
    bundle = load_bundle(source)
    if bundle.context_binary is None:
        raise BadInputError("bundle has no context binary to run", path=str(source))
    specs_in = bundle.specs.get("inputs", [])
    if request.get("inputs"):
        feeds = load_arrays(request["inputs"])
        were_random = False
    else:
        rng = np.random.default_rng(int(request.get("seed", 0)))
        feeds = {}
        for spec in specs_in:
            shape = (request.get("input_shapes") or {}).get(spec["name"]) or spec.get("shape")
            if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
                raise BadInputError(
                    f"input '{spec['name']}' has dynamic shape {shape}: use --input-shape"
                )
            feeds[spec["name"]] = rng.random(shape, dtype=np.float32)
        were_random = True
    with tempfile.TemporaryDirectory(prefix="studio-netrun-") as work:
        outputs = sdk_net_run(
            sdk,
            bundle.backend,
            bundle.context_binary,
            feeds,
            bundle.specs.get("outputs", []),
            Path(work),
            ctx,
        )
    names = list(outputs)
    result: dict[str, Any] = {
        "model": str(source),
        "bundle": str(bundle.root),
        "backend": bundle.backend,
        "providers": ["qnn-net-run"],
        "random_inputs": were_random,
        "inputs": {k: describe(v) for k, v in feeds.items()},
    }
    if request.get("output"):
        result["outputs"] = save_outputs(request["output"], names, list(outputs.values()))
        result["output_path"] = str(request["output"])
    else:
        result["outputs"] = {k: describe(v) for k, v in outputs.items()}
    return result


@job
def compile_bundle(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Compile a model into a bundle (embedded EPContext, or the QNN SDK chain)."""
    from studio.core.engine.config import BackendConfig, is_quantized_model, load_backend_config
    from studio.core.engine.feeds import needs_fixed_shapes, write_fixed_copy

    model = existing_path(request.get("model"), "model")
    backend = str(request.get("backend") or "htp")
    if backend != "htp":
        raise BackendUnavailableError(
            f"compiling for '{backend}' is not supported here: context binaries are built for HTP "
            "(QNN GPU needs an Adreno device)"
        )
    output = request.get("output")
    if not isinstance(output, str) or not output:
        raise BadInputError("compile needs an output bundle folder (-o BUNDLE_DIR)")
    config = load_backend_config(request.get("config"))
    overrides = {k: request[k] for k in ("soc_model", "htp_arch") if request.get(k) is not None}
    if overrides:  # --soc-model / --htp-arch win over the file, checked like file values
        checked = BackendConfig.from_json({"htp_config": overrides}, source="command line")
        config.htp_config.update(checked.htp_config)
    args = config.session_args(backend, quantized=is_quantized_model(model))
    from studio.core.engine.sessions import apply_htp_target

    apply_htp_target(args.provider_options)  # the context binary is built for the target device
    for warning in args.warnings:
        ctx.log(f"warning: {warning}")
    with tempfile.TemporaryDirectory(prefix="studio-compile-") as scratch:
        shapes = request.get("input_shapes") or None
        source = model
        if shapes and needs_fixed_shapes(model, shapes):
            ctx.log(
                f"fixing input shapes {shapes} in a copy of the model (QNN needs static shapes)"
            )
            model = write_fixed_copy(model, shapes, scratch)
        result = _compile(request, ctx, model, source, backend, output, args)
    manifest = result.pop("manifest", None) or {}
    result["warnings"] = list(manifest.get("warnings", args.warnings))
    return result


def _compile(
    request: dict[str, Any],
    ctx: JobContext,
    model: Path,
    source: Path,
    backend: str,
    output: str,
    args: Any,
) -> dict[str, Any]:
    from studio.core.toolchain.compile import compile_model

    return compile_model(
        model,
        output,
        backend=backend,
        provider_options=args.provider_options,
        session_config=args.session_config,
        sdk_root=request.get("sdk"),
        encodings=request.get("encodings"),
        ctx=ctx,
        warnings=args.warnings,
        source_path=source,
        input_shapes=request.get("input_shapes") or None,
    )
