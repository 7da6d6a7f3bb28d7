"""The profile job: set-up times, warm-up, the measured loop, the per-layer pass, one ProfileRun.

Runs in the worker process (``run_in_worker(job_kind(profile_model), request)``) so a native crash
in QNN fails only the job, and inline in tests and the CLI's ``--inline``. Request keys:

``model`` (path of a model or a compiled bundle, required), ``backend`` (htp|gpu|cpu|qnn-cpu;
default: the bundle's, else htp as in ``npu-studio run``), ``config`` (backend_config.json), ``provider_options``,
``session_config``, ``disable_cpu_fallback`` (default False: measure what a user would get and
report the nodes ORT placed on the CPU), ``runs`` (default 50), ``warmup`` (default 5),
``duration_s`` (sustained mode), ``input_shapes``, ``seed``, ``layers`` (default True),
``layer_runs`` (default 5), ``artifacts_dir`` (keep the raw profiler files there), ``out`` (save the
record there), ``label``, ``max_saved_latencies`` (default 20000), ``timeline_bin_s``.

Set-up is measured in parts: loading the model (parse, checks, shape inference), registering the
QNN EP library (the first-load cost, paid once per process), creating the session (graph
compile / QNN finalize) and the first inference (VTCM acquire, power-on, allocations), each
separate from the warm runs.
"""

from __future__ import annotations

import functools
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from studio.core.engine.sessions import BACKENDS, QNN_EP, make_session, random_inputs, register_qnn
from studio.core.errors import BackendUnavailableError, BadInputError
from studio.core.jobs.protocol import JobContext, job
from studio.core.model.graph import ModelGraph
from studio.core.profiling.layers import profile_layers
from studio.core.profiling.measure import measure_loop, peak_rss_mb, rss_mb
from studio.core.profiling.readers.ort_profile import parse_ort_profile
from studio.core.profiling.records import ProfileRun
from studio.core.profiling.stats import downsample, latency_stats, timeline_bins

SIMULATION_NOTE = (
    "HTP simulated on x86-64: cycle counts are the simulator's, wall times are this host's "
    "(not a device's)"
)


