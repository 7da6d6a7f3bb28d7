"""The part of a tensor's range that can change the model's output, for tensors that only feed
saturating functions (Tanh, Sigmoid, HardSigmoid).

Why: a calibrated range is the range the tensor *has*, but past the point where tanh or sigmoid
saturates every value gives the same output, so the grid points spent there are wasted. magika's
tanh-GELU feeds ``Tanh`` with ``c * (x + 0.0447 x^3)``, which spans about +-9500 on real files
while tanh is flat past +-4: an 8-bit grid over that range has a step of ~75, every input
between -37 and 37 rounds to 0, and the Tanh output kept 0.08 dB SQNR. Clipped to where the
function has reached its limit, the same 8 bits have a step of ~0.03, and the values outside
give the outputs they gave before (to within a quarter of the output's own quantisation step).

The saturation point is read from the consumer's *output* grid: past ``T`` with
``1 - tanh(T) = step_out / 4`` (sigmoid alike, both tails) the exact output and the clipped one
round to the same level, so the clip is exact up to that rounding; HardSigmoid saturates
exactly at ``(0 - beta) / alpha`` and ``(1 - beta) / alpha``. Single-consumer scalar affine
steps before it (``Mul``/``Div``/``Add``/``Sub`` with a scalar constant, as in tanh-GELU's
``c * (...)``) are walked back: their input range maps through the inverse of the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import numpy_helper

SATURATING = ("Tanh", "Sigmoid", "HardSigmoid")
# the output's quantisation step fraction within which a clipped input's output must lie
OUTPUT_STEP_FRACTION = 0.25
AFFINE = ("Mul", "Div", "Add", "Sub")

Range = tuple[float, float]


def saturation_limits(
    proto: onnx.ModelProto,
    ranges: dict[str, Range],
    output_bits: Callable[[str], int | None],
    consumers: dict[str, list[onnx.NodeProto]] | None = None,
) -> dict[str, Range]:
    """Per tensor that only saturating functions read (directly, or through scalar affine
    steps with one consumer each), the interval outside which its values change no output.

    ``ranges`` are the calibrated (min, max) of the activations (the consumers' output ranges
    set their grids); ``output_bits`` gives an activation's bitwidth (None: stays float, its
    consumer's input is then left alone); ``consumers``: tensor -> reading nodes, when the
    caller has it. Only tensors in ``ranges`` are returned.
    """
    if consumers is None:
        consumers = {}
        for node in proto.graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
    producer = {o: n for n in proto.graph.node for o in n.output}
    outputs = {o.name for o in proto.graph.output}
    scalars = scalar_constants(proto)
    limits: dict[str, Range] = {}
    for name, users in consumers.items():
        if name not in ranges or name in outputs or not users:
            continue
        found = [_limit(node, ranges, output_bits) for node in users]
        if any(f is None for f in found) or any(node.input[0] != name for node in users):
            continue
        lo = min(f[0] for f in found)  # type: ignore[index]
        hi = max(f[1] for f in found)  # type: ignore[index]
        limits[name] = (lo, hi)
        _walk_back(name, (lo, hi), producer, consumers, outputs, scalars, ranges, limits)
    return limits


def clip_to(observed: Range, limit: Range) -> Range:
    """``observed`` cut to ``limit`` (zero stays inside: QNN's grids contain it)."""
    lo, hi = observed
    a, b = limit
    return max(lo, min(a, 0.0)), min(hi, max(b, 0.0))


def _limit(
    node: onnx.NodeProto, ranges: dict[str, Range], output_bits: Callable[[str], int | None]
) -> Range | None:
    if node.op_type not in SATURATING or not node.output:
        return None
    if node.op_type == "HardSigmoid":
        alpha, beta = hardsigmoid_params(node)
        if alpha <= 0:
            return None
        lo, hi = -beta / alpha, (1.0 - beta) / alpha
        return (lo, hi) if lo < 0 < hi else None
    out = node.output[0]
    bits = output_bits(out)
    if bits is None or out not in ranges:
        return None
    out_lo, out_hi = ranges[out]
    step = (out_hi - out_lo) / ((1 << bits) - 1)
    eps = max(step * OUTPUT_STEP_FRACTION, 1e-7)  # a float32 output: its own resolution
    if node.op_type == "Tanh":  # 1 - tanh(T) = eps
        t = 0.5 * math.log(max(2.0 - eps, eps) / eps)
    else:  # Sigmoid: 1 - sigmoid(T) = sigmoid(-T) = eps
        t = math.log(max(1.0 - eps, eps) / eps)
    return (-t, t) if t > 0 else None


def _walk_back(
    name: str,
    limit: Range,
    producer: dict[str, onnx.NodeProto],
    consumers: dict[str, list[onnx.NodeProto]],
    outputs: set[str],
    scalars: dict[str, float],
    ranges: dict[str, Range],
    limits: dict[str, Range],
) -> None:
    """Map ``limit`` back through single-consumer scalar affine producers (see the module)."""
    for _ in range(8):
        node = producer.get(name)
        operand = scalar_operand(node, scalars) if node is not None else None
        if operand is None:
            return
        src, c, const_first = operand
        if src in outputs or len(consumers.get(src, [])) != 1 or src not in ranges:
            return
        lo, hi = limit
        op = node.op_type
        if op == "Mul" and c != 0:
            lo, hi = sorted((lo / c, hi / c))
        elif op == "Div" and not const_first and c != 0:
            lo, hi = sorted((lo * c, hi * c))
        elif op == "Add":
            lo, hi = lo - c, hi - c
        elif op == "Sub" and not const_first:
            lo, hi = lo + c, hi + c
        elif op == "Sub":  # t = c - src
            lo, hi = c - hi, c - lo
        else:
            return
        if not lo < 0 < hi:  # a grid must hold zero; the clip would not be exact then
            return
        limits[src] = (lo, hi)
        name, limit = src, (lo, hi)


def scalar_operand(
    node: onnx.NodeProto, scalars: dict[str, float]
) -> tuple[str, float, bool] | None:
    """(the tensor input, the constant, whether the constant is the first input) of a
    Mul/Div/Add/Sub with one scalar constant input (``scalars``: :func:`scalar_constants`);
    None for any other node. The one reading of an affine step, forward (the SQNR taps) and back
    (:func:`saturation_limits`)."""
    if node.op_type not in AFFINE or len(node.input) != 2:
        return None
    a, b = node.input
    if b in scalars and a not in scalars:
        return a, scalars[b], False
    if a in scalars and b not in scalars:
        return b, scalars[a], True
    return None


def hardsigmoid_params(node: onnx.NodeProto) -> tuple[float, float]:
    """A HardSigmoid's (alpha, beta), with ONNX's defaults."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))


def scalar_constants(proto: onnx.ModelProto) -> dict[str, float]:
    """Finite one-element float constants (initializers and Constant nodes) by name."""
    tensors = [(t.name, t) for t in proto.graph.initializer]
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                tensors.append((node.output[0], value))
    out: dict[str, float] = {}
    for name, t in tensors:
        if t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
            continue
        if int(np.prod(t.dims)) != 1:
            continue
        value = float(numpy_helper.to_array(t).reshape(-1)[0])
        if math.isfinite(value):
            out[name] = value
    return out
