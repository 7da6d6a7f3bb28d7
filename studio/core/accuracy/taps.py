"""Where a QDQ model's quantised values can be read, and how much each layer loses.

``qdq_pairs`` finds, for every quantised activation, the QuantizeLinear that quantises it (the
tap); ``weight_sqnr`` compares float weights with the dequantised stored ones; ``_layers`` turns
pooled sums into per-layer figures with the part each layer adds itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.accuracy.report import LayerSqnr, sqnr_db
from studio.core.quantize.saturation import (
    SATURATING,
    hardsigmoid_params,
    scalar_constants,
    scalar_operand,
)

_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}


@dataclass
class FusedActivation:
    """The lone Relu/Clip a tensor feeds, as bounds: the backend fuses it into the producer.
    Or the saturating function (``kind`` tanh, sigmoid, hardsigmoid) it alone feeds, through
    ``steps`` of scalar affine ops (op, constant, constant first): the builder quantises such a
    tensor only over the range that function can tell apart (``quantize.saturation``)."""

    node: str
    lo: float = -math.inf
    hi: float = math.inf
    kind: str = "clip"
    steps: tuple[tuple[str, float, bool], ...] = ()
    alpha: float = 0.2
    beta: float = 0.5

    def apply(self, values: np.ndarray) -> np.ndarray:
        """The activation's output, in place on ``values`` (a float32 temporary)."""
        for op, c, const_first in self.steps:
            k = np.float32(c)
            if op == "Mul":
                values *= k
            elif op == "Div":
                values /= k
            elif op == "Add":
                values += k
            elif const_first:  # Sub: c - x
                np.subtract(k, values, out=values)
            else:
                values -= k
        if self.kind == "tanh":
            return np.tanh(values, out=values)
        if self.kind == "sigmoid":
            with np.errstate(over="ignore"):
                np.negative(values, out=values)
                np.exp(values, out=values)
                values += np.float32(1.0)
                return np.reciprocal(values, out=values)
        if self.kind == "hardsigmoid":
            values *= np.float32(self.alpha)
            values += np.float32(self.beta)
            return np.clip(values, np.float32(0.0), np.float32(1.0), out=values)
        return np.clip(values, np.float32(self.lo), np.float32(self.hi), out=values)


