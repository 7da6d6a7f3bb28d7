"""Build the QDQ model from a plan and stored ranges, through onnxruntime.quantization.

Why through ORT: ``get_qnn_qdq_config`` knows QNN's rules (16-bit Sigmoid/Tanh fixed encodings,
per-tensor MatMul weights, mixed-precision boundaries: it inserts the 8<->16-bit converts) and
ORT's ``QDQQuantizer`` (what ``quantize_static`` runs after calibrating) writes Q/DQ the way the
QNN EP fuses them. What we avoid is ORT's own calibration and its file round trips: the ranges
come from our stats as ORT's ``TensorsData``, and every activation's scale/zero point is given
explicitly as a TensorQuantOverride computed with the QNN arithmetic in :class:`Encoding`. So
the built model's encodings are exactly the plan's (and an imported file's), and a rebuild after
an edit costs one quantiser run, no inference.

Two steps, because ORT's mixed-precision fixer rejects explicit 8-bit scales on tensors it wants
to widen: (1) let the fixer decide the types from type-only overrides; (2) add scale/zero point
for each tensor at the type it ended up with (and for each ``convert``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studio.core.calibration import CalibrationStats
from studio.core.encodings import Encoding, EncodingSet
from studio.core.errors import BadInputError, EncodingsError
from studio.core.jobs.protocol import JobContext
from studio.core.model.loading import copy_model
from studio.core.quantize.fusion import fuse_erf_gelu
from studio.core.quantize.plan import QuantPlan
from studio.core.quantize.readback import encodings_of_qdq

_ACT_TYPES = {8: "QUInt8", 16: "QUInt16"}
_WEIGHT_TYPES = {4: "QInt4", 8: "QInt8", 16: "QInt16"}
_QTYPE_BITS = {"QUInt8": 8, "QInt8": 8, "QUInt16": 16, "QInt16": 16, "QUInt4": 4, "QInt4": 4}


@dataclass
class BuildResult:
    """What a build produced: the file, its real encodings, and what differs from the defaults."""

    qdq_path: str
    elapsed_s: float
    activation_bitwidths: dict[str, int] = field(default_factory=dict)
    float_tensors: list[str] = field(default_factory=list)
    folded_tensors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # one line per imported encoding onnxruntime cannot express, kept float instead
    coverage_notes: list[str] = field(default_factory=list)
    # weights written block-wise INT4 (plan.weight_block_size): tensor -> block size
    blockwise: dict[str, int] = field(default_factory=dict)
    _proto: onnx.ModelProto | None = field(default=None, repr=False, compare=False)
    _encodings: EncodingSet | None = field(default=None, repr=False, compare=False)

    @property
    def encodings(self) -> EncodingSet:
        """The encodings the QDQ model really uses (read from its Q/DQ nodes on first use)."""
        if self._encodings is None:
            proto = self._proto if self._proto is not None else onnx.load(self.qdq_path)
            self._encodings = encodings_of_qdq(proto)
            self._proto = None
        return self._encodings

    @property
    def wide_tensors(self) -> list[str]:
        """Activations quantised at 16 bits (after ORT's boundary fixes)."""
        return [t for t, b in self.activation_bitwidths.items() if b == 16]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "qdq_path": self.qdq_path,
            "elapsed_s": self.elapsed_s,
            "encodings": self.encodings.to_json(),
            "activation_bitwidths": dict(self.activation_bitwidths),
            "float_tensors": list(self.float_tensors),
            "folded_tensors": list(self.folded_tensors),
            "warnings": list(self.warnings),
            "coverage_notes": list(self.coverage_notes),
            "blockwise": dict(self.blockwise),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildResult:
        return cls(
            qdq_path=str(data["qdq_path"]),
            _encodings=EncodingSet.from_json(data["encodings"]),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            activation_bitwidths={
                k: int(v) for k, v in data.get("activation_bitwidths", {}).items()
            },
            float_tensors=list(data.get("float_tensors", [])),
            folded_tensors=list(data.get("folded_tensors", [])),
            warnings=list(data.get("warnings", [])),
            coverage_notes=list(data.get("coverage_notes", [])),
            blockwise={k: int(v) for k, v in data.get("blockwise", {}).items()},
        )


class _NoData:
    """get_qnn_qdq_config wants a reader; ours never reads (ranges come from the stats)."""

    def get_next(self) -> None:
        return None


@contextmanager
def _quiet_ort_logging():
    """ORT's quantiser warns through the root logger about pre-processing we already did."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def build_qdq(
    stats: CalibrationStats,
    plan: QuantPlan,
    out_path: str | Path,
    *,
    ctx: JobContext | None = None,
    model: onnx.ModelProto | None = None,
) -> BuildResult:
    """Write the QDQ model for ``plan`` over ``stats`` to ``out_path`` (atomically).

    Two steps through onnxruntime's QNN config: types only first (so its fixer places the
    converts at 8/16-bit boundaries), then an explicit scale/zero point for every activation at
    its final type; the quantiser then writes the model from those ranges, without inference.
    """
    ctx = ctx or JobContext()
    start = time.perf_counter()
    if stats.prepared_model is None or not stats.prepared_model.is_file():
        raise BadInputError("calibration stats have no prepared model (save them first)")
    proto = model if model is not None else onnx.load(str(stats.prepared_model))
    _name_unnamed_nodes(proto)
    ctx.progress(0.05, "computing encodings")
    warnings: list[str] = list(stats.warnings) + _check_plan(plan, stats, proto)
    planned = plan.encodings(stats, proto, weights="edited")
    for name, enc in planned.items():
        if enc.block_size:  # ORT's quantiser takes per-channel scales only
            planned.remove(name)
            warnings.append(
                f"tensor '{name}': imported block-wise encoding (block {enc.block_size}) not "
                "applied; the weight is quantised by the plan (set a weight block size for "
                "block-wise INT4)"
            )
    kept_float = _keep_unexpressible_float(planned, proto)
    warnings += kept_float
    if model is not None:  # the caller's model stays as it was given
        proto = copy_model(proto)
    pinned = set(plan.overrides) | {n for n, e in planned.items() if e.is_float}
    fused = fuse_erf_gelu(proto, keep=pinned)  # one Gelu: QNN HTP has no quantised Erf
    gone = set(fused)
    if plan.imported is not None:
        dropped = [t for t in fused if t in plan.imported]
        if dropped:
            warnings.append(
                f"{len(dropped)} imported encoding(s) name parts of an erf-GELU the build fuses "
                f"into one Gelu (e.g. '{dropped[0]}'): not needed, not applied"
            )
    unbounded, notes = _nodes_reading_nonfinite(proto)
    warnings += notes
    act_names = [n for n in stats.tensor_names() if n in planned and n not in gone]
    float_acts = [n for n in act_names if planned[n].is_float]
    cfg = _typed_config(proto, plan, planned, act_names, float_acts, unbounded)
    ranges, act_bits = _pin_activations(cfg, plan, planned, act_names, float_acts)
    ctx.progress(0.3, "writing the QDQ model")
    with _quiet_ort_logging():
        try:
            qproto = _run_qdq_quantizer(proto, cfg, ranges)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise BadInputError(f"onnxruntime could not quantise the model: {exc}") from exc
    blockwise: dict[str, int] = {}
    if plan.weight_block_size:
        blockwise, notes = _blockwise_weights(qproto, proto, plan, act_bits)
        warnings += notes
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    _replace(out, qproto.SerializeToString())
    ctx.progress(1.0, "QDQ model written")
    present = {name for node in qproto.graph.node for name in (*node.input, *node.output)}
    folded = fused + [  # the fused GELUs' parts are gone too
        n for n in act_names if n not in present and f"{n}_QuantizeLinear_Input" not in present
    ]
    return BuildResult(
        qdq_path=str(out),
        elapsed_s=time.perf_counter() - start,
        activation_bitwidths={n: b for n, b in act_bits.items() if n not in folded},
        float_tensors=float_acts,
        folded_tensors=folded,
        warnings=warnings,
        coverage_notes=kept_float,
        blockwise=blockwise,
        _proto=qproto,
    )


def _typed_config(
    proto: onnx.ModelProto,
    plan: QuantPlan,
    planned: EncodingSet,
    act_names: list[str],
    float_acts: list[str],
    keep_float_nodes: list[str] | None = None,
) -> Any:
    """Step 1: ORT's QNN config from types only (per-tensor widths, weights, float nodes)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    default_act = QuantType[_ACT_TYPES[plan.activation_bitwidth]]
    weight_type = QuantType[_WEIGHT_TYPES[plan.weight_bitwidth]]
    type_overrides: dict[str, list[dict[str, Any]]] = {}
    for name in act_names:
        enc = planned[name]
        if not enc.is_float and enc.bitwidth != plan.activation_bitwidth:
            type_overrides[name] = [{"quant_type": QuantType[_ACT_TYPES[enc.bitwidth]]}]
    type_overrides.update(_weight_overrides(plan, planned, proto))
    if plan.weight_bitwidth in (4, 8):
        for name in _layernorm_scales(proto):
            type_overrides.setdefault(name, [_layernorm_scale_type()])
    if plan.weight_bitwidth == 16:
        for name in _norm_scales(proto, "InstanceNormalization"):
            type_overrides.setdefault(name, [_instancenorm_scale_type()])
    for name in _per_tensor_weights(proto, plan, type_overrides):
        type_overrides[name] = [{"quant_type": QuantType.QUInt8, "symmetric": False}]
    excluded = _nodes_for_float(proto, planned, float_acts)
    excluded += [n for n in keep_float_nodes or [] if n not in excluded]
    with _quiet_ort_logging():
        try:
            return get_qnn_qdq_config(
                proto,
                _NoData(),
                activation_type=default_act,
                weight_type=weight_type,
                per_channel=plan.per_channel,
                init_overrides=type_overrides or None,
                activation_symmetric=plan.activation_symmetric,
                weight_symmetric=plan.weight_symmetric,
                nodes_to_exclude=excluded or None,
            )
        except ValueError as exc:
            raise BadInputError(f"these quantisation settings cannot be built: {exc}") from exc