def _int(request: dict[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = request.get(key, default)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"profile request: '{key}' must be an integer (got {value!r})") from exc
    if number < minimum:
        raise BadInputError(f"profile request: '{key}' must be >= {minimum} (got {number})")
    return number


def host_info() -> dict[str, Any]:
    """What machine and software measured the run: latencies mean little without it."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
    }
    try:
        from importlib.metadata import version

        info["onnxruntime_qnn"] = version("onnxruntime-qnn")
    except Exception:  # not installed: the field is simply absent
        pass
    return info


def is_simulated(backend: str) -> bool:
    """QNN HTP on an x86-64 host is the simulator (onnxruntime-qnn ships no x86 HTP hardware)."""
    return backend == "htp" and platform.machine().lower() in ("x86_64", "amd64")


def _resolve(request: dict[str, Any], source: str) -> tuple[str, str, dict[str, Any], list[str]]:
    """(model path, backend, make_session kwargs, warnings) for a model or a compiled bundle.

    A bundle (helper module studio.core.toolchain) is verified and profiled with the options it was
    compiled with; a backend_config.json (``config``) adds its options; explicit
    ``provider_options`` / ``session_config`` in the request win over both.
    """
    from studio.core.engine.config import is_quantized_model, load_backend_config
    from studio.core.toolchain.compile import resolve_model_or_bundle

    model, bundle = resolve_model_or_bundle(source)
    request["_bundle"] = bundle.get("bundle")
    backend = str(request.get("backend") or bundle.get("backend") or "htp")
    if backend not in BACKENDS:
        raise BadInputError(f"unknown backend '{backend}' (choose one of {', '.join(BACKENDS)})")
    if bundle and backend != bundle.get("backend"):
        raise BadInputError(
            f"this bundle was compiled for {bundle.get('backend')}, not {backend}", path=source
        )
    args = load_backend_config(request.get("config")).session_args(
        backend, quantized=is_quantized_model(model)
    )
    kwargs = args.make_session_kwargs()
    options = dict(bundle.get("provider_options") or {})
    options.update(kwargs["provider_options"])
    options.update({str(k): str(v) for k, v in (request.get("provider_options") or {}).items()})
    config = dict(kwargs["session_config"])
    config.update({str(k): str(v) for k, v in (request.get("session_config") or {}).items()})
    kwargs["provider_options"], kwargs["session_config"] = options, config
    return str(model), backend, kwargs, list(args.warnings)


def _mapping_graph(bundle: str | None, graph: ModelGraph, shapes: Any) -> tuple[ModelGraph, str]:
    """The graph whose node ids the per-layer rows use, and a note when it is not the obvious one.

    A compiled bundle's EPContext model has one node (the context binary); its ops are those of
    the model it was compiled from, which the manifest names with a checksum. That model is used
    when it is still there unchanged; otherwise the rows keep the backend's op names.
    """
    if not bundle:
        return graph, ""
    from studio.core.hashing import file_sha256
    from studio.core.toolchain.bundle import load_bundle

    src = (load_bundle(bundle).manifest.get("source_model") or {}) if bundle else {}
    path = Path(str(src.get("path", "")))
    if path.is_file() and file_sha256(path) == src.get("sha256"):
        return (
            ModelGraph.load(path, input_shapes=shapes),
            f"bundle: per-layer rows mapped to the nodes of its source model {path}",
        )
    return graph, (
        f"bundle: its source model ({path or 'not recorded'}) is missing or changed, so backend "
        "op names could not be mapped to ONNX nodes; 'inserted by backend' rows are unmapped ops"
    )


def _placement(ort_json: str, model: str, backend: str) -> tuple[int, int]:
    """Kernels of the first run on the QNN EP vs on the CPU EP; raise if QNN ran nothing.

    ORT lists the QNN EP among a session's providers even when the backend failed to initialise
    (the QNN GPU backend without an Adreno GPU) and then runs every node on the CPU: that must be
    an error, not a CPU latency reported as a GPU one. Profiling ends after this run.
    """
    runs = parse_ort_profile(ort_json).runs
    nodes = runs[0].nodes if runs else []
    on_qnn = sum(1 for n in nodes if n.provider == QNN_EP)
    on_cpu = sum(1 for n in nodes if n.provider != QNN_EP)
    if on_qnn == 0:
        raise BackendUnavailableError(
            f"QNN {backend.upper()} ran no part of {Path(model).name}: the backend did not "
            f"initialise on this machine (or supports none of its ops) and ORT ran all "
            f"{on_cpu} kernels on the CPU"
        )
    return on_qnn, on_cpu


@job
def profile_model(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Measure one model on one backend; returns ``ProfileRun.to_json()``."""
    with tempfile.TemporaryDirectory(prefix="studio-profile-") as scratch:
        return _profile(request, ctx, Path(scratch))


def _session_model(model: str, backend: str, shapes: Any, scratch: Path) -> tuple[str, str]:
    """The file the sessions open: QNN needs static shapes, so ``input_shapes`` fix a copy."""
    if backend == "cpu" or not shapes:
        return model, ""
    from studio.core.engine.feeds import needs_fixed_shapes, write_fixed_copy

    if not needs_fixed_shapes(model, shapes):
        return model, ""
    fixed = write_fixed_copy(model, shapes, scratch)
    return str(
        fixed
    ), f"input shapes {shapes} fixed in a copy of the model (QNN needs static shapes)"


@dataclass
class _Options:
    """A profile request, checked and resolved once; every stage reads it."""

    source: str
    model: str
    backend: str
    kwargs: dict[str, Any]  # make_session arguments
    warnings: list[str]
    runs: int
    warmup: int
    duration_s: float | None
    shapes: Any
    fallback_off: bool


def _options(request: dict[str, Any]) -> _Options:
    source = request.get("model")
    if not isinstance(source, str) or not source:
        raise BadInputError("profile request needs 'model' (path of an ONNX model or bundle)")
    model, backend, kwargs, warnings = _resolve(request, source)
    runs = _int(request, "runs", 50)
    duration = request.get("duration_s")
    duration_s = float(duration) if duration else None
    if not runs and not duration_s:
        raise BadInputError("profile request: give runs > 0 or a duration")
    return _Options(
        source=source,
        model=model,
        backend=backend,
        kwargs=kwargs,
        warnings=warnings,
        runs=runs,
        warmup=_int(request, "warmup", 5),
        duration_s=duration_s,
        shapes=request.get("input_shapes") or None,
        fallback_off=bool(request.get("disable_cpu_fallback", False)),
    )


def _profile(request: dict[str, Any], ctx: JobContext, scratch: Path) -> dict[str, Any]:
    """The stages in order: load, session (+ first run), warm-up, measure, per-layer pass."""
    opts = _options(request)
    for line in opts.warnings:
        ctx.log(f"warning: {line}")
    notes: list[str] = []
    setup: dict[str, Any] = {}
    graph, session_model = _load_stage(opts, setup, notes, scratch, ctx)
    rss_before = rss_mb()
    sess, info, feeds = _session_stage(
        request, opts, session_model, setup, rss_before, scratch, ctx
    )
    _warmup_stage(sess, feeds, opts.warmup, ctx)
    record = _measure_stage(request, opts, graph, sess, feeds, info, setup, rss_before, notes, ctx)
    del sess  # the layer pass opens its own session: free this one first
    if request.get("layers", True):
        _layers_stage(request, opts, graph, record, session_model, feeds, notes, ctx)
    record.notes = notes + [f"warning: {w}" for w in opts.warnings]
    ctx.progress(1.0, f"mean {record.stats.mean_ms:.3f} ms over {record.stats.count} runs")
    out = request.get("out")
    if out:
        record.save(out)
    return record.to_json()


def _load_stage(
    opts: _Options, setup: dict[str, Any], notes: list[str], scratch: Path, ctx: JobContext
) -> tuple[ModelGraph, str]:
    """The model's graph, QNN registered, and the file the sessions open (shapes fixed)."""
    ctx.stage = "load"
    ctx.progress(0.0, f"loading {Path(opts.model).name}")
    t = time.perf_counter()
    graph = ModelGraph.load(opts.model, input_shapes=opts.shapes)
    setup["model_load_s"] = time.perf_counter() - t
    if opts.backend != "cpu":
        t = time.perf_counter()
        register_qnn()
        setup["qnn_register_s"] = time.perf_counter() - t
    session_model, fixed_note = _session_model(opts.model, opts.backend, opts.shapes, scratch)
    if fixed_note:
        notes.append(fixed_note)
    return graph, session_model


def _session_stage(
    request: dict[str, Any],
    opts: _Options,
    session_model: str,
    setup: dict[str, Any],
    rss_before: float,
    scratch: Path,
    ctx: JobContext,
) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """The session, its random feeds and its first run (on QNN: where the nodes really ran)."""
    ctx.stage = "session"
    ctx.check_cancelled()
    t = time.perf_counter()
    sess, info = make_session(
        session_model,
        opts.backend,
        **opts.kwargs,
        disable_cpu_fallback=opts.fallback_off,
        # QNN: the first run is profiled by ORT to see where nodes really ran (see _placement).
        enable_profiling=opts.backend != "cpu",
        profile_prefix=str(scratch / "placement"),
    )
    setup["session_create_s"] = time.perf_counter() - t
    setup["rss_session_delta_mb"] = rss_mb() - rss_before
    feeds = random_inputs(sess, opts.shapes, seed=_int(request, "seed", 0))
    t = time.perf_counter()
    sess.run(None, feeds)
    setup["first_run_ms"] = (time.perf_counter() - t) * 1000.0
    if opts.backend != "cpu":
        placement = _placement(sess.end_profiling(), opts.model, opts.backend)
        setup["qnn_partitions_run"], setup["cpu_kernels_run"] = placement
    return sess, info, feeds


def _warmup_stage(sess: Any, feeds: dict[str, np.ndarray], warmup: int, ctx: JobContext) -> None:
    ctx.stage = "warmup"
    for i in range(warmup):
        ctx.check_cancelled()
        sess.run(None, feeds)
        ctx.progress((i + 1) / max(1, warmup), f"warm-up {i + 1}/{warmup}")


def _measure_stage(
    request: dict[str, Any],
    opts: _Options,
    graph: ModelGraph,
    sess: Any,
    feeds: dict[str, np.ndarray],
    info: Any,
    setup: dict[str, Any],
    rss_before: float,
    notes: list[str],
    ctx: JobContext,
) -> ProfileRun:
    """The timed loop (profiling off) and the run record it fills."""
    ctx.stage = "measure"
    once = functools.partial(sess.run, None, feeds)  # no Python frame of ours per run
    loop = measure_loop(once, runs=opts.runs or None, duration_s=opts.duration_s, ctx=ctx)
    del once
    latencies = list(loop.latencies_ms)
    stats = latency_stats(latencies, loop.wall_s)
    kept, stride = downsample(latencies, _int(request, "max_saved_latencies", 20000, 1))
    offsets = list(loop.offsets_s)[::stride]  # start of each kept run, seconds into the loop
    if stride > 1:
        notes.append(f"per-run latencies saved every {stride}th of {len(latencies)} runs")
    bin_s = float(request.get("timeline_bin_s") or max(0.25, loop.wall_s / 60.0))
    timeline = timeline_bins(np.asarray(loop.offsets_s), np.asarray(loop.latencies_ms), bin_s)
    resources = loop.resources()
    resources["rss_before_session_mb"] = rss_before
    resources["peak_rss_mb"] = peak_rss_mb()
    kwargs = opts.kwargs
    record = ProfileRun(
        model_path=str(Path(opts.model).resolve()),
        model_sha256=graph.sha256(),
        backend=opts.backend,
        stats=stats,
        latencies_ms=kept,
        latency_stride=stride,
        latency_offsets_s=offsets,
        label=str(request.get("label") or f"{graph.name} on {opts.backend}"),
        providers=list(info.providers),
        options={
            "source": str(opts.source),
            "provider_options": info.provider_options,
            "session_config": info.session_config,
            "intra_op_num_threads": kwargs.get("intra_op_num_threads"),
            "graph_optimization_level": kwargs.get("graph_optimization_level"),
            "config": request.get("config"),
            "disable_cpu_fallback": opts.fallback_off,
            "runs": opts.runs,
            "warmup": opts.warmup,
            "duration_s": opts.duration_s,
            "input_shapes": opts.shapes,
        },
        host=host_info(),
        setup=setup,
        resources=resources,
        timeline=timeline,
    )
    if is_simulated(opts.backend):
        notes.append(SIMULATION_NOTE)
    if is_simulated(opts.backend) or opts.backend == "cpu":
        record.device_estimate = _device_estimate(opts.model, ctx)
    notes.append(
        "latencies measured with profiling off; per-layer figures come from a separate, shorter "
        "profiled pass (profiling adds time to every run)"
    )
    return record


def _layers_stage(
    request: dict[str, Any],
    opts: _Options,
    graph: ModelGraph,
    record: ProfileRun,
    session_model: str,
    feeds: dict[str, np.ndarray],
    notes: list[str],
    ctx: JobContext,
) -> None:
    """The separate profiled pass: per-layer rows mapped onto the ONNX nodes, into ``record``."""
    ctx.stage = "layers"
    ctx.check_cancelled()
    mapping_graph, mapping_note = _mapping_graph(request.get("_bundle"), graph, opts.shapes)
    if mapping_note:
        notes.append(mapping_note)
    record.options["layers_mapped_to"] = str(mapping_graph.path)
    layer_pass = profile_layers(
        mapping_graph,
        session_model,
        opts.backend,
        feeds,
        session_kwargs=opts.kwargs,
        disable_cpu_fallback=opts.fallback_off,
        runs=_int(request, "layer_runs", 5, 1),
        workdir=request.get("artifacts_dir"),
        ctx=ctx,
    )
    record.layers, record.extra = layer_pass.layers, layer_pass.extra
    record.unmapped_nodes = layer_pass.unmapped
    record.backend_stats = layer_pass.backend_stats
    record.layer_source = layer_pass.source
    notes.extend(layer_pass.notes)
    if layer_pass.artifacts:
        record.options["artifacts"] = layer_pass.artifacts


def _device_estimate(model: Any, ctx: JobContext) -> dict[str, Any]:
    """The target device's estimate for a simulated HTP or host CPU run; {} if none."""
    from studio.core.devices.catalogue import current_device
    from studio.core.devices.estimate import estimate_model
    from studio.core.errors import StudioError

    try:
        return estimate_model(model, current_device()).to_json()
    except StudioError as exc:  # an estimate must not fail a profile
        ctx.log(f"warning: no device estimate: {exc}")
        return {}
