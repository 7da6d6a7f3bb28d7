"""The calibration pass: prepare the model once, run every sample once, keep running statistics.

Why it is fast: the model is first prepared (dynamic dims fixed, BatchNorm folded and constants
folded by ORT's basic optimiser, as ORT's ``quant_pre_process`` does), then run on the CPU EP with
every float intermediate exposed as an output, and each output is reduced in place by numpy into
:class:`RunningHistogram` (min/max + a growable histogram) and dropped. Nothing is stored per
sample, so memory stays flat and one pass gives every method (minmax, percentile, entropy, MSE).

Min, max and counts are always exact. A tensor with at least ``HIST_SAMPLE_MIN`` values over the
whole pass has every ``HIST_SAMPLE_EVERY``-th value of its stream binned into its histogram (still
>= 350k values): binning (``np.bincount``, ~1 ns a value) was half of the pass, and on the demo
CNN the percentile/entropy/MSE ranges move by less than a different draw of the same data moves
them (tests/core/test_calibration_sampling.py bounds it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from studio.core.calibration.data import CalibrationSource, InputSpec, Preprocess
from studio.core.calibration.derive import derivations, derive
from studio.core.calibration.histogram import DEFAULT_BINS, RunningHistogram, Scratch
from studio.core.calibration.names import restore_weight_names
from studio.core.calibration.runner import SampleRunner
from studio.core.calibration.stats import (
    PREPARED_MODEL,
    STATS_JSON,
    CalibrationStats,
    cache_key,
    default_cache_dir,
)
from studio.core.errors import BadInputError, ModelLoadError
from studio.core.jobs.protocol import JobContext, job
from studio.core.model.graph import check_model_file
from studio.core.model.loading import file_sha256
from studio.core.model.normalise import drop_unbounded_extrema, normalise_gemm_biases
from studio.core.model.prepare import fix_input_shapes
from studio.core.model.variance import stabilise_variance

# stack up to this many samples / bytes of activations before one histogram pass per tensor
_FLUSH_SAMPLES = 16
MIN_OPSET = 13
# 4: Gemm biases as vectors (normalise_gemm_biases); 5: Max(x, -inf) removed
# (drop_unbounded_extrema) and E[x²] - E[x]² rewritten as E[(x - E[x])²] (stabilise_variance)
PREPARE_VERSION = 5
_FLUSH_BYTES = 64 << 20
# Histograms of tensors with at least HIST_SAMPLE_MIN values over the whole pass bin every
# HIST_SAMPLE_EVERY-th value (min/max/count stay exact); see RunningHistogram.sample_every.
HIST_SAMPLE_EVERY = 3
HIST_SAMPLE_MIN = 1 << 20
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def load_fixed(
    model_path: str | Path, input_shapes: dict[str, list[int]] | None
) -> onnx.ModelProto:
    """Read the model and fix the given input dims (dynamic dims must be fixed before calibrating)."""
    src = Path(model_path)
    # The same checks as opening it in the studio: a PNG, a text file or a truncated download is
    # named as such, instead of surfacing as an opset-conversion failure later on. The checked
    # protobuf is the one we use (one read of the file); external weights are loaded into it.
    proto, refs = check_model_file(src)
    if refs:
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(src.parent))
        except Exception as exc:  # protobuf/onnx raise many types here
            raise ModelLoadError(f"cannot read external weights: {exc}", path=str(src)) from exc
    fix_input_shapes(proto, input_shapes or {}, src)
    return proto


def prepare_model(
    model: str | Path | onnx.ModelProto,
    out_path: str | Path,
    input_shapes: dict[str, list[int]] | None = None,
    *,
    optimize: bool = True,
    notes: list[str] | None = None,
) -> onnx.ModelProto:
    """Write the model calibration and quantisation work on: shapes fixed, BN/constants folded,
    ``Max(x, -inf)`` identities removed and ``E[x²] - E[x]²`` variances rewritten in the stable
    form (``model.normalise``, ``model.variance``; the last only with ``optimize``).

    Quantising an unfolded BatchNorm (or a Paddle ``Constant`` feeding a Mul) as an activation costs
    many dB (REFERENCE.md §7); folding first is what ORT's pre-processing and QNN's converter do.
    Folded weights and biases take the original node's weight/bias names back (and a fused Conv
    output already has the BatchNorm's output name), so every name an encodings file or an edit
    uses exists in the user's model, as AIMET's exports do. ``notes`` receives one line per
    identity removed and variance rewritten (their tensors are not the user's model's).
    """
    proto = model if isinstance(model, onnx.ModelProto) else load_fixed(model, input_shapes)
    proto = _at_least_opset(proto, MIN_OPSET)
    out = Path(out_path)
    if optimize:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        try:
            ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(
                f"onnxruntime cannot load the model: {' '.join(str(exc).split())[:300]}",
                path=str(model) if not isinstance(model, onnx.ModelProto) else None,
            ) from exc
        original, proto = proto, onnx.load(str(out))
        restore_weight_names(original, proto)
    # ORT's pre-processing fuses MatMul + Add into Gemm with the Add's [1, N] bias: the QDQ
    # quantiser needs C as a vector (see studio.core.model.normalise)
    normalise_gemm_biases(proto)
    # Max(x, -inf) is the identity; quantised, its infinite constant gets an infinite scale
    rewrites = drop_unbounded_extrema(proto)
    if optimize:
        # float-equal, like the BN fold: a variance as the difference of two large quantised
        # terms is rounding noise (magika: 3.5 dB of output SQNR at W8A8 before, 46.6 after)
        rewrites += stabilise_variance(proto)
    if notes is not None:
        notes.extend(rewrites)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception:  # partial shapes are fine: ORT reports output types at run time
        pass
    onnx.save(proto, str(out))
    return proto


def default_opset(proto: onnx.ModelProto) -> int:
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _at_least_opset(proto: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """Per-channel DequantizeLinear (its ``axis``) needs opset 13: convert older models first."""
    if default_opset(proto) >= version:
        return proto
    try:
        from onnx import version_converter

        return version_converter.convert_version(proto, version)
    except Exception as exc:  # the converter lacks adapters for some ops
        raise BadInputError(
            f"the model uses opset {default_opset(proto)}; quantising needs opset {version} and "
            f"onnx could not convert it ({' '.join(str(exc).split())[:200]})"
        ) from exc


def model_inputs(proto: onnx.ModelProto) -> list[InputSpec]:
    """Real graph inputs (not initializers) with fixed shapes where known."""
    inits = {t.name for t in proto.graph.initializer}
    specs = []
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        specs.append(InputSpec(vi.name, shape, dtype))
    return specs


def _float_tensors(proto: onnx.ModelProto) -> tuple[list[str], dict[str, list[int]]]:
    """Every float activation (node outputs and graph inputs), in graph order, with shapes."""
    inits = {t.name for t in proto.graph.initializer}
    infos = {v.name: v for v in list(proto.graph.value_info) + list(proto.graph.output)}
    infos.update({v.name: v for v in proto.graph.input})
    names: list[str] = []
    shapes: dict[str, list[int]] = {}

    def add(name: str) -> None:
        if not name or name in inits or name in shapes:
            return
        vi = infos.get(name)
        if vi is not None and vi.type.tensor_type.elem_type not in _FLOAT_TYPES:
            return
        names.append(name)
        dims = vi.type.tensor_type.shape.dim if vi is not None else []
        shapes[name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]

    for vi in proto.graph.input:
        add(vi.name)
    for node in proto.graph.node:
        for out in node.output:
            add(out)
    return names, shapes


def collect_stats(
    proto: onnx.ModelProto,
    source: CalibrationSource,
    *,
    bins: int = DEFAULT_BINS,
    ctx: JobContext | None = None,
    threads: int | None = None,
) -> tuple[dict[str, RunningHistogram], dict[str, str], dict[str, list[int]], int]:
    """Run every sample once; return per-tensor histograms, dtypes, shapes and sample count."""
    ctx = ctx or JobContext()
    tensors, shapes = _float_tensors(proto)
    derived = derivations(proto, set(tensors))
    derived_names = {d.output for d in derived}
    measured = [t for t in tensors if t not in derived_names]
    runner = SampleRunner(proto, measured, shapes, [i.name for i in source.inputs], threads=threads)
    wanted = set(measured)
    hists = {name: RunningHistogram(max_bins=bins) for name in measured}
    dtypes: dict[str, str] = {}
    total = max(source.count(), 1)
    pending: dict[str, list[np.ndarray]] = {}
    pending_bytes = 0
    first_pending = 0
    scratch = Scratch()

    def flush(last: int) -> None:
        # Small tensors are stacked over several samples first: one numpy pass per tensor per
        # batch instead of per sample (per-call overhead dominates small activations).
        for name, arrays in pending.items():
            arr = arrays[0] if len(arrays) == 1 else np.concatenate([a.ravel() for a in arrays])
            lo, hi = hists[name].update(arr, scratch)
            if not (np.isfinite(lo) and np.isfinite(hi)):
                bad = "NaN" if np.isnan(lo) or np.isnan(hi) else "Inf"
                where = (
                    f"sample {last}" if first_pending == last else f"samples {first_pending}-{last}"
                )
                raise BadInputError(
                    f"tensor '{name}' holds {bad} values on calibration {where}: the model "
                    "overflows on this data",
                    path=source.spec,
                )
        pending.clear()

    n = 0
    ctx.progress(0.0, f"calibrating on {total} samples")
    for first, count, values in runner.run(_cancellable(source, ctx), source.spec):
        if not pending:
            first_pending = first
        for name, arr in values.items():
            if name not in wanted or arr.dtype.kind != "f":
                continue
            pending.setdefault(name, []).append(arr)
            pending_bytes += arr.nbytes
            if name not in dtypes:
                dtypes[name] = arr.dtype.name
                if arr.size // max(count, 1) * total >= HIST_SAMPLE_MIN:
                    hists[name].sample_every = HIST_SAMPLE_EVERY
                if name not in shapes or any(d < 0 for d in shapes[name]):
                    shapes[name] = [1, *arr.shape[1:]] if count > 1 else list(arr.shape)
        n = first + count
        if pending_bytes >= _FLUSH_BYTES or n - first_pending >= _FLUSH_SAMPLES:
            flush(n - 1)
            pending_bytes = 0
        ctx.progress(n / total, f"calibrated {n}/{total} samples")
    if pending:
        flush(n - 1)
    if runner.fell_back:
        why = (
            f" ({', '.join(runner.fixed_batch[:3])} fix the batch dim)"
            if runner.fixed_batch
            else ""
        )
        ctx.log(f"calibration ran one sample at a time: the model does not batch cleanly{why}")
    for d in derived:  # Relu/Clip/Reshape... outputs: exact from their input's histogram
        if d.source in hists:
            hists[d.output] = derive(hists[d.source], d)
            dtypes.setdefault(d.output, dtypes.get(d.source, "float32"))
            if d.output not in shapes or any(x < 0 for x in shapes[d.output]):
                shapes.pop(d.output, None)
    hists = {name: hists[name] for name in tensors if name in hists}  # graph order
    if n == 0:
        raise BadInputError("the calibration source holds no samples", path=source.spec)
    hists = {k: h for k, h in hists.items() if h.count > 0}
    return hists, dtypes, {k: shapes[k] for k in hists if k in shapes}, n


def _cancellable(source: CalibrationSource, ctx: JobContext):
    for feed in source:
        ctx.check_cancelled()
        yield feed


def calibrate(
    model_path: str | Path,
    data: str | Path,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    preprocess: Preprocess | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    bins: int = DEFAULT_BINS,
    optimize: bool = True,
    limit: int | None = None,
    seed: int = 0,
    ctx: JobContext | None = None,
    threads: int | None = None,
    on_cache: Callable[[bool], None] | None = None,
) -> CalibrationStats:
    """Calibration statistics for ``model_path`` over ``data``, from the cache when possible.

    ``data`` is an image folder, a .npy/.npz file or folder, or ``random:N`` (warned about).
    The result's :attr:`CalibrationStats.prepared_model` is the model the QDQ builder must use.
    """
    ctx = ctx or JobContext()
    start = time.perf_counter()
    raw = load_fixed(model_path, input_shapes)
    model_sha = file_sha256(Path(model_path))
    options = {
        "input_shapes": {k: list(v) for k, v in sorted((input_shapes or {}).items())},
        "bins": int(bins),
        "optimize": bool(optimize),
        "seed": int(seed),
        # bump when preparation changes what the cached prepared model would be
        "prepare_version": PREPARE_VERSION,
        "hist_sample": [HIST_SAMPLE_EVERY, HIST_SAMPLE_MIN],
    }
    source = CalibrationSource(data, model_inputs(raw), preprocess, seed=seed, limit=limit)
    for warning in source.warnings:
        ctx.log(f"warning: {warning}")
    data_hash = source.data_hash
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    final = root / cache_key(model_sha, data_hash, options)
    if use_cache and (final / STATS_JSON).is_file() and (final / PREPARED_MODEL).is_file():
        try:
            stats = CalibrationStats.load(final)
            if on_cache:
                on_cache(True)
            ctx.progress(1.0, "calibration statistics read from the cache")
            return stats
        except BadInputError as exc:
            ctx.log(f"ignoring a broken calibration cache entry: {exc}")
    if on_cache:
        on_cache(False)
    root.mkdir(parents=True, exist_ok=True)
    # build the entry in a scratch folder and rename it: a crash never leaves half an entry
    tmp = Path(tempfile.mkdtemp(prefix=".calib-", dir=root))
    try:
        # the rewrites go to the job's log: the prepared model is not the file as written (the
        # names of rewritten tensors are gone), but it computes the same, so no warning
        rewrites: list[str] = []
        proto = prepare_model(raw, tmp / PREPARED_MODEL, optimize=optimize, notes=rewrites)
        for note in rewrites:
            ctx.log(f"prepared model: {note}")
        hists, dtypes, shapes, n = collect_stats(proto, source, bins=bins, ctx=ctx, threads=threads)
        if default_opset(raw) < MIN_OPSET:
            source.warnings.append(
                f"model converted from opset {default_opset(raw)} to {MIN_OPSET} for quantisation"
            )
        stats = CalibrationStats(
            model_sha256=model_sha,
            data_hash=data_hash,
            options=options,
            num_samples=n,
            histograms=hists,
            dtypes=dtypes,
            shapes=shapes,
            input_names=[i.name for i in source.inputs],
            output_names=[o.name for o in proto.graph.output],
            warnings=list(source.warnings),
            elapsed_s=time.perf_counter() - start,
        )
        stats.save(tmp, durable=False)  # the folder rename below is the commit
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        stats.folder = final
        return stats
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@job
def calibrate_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Worker/GUI job: ``{"model", "data", "input_shapes"?, "preprocess"?, "cache_dir"?, ...}``."""
    hit: list[bool] = []
    stats = calibrate(
        request["model"],
        request["data"],
        input_shapes=request.get("input_shapes"),
        preprocess=Preprocess.from_json(request.get("preprocess")),
        cache_dir=request.get("cache_dir"),
        use_cache=bool(request.get("use_cache", True)),
        bins=int(request.get("bins", DEFAULT_BINS)),
        optimize=bool(request.get("optimize", True)),
        limit=request.get("limit"),
        seed=int(request.get("seed", 0)),
        ctx=ctx,
        on_cache=hit.append,
    )
    return {
        "schema_version": 1,
        "stats_dir": str(stats.folder),
        "prepared_model": str(stats.prepared_model),
        "cache_hit": bool(hit and hit[0]),
        "num_samples": stats.num_samples,
        "tensors": len(stats.histograms),
        "warnings": stats.warnings,
        "elapsed_s": stats.elapsed_s,
    }