def _per_tensor_weights(
    proto: onnx.ModelProto, plan: QuantPlan, taken: dict[str, Any]
) -> list[str]:
    """MatMul weights the default per-channel 8-bit plan quantises per tensor (QNN has no
    per-channel MatMul), which are written asymmetric uint8 instead of symmetric int8.

    Why: symmetric over one range for the whole matrix spends half the grid on values the
    weight does not have when its values are skewed (an embedding table, a classifier head):
    on magika's 257x64 byte embedding the MatMul output loses 3.7 dB to onnxruntime's QNN
    recipe (uint8 asymmetric, what QNN's converter writes for per-tensor weights too), and the
    model's output 1.8 dB. Asymmetric min/max never has a coarser step than symmetric, and HTP
    runs per-tensor uint8 weights. Per-channel weights stay symmetric (HTP wants offset 0 there);
    explicit weight overrides (edits, imports, techniques) are left as they are.
    """
    if not (plan.per_channel and plan.weight_symmetric and plan.weight_bitwidth == 8):
        return []
    inits = {t.name for t in proto.graph.initializer}
    names: list[str] = []
    for node in proto.graph.node:
        if node.op_type != "MatMul":
            continue
        for name in node.input[:2]:
            if name in inits and name not in taken and name not in names:
                names.append(name)
    return names


