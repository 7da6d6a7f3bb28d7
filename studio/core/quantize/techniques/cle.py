"""Cross-layer equalisation (Nagel et al., "Data-Free Quantization", 2019), on the ONNX graph.

Why: per-tensor (and even per-channel) 8-bit grids waste their range when one channel of a
weight is 100x wider than another; for a Conv -> ReLU -> Conv pair, scaling output channel ``i`` of
the first by ``1/s_i`` and input channel ``i`` of the second by ``s_i`` leaves the model's
function unchanged (ReLU is positively homogeneous) and, with ``s_i = sqrt(r1_i / r2_i)``, gives
both weights the same per-channel range ``sqrt(r1_i * r2_i)``. BatchNorm is already folded by the
prepared model. Pairs must be private (the first's output feeds only the ReLU, the ReLU only the
second Conv) and the second Conv must be ungrouped; the first may be depthwise.
"""

from __future__ import annotations

import numpy as np
import onnx

from studio.core.quantize.techniques.layers import initializer, set_initializer

_SCALE_FREE = {"Relu", "LeakyRelu", "PRelu"}  # f(s x) = s f(x) for s > 0 (PRelu per channel: no)
ITERATIONS = 3


def _pairs(proto: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    inits = {t.name for t in proto.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in proto.graph.output}
    pairs = []
    for first in proto.graph.node:
        if first.op_type != "Conv" or first.input[1] not in inits:
            continue
        out = first.output[0]
        users = consumers.get(out, [])
        if out in outputs or len(users) != 1:
            continue
        act = users[0]
        nxt_in = out
        if act.op_type in ("Relu", "LeakyRelu"):
            if act.output[0] in outputs or len(consumers.get(act.output[0], [])) != 1:
                continue
            nxt_in = act.output[0]
            second = consumers[nxt_in][0]
        else:
            second = act
        if second.op_type != "Conv" or second.input[0] != nxt_in or second.input[1] not in inits:
            continue
        group = next((a.i for a in second.attribute if a.name == "group"), 1)
        if group != 1:
            continue
        pairs.append((first, second))
    return pairs


def equalise(proto: onnx.ModelProto) -> list[str]:
    """Equalise every eligible Conv pair in place; returns one note per pair (range before/after)."""
    notes = []
    for first, second in _pairs(proto):
        w1 = initializer(proto, first.input[1]).astype(np.float64)
        w2 = initializer(proto, second.input[1]).astype(np.float64)
        b1 = (
            initializer(proto, first.input[2]).astype(np.float64)
            if len(first.input) > 2 and first.input[2]
            else None
        )
        if w2.shape[1] != w1.shape[0]:
            continue
        before = (np.abs(w1).max(), np.abs(w2).max())
        spread_before = _spread(w1, axis=0)
        for _ in range(ITERATIONS):
            r1 = np.abs(w1.reshape(w1.shape[0], -1)).max(axis=1)
            r2 = np.abs(np.moveaxis(w2, 1, 0).reshape(w2.shape[1], -1)).max(axis=1)
            ok = (r1 > 0) & (r2 > 0)
            s = np.ones_like(r1)
            s[ok] = np.sqrt(r1[ok] / r2[ok])
            w1 = w1 / s.reshape(-1, *([1] * (w1.ndim - 1)))
            if b1 is not None:
                b1 = b1 / s
            w2 = w2 * s.reshape(1, -1, *([1] * (w2.ndim - 2)))
        set_initializer(proto, first.input[1], w1)
        set_initializer(proto, second.input[1], w2)
        if b1 is not None:
            set_initializer(proto, first.input[2], b1)
        notes.append(
            f"CLE {first.name or first.output[0]} -> {second.name or second.output[0]}: channel "
            f"range spread {spread_before:.1f}x -> {_spread(w1, axis=0):.1f}x "
            f"(|W| max {before[0]:.3g}/{before[1]:.3g})"
        )
    return notes


def _spread(w: np.ndarray, axis: int) -> float:
    r = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    r = r[r > 0]
    return float(r.max() / r.min()) if r.size else 1.0