def fused_activations(proto: onnx.ModelProto, names) -> dict[str, FusedActivation]:
    """Tensors in ``names`` whose only consumer is a Relu/Clip with known bounds.

    Why: the QDQ builder (like ORT and QNN) quantises such a tensor with its activation's range,
    clipping what the activation throws away anyway. Compared with the raw float value, a healthy
    layer would show a few dB; what propagates is the error after the activation, so that is the
    figure (both sides pass through the activation before they are compared).
    """
    wanted = set(names)
    outputs = {o.name for o in proto.graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    constants = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                constants[node.output[0]] = value
    found: dict[str, FusedActivation] = {}
    scalars = scalar_constants(proto)
    for name in wanted:
        users = consumers.get(name, [])
        if name in outputs or len(users) != 1 or users[0].input[0] != name:
            sat = _saturating(name, consumers, outputs, scalars)
            if sat is not None:
                found[name] = sat
            continue
        node = users[0]
        bounds = _activation_bounds(node, constants)
        if bounds is not None:
            found[name] = FusedActivation(node.name or node.op_type, *bounds)
            continue
        sat = _saturating(name, consumers, outputs, scalars)
        if sat is not None:
            found[name] = sat
    return found


def _saturating(
    name: str,
    consumers: dict[str, list[onnx.NodeProto]],
    outputs: set[str],
    scalars: dict[str, float],
) -> FusedActivation | None:
    """The saturating function ``name`` alone feeds, through scalar affine steps (the chain
    ``saturation_limits`` clips): figures after it, as for a fused Relu. Without this, a
    clipped Tanh input (magika's, cut from +-9500 to +-3.5) read about 0 dB against its
    unclipped float values, and its added error looked the model's worst."""
    steps: list[tuple[str, float, bool]] = []
    cur = name
    for _ in range(9):
        users = consumers.get(cur, [])
        if cur in outputs or len(users) != 1 or not users[0].output:
            return None
        node = users[0]
        if node.op_type in SATURATING and node.input[0] == cur:
            alpha, beta = hardsigmoid_params(node)
            return FusedActivation(
                node.name or node.op_type,
                kind=node.op_type.lower(),
                steps=tuple(steps),
                alpha=alpha,
                beta=beta,
            )
        operand = scalar_operand(node, scalars)
        # c / x is not affine: apply() has no step for it
        if operand is None or operand[0] != cur or (operand[2] and node.op_type == "Div"):
            return None
        steps.append((node.op_type, operand[1], operand[2]))
        cur = node.output[0]
    return None


def _activation_bounds(node: onnx.NodeProto, constants) -> tuple[float, float] | None:
    if node.op_type == "Relu":
        return 0.0, math.inf
    if node.op_type != "Clip":
        return None
    attrs = {a.name: a.f for a in node.attribute}
    bounds = [attrs.get("min", -math.inf), attrs.get("max", math.inf)]
    for slot, idx in ((0, 1), (1, 2)):
        if len(node.input) > idx and node.input[idx]:
            tensor = constants.get(node.input[idx])
            if tensor is None:
                return None  # a computed bound: cannot be applied offline
            bounds[slot] = float(numpy_helper.to_array(tensor).reshape(-1)[0])
    return bounds[0], bounds[1]


@dataclass
class QuantTap:
    """Where a float tensor's quantised value can be read in the QDQ model: the QuantizeLinear
    output (integer codes) and its per-tensor scale and zero point."""

    output: str
    scale: float
    zero_point: float

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        x = codes.astype(np.float32)
        x -= np.float32(self.zero_point)
        x *= np.float32(self.scale)
        return x


def qdq_pairs(qdq: onnx.ModelProto) -> dict[str, QuantTap]:
    """Float tensor name -> the QuantizeLinear that quantises it (ORT's QDQ layout).

    The Q output, not the DequantizeLinear output, is exposed: ORT (and QNN) fuse DQ -> op -> Q
    into integer kernels only while a DQ output is not a graph output, so tapping the codes
    keeps the measured model the model that ships, and it runs at full speed.
    """
    inits = {t.name: t for t in qdq.graph.initializer}
    producers = {o: n for n in qdq.graph.node for o in n.output}
    pairs: dict[str, QuantTap] = {}
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        prod = producers.get(node.input[0])
        if prod is not None and prod.op_type == "DequantizeLinear":
            continue  # an 8<->16-bit convert of a tensor already tapped
        src = node.input[0].removesuffix("_QuantizeLinear_Input")
        scale = inits.get(node.input[1])
        zp = inits.get(node.input[2]) if len(node.input) > 2 else None
        if src in pairs or scale is None:
            continue
        scale_v = numpy_helper.to_array(scale).reshape(-1)
        zp_v = numpy_helper.to_array(zp).reshape(-1) if zp is not None else np.zeros(1)
        if scale_v.size != 1:
            continue  # per-channel activations: not produced by our builder
        pairs[src] = QuantTap(node.output[0], float(scale_v[0]), float(zp_v[0]))
    return pairs


def _layers(float_proto, pairs, sums, qproto, fused=None) -> list[LayerSqnr]:
    producers = {o: n for n in float_proto.graph.node for o in n.output}
    bits = _activation_bits(qproto)
    sqnr = {name: sqnr_db(*sums[name]) for name in pairs}

    def paired_inputs(node: onnx.NodeProto) -> list[str]:
        """Nearest measured tensors upstream (through tensors folded away, e.g. Conv->Relu)."""
        found, stack, seen = [], list(node.input), set()
        while stack:
            name = stack.pop()
            if not name or name in seen:
                continue
            seen.add(name)
            if name in sqnr:
                found.append(name)
            elif name in producers:
                stack.extend(producers[name].input)
        return found

    layers = []
    order = [i.name for i in float_proto.graph.input] + [
        o for n in float_proto.graph.node for o in n.output
    ]
    for name in order:
        if name not in pairs:
            continue
        node = producers.get(name)
        upstream = [sqnr[i] for i in paired_inputs(node)] if node is not None else []
        own = sqnr[name]
        act = fused.get(name) if fused else None
        if not upstream or math.isinf(own):
            added = 0.0 if math.isinf(own) else own
        else:
            # input noise carries through (and adds, for Add/Mul): what this tensor loses
            # beyond its worst input is its own contribution
            worst = min(upstream)
            added = 0.0 if math.isinf(worst) else max(worst - own, 0.0)
        layers.append(
            LayerSqnr(
                tensor=name,
                op_type=node.op_type if node is not None else "Input",
                node=(node.name or node.op_type) if node is not None else "",
                sqnr_db=own,
                added_db=added,
                bitwidth=bits.get(name),
                fused_with=act.node if act is not None and act.kind == "clip" else None,
                saturates_in=act.node if act is not None and act.kind != "clip" else None,
            )
        )
    return layers


def _activation_bits(qproto: onnx.ModelProto) -> dict[str, int]:
    sizes = {
        onnx.TensorProto.UINT8: 8,
        onnx.TensorProto.INT8: 8,
        onnx.TensorProto.UINT16: 16,
        onnx.TensorProto.INT16: 16,
    }
    inits = {t.name: t for t in qproto.graph.initializer}
    out = {}
    for node in qproto.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is not None:
                name = node.input[0].removesuffix("_QuantizeLinear_Input")
                out.setdefault(name, sizes.get(zp.data_type, 8))
    return out


def weight_sqnr(float_proto: onnx.ModelProto, qproto: onnx.ModelProto) -> dict[str, float]:
    """SQNR of each quantised weight: float initializer vs the dequantised stored one."""
    float_inits = {t.name: t for t in float_proto.graph.initializer}
    q_inits = {t.name: t for t in qproto.graph.initializer}
    out: dict[str, float] = {}
    for node in qproto.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in q_inits:
            continue
        name = node.input[0].removesuffix("_quantized")
        if name not in float_inits or float_inits[name].data_type not in _FLOAT:
            continue
        if q_inits[node.input[0]].data_type == onnx.TensorProto.INT32:
            continue  # biases: int32 at input*weight scale, error negligible by construction
        q = numpy_helper.to_array(q_inits[node.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(q_inits[node.input[1]]).astype(np.float64)
        zp_name = node.input[2] if len(node.input) > 2 else ""
        zp = (
            numpy_helper.to_array(q_inits[zp_name]).astype(np.float64)
            if zp_name in q_inits
            else np.zeros_like(scale)
        )
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        block = next((a.i for a in node.attribute if a.name == "block_size"), 0)
        if block and scale.ndim == q.ndim:  # block-wise (opset 21): one scale per block
            if zp.shape == scale.shape:
                zp = np.repeat(zp, block, axis=axis)
            scale = np.repeat(scale, block, axis=axis)
        elif scale.size > 1:
            shape = [1] * q.ndim
            shape[axis] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        deq = (q - zp) * scale
        ref = numpy_helper.to_array(float_inits[name]).astype(np.float64)
        if ref.shape != deq.shape:
            continue
        out[name] = sqnr_db(float(np.sum(ref * ref)), float(np.sum((ref - deq) ** 2)))
    return out