def _pin_activations(
    cfg: Any,
    plan: QuantPlan,
    planned: EncodingSet,
    act_names: list[str],
    float_acts: list[str],
) -> tuple[dict[str, Any], dict[str, int]]:
    """Step 2: an explicit scale/zero point for every activation at its final type (in ``cfg``).

    Returns the ranges the quantiser is given and each activation's final bit width.
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import TensorData

    default_act = QuantType[_ACT_TYPES[plan.activation_bitwidth]]
    overrides = cfg.extra_options["TensorQuantOverrides"]
    ranges: dict[str, Any] = {}
    act_bits: dict[str, int] = {}
    for name in act_names:
        if name in float_acts:
            overrides.pop(name, None)
            continue
        enc = planned[name]
        entry = (overrides.get(name) or [{}])[0]
        qtype = entry.get("quant_type", default_act)
        bits = _QTYPE_BITS[qtype.name]
        if "scale" not in entry:
            final = (
                enc
                if enc.bitwidth == bits
                else Encoding.from_range(
                    name, enc.min[0], enc.max[0], bits, symmetric=enc.symmetric
                )
            )
            entry.update(_scale_zp(final, qtype))
            entry["quant_type"] = qtype
        if "convert" in entry and "scale" not in entry["convert"]:
            conv_type = entry["convert"]["quant_type"]
            conv = Encoding.from_range(
                name, enc.min[0], enc.max[0], _QTYPE_BITS[conv_type.name], symmetric=enc.symmetric
            )
            entry["convert"].update(_scale_zp(conv, conv_type))
        overrides[name] = [entry]
        act_bits[name] = bits
        ranges[name] = TensorData(
            lowest=np.array(enc.min[0], dtype=np.float32),
            highest=np.array(enc.max[0], dtype=np.float32),
        )
    return ranges, act_bits


def check_htp_offload(qdq_path: str | Path, device: Any = None) -> tuple[bool, str]:
    """Does QNN HTP, targeting ``device`` (None: the studio's default target), take the whole
    model? A session with CPU fallback disabled decides (~0.3 s); when it refuses, a second
    session with fallback allowed names every node that would leave the NPU, with QNN's reason.

    Returns (True, "") or (False, the nodes and reasons): 16-bit Conv weights, for one, are
    refused by the HTP backend of onnxruntime-qnn 2.7.
    """
    from studio.core.devices.catalogue import resolve_device
    from studio.core.engine.offload import offload_report
    from studio.core.engine.sessions import make_session
    from studio.core.errors import BackendUnavailableError

    target = resolve_device(device)
    opts = target.provider_options()
    try:
        make_session(qdq_path, "htp", disable_cpu_fallback=True, provider_options=opts)
    except BackendUnavailableError as exc:
        report = offload_report(qdq_path, "htp", provider_options=opts)
        if report.cpu_nodes:
            nodes = "; ".join(
                f"{n.name} ({n.op_type}{': ' + n.reason if n.reason else ''})"
                for n in report.cpu_nodes[:8]
            )
            more = f" and {len(report.cpu_nodes) - 8} more" if len(report.cpu_nodes) > 8 else ""
            return False, (
                f"{len(report.cpu_nodes)} node(s) fall back to the CPU on {target.label}: "
                f"{nodes}{more}"
            )
        return False, f"{target.label}: {exc}"
    return True, ""


def htp_fallbacks(qdq_path: str | Path, device: Any = None) -> dict[str, dict[str, str]]:
    """Per float-model tensor, the node that would leave QNN HTP (targeting ``device``) and
    QNN's own reason: ``{tensor: {"node", "op_type", "reason"}}`` for every output and constant
    input of each node the HTP backend rejects (a QDQ model's names, ORT's suffixes removed,
    so the editor's rows match). Empty when the whole model runs on HTP. Native code: call it in
    the worker (``htp_fallback_job``)."""
    from studio.core.devices.catalogue import resolve_device
    from studio.core.encodings.qdq import _original
    from studio.core.engine.offload import offload_report

    target = resolve_device(device)
    report = offload_report(qdq_path, "htp", provider_options=target.provider_options())
    if report.error:
        raise BadInputError(f"{qdq_path}: QNN HTP could not be asked ({report.error})")
    proto = onnx.load(str(qdq_path), load_external_data=False)
    by_name = {n.name: n for n in proto.graph.node if n.name}
    producer = {o: n for n in proto.graph.node for o in n.output}
    inits = {t.name for t in proto.graph.initializer}
    out: dict[str, dict[str, str]] = {}
    for placement in report.cpu_nodes:
        node = by_name.get(placement.name)
        if node is None or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        info = {
            "node": placement.name,
            "op_type": placement.op_type,
            "reason": placement.reason or report.reasons.get(placement.name, "") or "",
            "target": target.label,
        }
        for name in node.output:
            out.setdefault(_original(name), info)
        for name in node.input:  # its weights: the DQ behind the input names the initializer
            dq = producer.get(name)
            if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
                out.setdefault(_original(dq.input[0]), info)
    return out


def build_coverage(result: BuildResult, stats: CalibrationStats) -> Any:
    """Encodings coverage of a build against the prepared model, not counting tensors the
    quantiser folded away (a Conv output feeding a lone Relu no longer exists)."""
    from studio.core.encodings.model_info import coverage
    from studio.core.quantize.scope import quantisable_tensors

    proto = onnx.load(str(stats.prepared_model), load_external_data=False)
    names = [n for n in quantisable_tensors(proto) if n not in set(result.folded_tensors)]
    report = coverage(result.encodings, names)
    report.notes = list(result.coverage_notes)
    return report


def _keep_unexpressible_float(planned: EncodingSet, proto: onnx.ModelProto) -> list[str]:
    """Imported weight encodings onnxruntime has no QuantType for become float fallbacks.

    AIMET 2.0.0 writes int32 encodings for every bias-like parameter, an LSTM's ``B`` included;
    ORT derives Conv/Gemm biases itself (those are skipped as biases), but an LSTM bias would be
    quantised as a weight, and no weight QuantType is 32 bits. Refusing the whole file would
    lose every other encoding in it: the tensor stays float, and the coverage report says so.
    """
    inits = {t.name for t in proto.graph.initializer}
    consumers: dict[str, list[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name or node.op_type)
    notes = []
    for name, enc in list(planned.items()):
        if name not in inits or enc.is_float or enc.kind == "bias" or enc.bitwidth in (4, 8, 16):
            continue
        planned.set(Encoding.float_fallback(name, kind=enc.kind))
        users = ", ".join(f"'{u}'" for u in consumers.get(name, [])) or "none"
        notes.append(
            f"tensor '{name}': {enc.dtype}{enc.bitwidth} encoding has no ONNX Runtime weight "
            f"type; kept float (consumer {users} runs unquantised)"
        )
    return notes


def _nodes_reading_nonfinite(proto: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """Nodes with a float constant input holding inf or NaN, which stay unquantised; one warning
    line per constant.

    Why: onnxruntime's quantiser derives a constant's scale from its min/max, so an infinite
    value gives scale inf and zero point NaN, and the dequantised constant is garbage (NaN or
    0); the model still builds and runs, silently wrong. The preparation removes the common
    harmless case (``Max(x, -inf)``, ``normalise.drop_unbounded_extrema``); any other such
    constant keeps its consumers float, named, instead of being quantised to nonsense.
    """
    from onnx import numpy_helper

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
    bad = {
        t.name
        for t in proto.graph.initializer
        if t.data_type in floats and not np.isfinite(numpy_helper.to_array(t)).all()
    }
    if not bad:
        return [], []
    nodes: list[str] = []
    users: dict[str, list[str]] = {}
    for node in proto.graph.node:
        hit = [i for i in node.input if i in bad]
        if hit:
            nodes.append(node.name)
            for name in hit:
                users.setdefault(name, []).append(node.name)
    notes = [
        f"tensor '{name}' holds inf/NaN values, which have no quantisation scale: "
        f"{', '.join(repr(u) for u in names)} kept float"
        for name, names in users.items()
    ]
    return nodes, notes


def _replace(path: Path, data: bytes) -> None:
    """Atomic (temp file + rename) but not fsynced: a QDQ model is rebuilt after every edit and
    is derived data; the syncs would cost more than the build on a busy disk."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise BadInputError(
            f"could not write the QDQ model: {exc.strerror or exc}", path=str(path)
        ) from exc


def _blockwise_weights(
    qproto: onnx.ModelProto,
    proto: onnx.ModelProto,
    plan: QuantPlan,
    act_bits: dict[str, int],
) -> tuple[dict[str, int], list[str]]:
    """Rewrite the plan's 4-bit Conv/Gemm/MatMul weights block-wise where the target's HTP
    takes them (``blockwise.blockwise_why_not``); the others stay per-channel, one warning
    line each saying why."""
    from onnx import numpy_helper

    from studio.core.quantize.blockwise import (
        blockwise_why_not,
        four_bit_weights,
        make_blockwise,
        weight_input_axis,
    )
    from studio.core.quantize.editing import target_arch

    size = int(plan.weight_block_size or 0)
    arch = target_arch()
    chosen: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for node, weight in four_bit_weights(proto, plan):
        name = weight.name
        a_bits = act_bits.get(node.input[0], plan.activation_bitwidth)
        shape = tuple(weight.dims)
        axis = weight_input_axis(node.op_type, node)
        reason = blockwise_why_not(node.op_type, shape, a_bits, arch, size, input_axis=axis)
        if reason is None:
            chosen[name] = numpy_helper.to_array(weight)
        else:
            notes.append(f"tensor '{name}' stays per-channel INT4: {reason}")
    written = make_blockwise(qproto, chosen, size)
    return {w.tensor: w.block_size for w in written}, notes


def _check_plan(plan: QuantPlan, stats: CalibrationStats, proto: onnx.ModelProto) -> list[str]:
    """Overrides must name real tensors with buildable settings; imports may miss some (warned)."""
    from studio.core.quantize.editing import check_plan_for_htp

    check_plan_for_htp(plan, proto)  # only what QNN HTP runs (editing.HTP_WEIGHT_RULES)
    inits = {t.name for t in proto.graph.initializer}
    acts = set(stats.tensor_names())
    for name, ov in plan.overrides.items():
        if name not in acts and name not in inits:
            raise BadInputError(
                f"override for tensor '{name}', which is not a float tensor of the model"
            )
        if name in acts and ov.dtype == "int" and ov.bitwidth not in (None, 8, 16):
            raise BadInputError(
                f"tensor '{name}': activations are quantised to 8 or 16 bits, not {ov.bitwidth}"
            )
    warnings = []
    if plan.imported is not None:
        unknown = [t for t in plan.imported if t not in acts and t not in inits]
        if unknown:
            warnings.append(
                f"{len(unknown)} imported encoding(s) name tensors not in the model "
                f"(e.g. '{unknown[0]}'): ignored"
            )
        missing = [t for t in acts if t not in plan.imported]
        if missing:
            warnings.append(
                f"{len(missing)} activation(s) have no imported encoding (e.g. '{missing[0]}'): "
                "they use the calibrated range"
            )
    return warnings


def _run_qdq_quantizer(proto: onnx.ModelProto, cfg: Any, ranges: dict[str, Any]) -> onnx.ModelProto:
    """What ``quantize_static`` does after calibration, minus its file round trips.

    ``quantize_static`` would save the model, re-run shape inference and load it back, and want a
    calibration cache file; the prepared model already carries inferred shapes, so we mark it
    (ORT's own ``onnx.infer`` metadata) and hand the ranges over in memory.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import add_infer_metadata, update_opset_version

    from studio.core.quantize.ort_indexing import indexed_quantizer

    model = copy_model(proto)
    add_infer_metadata(model)
    model = update_opset_version(
        model,
        cfg.weight_type,
        cfg.activation_type,
        tensor_quant_overrides=cfg.extra_options.get("TensorQuantOverrides"),
    )
    quantizer = QDQQuantizer(
        model,
        cfg.per_channel,
        False,  # reduce_range: QNN uses full ranges
        cfg.weight_type,
        cfg.activation_type,
        TensorsData(CalibrationMethod.MinMax, ranges),
        None,
        cfg.nodes_to_exclude,
        cfg.op_types_to_quantize,
        cfg.extra_options,
    )
    with indexed_quantizer(quantizer):  # ORT's own lookups are quadratic in the model's size
        quantizer.quantize_model()
    quantizer.model.topological_sort()
    out = quantizer.model.model
    # our marker is not part of the product
    kept = [p for p in out.metadata_props if p.key != "onnx.infer"]
    del out.metadata_props[:]
    out.metadata_props.extend(kept)
    return out


def _scale_zp(enc: Encoding, qtype: Any) -> dict[str, Any]:
    """ORT override values for ``enc`` on ``qtype`` (signed types shift the zero point)."""
    signed = qtype.name.startswith("QInt")
    zp = enc.onnx_zero_point(signed)[0]
    np_type = {
        "QUInt8": np.uint8,
        "QInt8": np.int8,
        "QUInt16": np.uint16,
        "QInt16": np.int16,
    }[qtype.name]
    return {
        "scale": np.array(enc.scale[0], dtype=np.float32),
        "zero_point": np.array(zp, dtype=np_type),
    }


def _weight_overrides(
    plan: QuantPlan, planned: EncodingSet, proto: onnx.ModelProto
) -> dict[str, list[dict[str, Any]]]:
    """Explicit overrides for weights the user edited or imported; ORT computes the rest."""
    from studio.core.encodings.formats.ort import to_overrides

    inits = {t.name for t in proto.graph.initializer}
    chosen = EncodingSet()
    for name, enc in planned.items():
        if name not in inits or enc.is_float or enc.kind == "bias":
            continue
        edited = name in plan.overrides
        imported = plan.imported is not None and name in plan.imported
        if edited or imported:
            chosen.set(enc)
    if not len(chosen):
        return {}
    try:
        return to_overrides(chosen).overrides
    except EncodingsError as exc:
        raise BadInputError(f"cannot express a weight encoding for onnxruntime: {exc}") from exc


def _nodes_for_float(
    proto: onnx.ModelProto, planned: EncodingSet, float_acts: list[str]
) -> list[str]:
    """Nodes to leave unquantised: the producer and consumers of a float activation (so no Q/DQ
    touches it), and the consumers of a float weight."""
    floats = set(float_acts)
    float_inputs = floats | {n for n, e in planned.items() if e.is_float and e.kind != "activation"}
    names = []
    for node in proto.graph.node:
        if any(o in floats for o in node.output) or any(i in float_inputs for i in node.input):
            names.append(node.name)
    return names


def _name_unnamed_nodes(proto: onnx.ModelProto) -> None:
    """ORT's mixed-precision fixer needs node names; give unnamed nodes stable ones."""
    used = {n.name for n in proto.graph.node if n.name}
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _layernorm_scales(proto: onnx.ModelProto) -> list[str]:
    """The constant scales (gamma) of the model's LayerNormalization nodes."""
    return _norm_scales(proto, "LayerNormalization")


def _norm_scales(proto: onnx.ModelProto, op_type: str) -> list[str]:
    """The constant scales (input 1) of the model's ``op_type`` nodes."""
    inits = {t.name for t in proto.graph.initializer}
    names: list[str] = []
    for node in proto.graph.node:
        if node.op_type == op_type and len(node.input) > 1:
            if node.input[1] in inits and node.input[1] not in names:
                names.append(node.input[1])
    return names


def _instancenorm_scale_type() -> dict[str, Any]:
    """The type a 16-bit plan stores an InstanceNormalization scale at: asymmetric UINT16.

    QNN HTP's InstanceNorm refuses a signed INT16 scale (what the plan's symmetric 16-bit
    weights would write) on every architecture, with 8- and 16-bit activations, and takes an
    unsigned one under 16-bit activations everywhere (bench/weight_bits_probe.py,
    onnxruntime-qnn 2.7.0, emulated). Under 8-bit activations no 16-bit scale runs; the plan
    check refuses that before building.
    """
    from onnxruntime.quantization import QuantType

    return {"quant_type": QuantType.QUInt16, "symmetric": False}


def _layernorm_scale_type() -> dict[str, Any]:
    """The type a LayerNorm scale is stored at, for 8- and 4-bit weight plans, so that QNN HTP
    builds the node.

    QNN's HTP LayerNorm refuses a signed 8-bit scale: with the plan's default symmetric INT8
    weights every quantised LayerNormalization was refused ("Failed to add node",
    backendValidateOpConfig error 3110; all 25 of vit_b_16's), and the same scale as asymmetric
    UINT8 builds, with 8- and 16-bit activations (measured with onnxruntime-qnn 2.7, HTP v75).
    Asymmetric unsigned is also what onnxruntime's own QNN recipe writes (its default weight
    type is QUInt8), and for a scale that is all positive it spends all 256 levels on [0, max]
    instead of 128. A LayerNorm scale has no INT4 kernel: 4-bit plans store it at 8 bits too.
    16-bit plans keep their signed symmetric INT16 scale: HTP builds that one with 16-bit
    activations and refuses an unsigned 16-bit one (same measurement).
    """
    from onnxruntime.quantization import QuantType

    return {"quant_type": QuantType.QUInt8, "symmetric": False}
