"""What the weight techniques share: the Conv/Gemm layers they work on and their input statistics.

A layer's output error from quantising its weight ``W`` to ``Wq`` on inputs ``x`` is
``||(Wq - W) x||²``. Pooled over calibration samples that is ``tr((Wq - W) H (Wq - W)ᵀ)`` with
``H = E[x xᵀ]`` over the layer's input patches (im2col rows for a Conv): one matrix per layer,
collected once from the float model, makes AdaRound and the MSE scale search cheap numpy (no
inference in their loops). ``mean`` (``E[x]``) is what bias correction needs.

A grouped Conv (depthwise included) is ``groups`` independent layers side by side: output
channel ``o`` sees only the input channels of its group, so ``H`` is one matrix per group,
``[groups, d, d]`` with ``d = C/groups * kh * kw``, and every product with ``H`` takes each row's
own group (:func:`output_mse`, :func:`times_hessian`). Depthwise convolutions are where
MobileNet-style models lose the most at 8 bits; leaving them out left half the convolutions of
the OCR and orientation models untouched by the scale search and AdaRound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from studio.core.model.expose import with_outputs

MAX_ROWS = 4096  # input patches per layer kept for H (a random subset when more)
MAX_DIM = 4608  # skip layers whose patch is longer than this (H would not fit in ~80 MB)


@dataclass
class WeightLayer:
    """A Conv (any group) or Gemm/MatMul with a constant 2-D/4-D weight, as a matrix [out, d]
    (a grouped Conv's ``d`` is one group's patch: ``C/groups * kh * kw``)."""

    node: str
    op_type: str
    input: str
    weight: str
    bias: str | None
    attrs: dict

    @property
    def groups(self) -> int:
        return int(self.attrs.get("group", 1)) if self.op_type == "Conv" else 1

    def matrix(self, w: np.ndarray) -> np.ndarray:
        """The weight as [out_channels, patch]; Gemm/MatMul weights are [in, out] unless transB."""
        if self.op_type == "Conv":
            return w.reshape(w.shape[0], -1)
        if self.op_type == "Gemm" and self.attrs.get("transB", 0):
            return w
        return w.T

    def unmatrix(self, m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if self.op_type == "Conv":
            return m.reshape(shape)
        if self.op_type == "Gemm" and self.attrs.get("transB", 0):
            return m
        return m.T

    @property
    def channel_axis(self) -> int:
        """The output-channel axis of the stored weight (its per-channel encoding axis)."""
        if self.op_type == "Conv" or (self.op_type == "Gemm" and self.attrs.get("transB", 0)):
            return 0
        return 1


def weight_layers(proto: onnx.ModelProto) -> list[WeightLayer]:
    """Layers the weight techniques handle, in graph order (others are left as they are)."""
    inits = {t.name: t for t in proto.graph.initializer}
    out = []
    for index, node in enumerate(proto.graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        w = inits.get(node.input[1])
        if w is None or w.data_type != onnx.TensorProto.FLOAT:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv" and (len(w.dims) != 4 or w.dims[0] % attrs.get("group", 1)):
            continue
        if node.op_type in ("Gemm", "MatMul") and len(w.dims) != 2:
            continue
        if node.op_type == "Gemm" and attrs.get("transA", 0):
            continue
        bias = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
        out.append(
            WeightLayer(
                node.name or f"{node.op_type}_{index}",
                node.op_type,
                node.input[0],
                node.input[1],
                bias,
                attrs,
            )
        )
    return out


def _patches(layer: WeightLayer, x: np.ndarray, kshape: tuple[int, ...]) -> np.ndarray:
    """Input rows [n, d] the layer multiplies its weight matrix with."""
    if layer.op_type != "Conv":
        return x.reshape(-1, x.shape[-1])
    _, _, kh, kw = kshape
    pads = layer.attrs.get("pads", [0, 0, 0, 0])
    strides = layer.attrs.get("strides", [1, 1])
    dil = layer.attrs.get("dilations", [1, 1])
    if layer.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        # SAME padding: pad so the output keeps ceil(size / stride)
        pads = []
        for size, k, s, d in (
            (x.shape[2], kh, strides[0], dil[0]),
            (x.shape[3], kw, strides[1], dil[1]),
        ):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        pads = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, c, h, w = xp.shape
    oh = (h - (kh - 1) * dil[0] - 1) // strides[0] + 1
    ow = (w - (kw - 1) * dil[1] - 1) // strides[1] + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            hi, wj = i * dil[0], j * dil[1]
            cols[:, :, i, j] = xp[
                :, :, hi : hi + strides[0] * oh : strides[0], wj : wj + strides[1] * ow : strides[1]
            ]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


@dataclass
class LayerInputs:
    """Per layer: H = E[x xᵀ] over input patches ([d, d], or [groups, d, d] for a grouped Conv),
    E[x] per patch element ([d] or [groups, d]), and rows seen."""

    hessian: np.ndarray
    mean: np.ndarray
    rows: int


def collect_inputs(
    proto: onnx.ModelProto,
    layers: list[WeightLayer],
    feeds: list[dict[str, np.ndarray]],
    *,
    seed: int = 0,
) -> dict[str, LayerInputs]:
    """Run the float model over ``feeds`` once, exposing every layer's input, and reduce each to
    its :class:`LayerInputs` (a random subset of at most ``MAX_ROWS`` patches per sample batch)."""
    inits = {t.name: t for t in proto.graph.initializer}
    wanted = sorted({layer.input for layer in layers})
    graph_inputs = {i.name for i in proto.graph.input}
    aug = with_outputs(proto, wanted, skip_inputs=True)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])
    fetch = [n for n in wanted if n not in graph_inputs]
    rng = np.random.default_rng(seed)
    sums: dict[str, list] = {}
    per_sample = max(64, MAX_ROWS // max(len(feeds), 1))
    shapes = {layer.weight: tuple(inits[layer.weight].dims) for layer in layers}
    for feed in feeds:
        values = dict(zip(fetch, sess.run(fetch, feed), strict=True)) if fetch else {}
        values.update({k: v for k, v in feed.items() if k in graph_inputs})
        for layer in layers:
            x = values.get(layer.input)
            if x is None:
                continue
            groups = layer.groups
            rows = _patches(layer, np.asarray(x, np.float32), shapes[layer.weight])
            dim = rows.shape[1] // groups
            if dim > MAX_DIM or groups * dim * dim > MAX_DIM * MAX_DIM:
                continue
            if rows.shape[0] > per_sample:
                rows = rows[rng.choice(rows.shape[0], per_sample, replace=False)]
            # [groups, n, d]: a group's input channels are contiguous in the patch (c, kh, kw)
            r64 = rows.astype(np.float64).reshape(rows.shape[0], groups, -1).transpose(1, 0, 2)
            acc = sums.setdefault(
                layer.node,
                [np.zeros((groups, r64.shape[2], r64.shape[2])), np.zeros(r64.shape[::2]), 0],
            )
            acc[0] += np.matmul(r64.transpose(0, 2, 1), r64)
            acc[1] += r64.sum(axis=1)
            acc[2] += rows.shape[0]
    out = {}
    for node, (h, m, n) in sums.items():
        if n <= 0:
            continue
        hess = h / n
        # shrink towards a scaled identity when there are few rows per dimension (a pooled
        # input seen 16 times in 88 dims is rank-deficient: a search would fit its null space)
        d = hess.shape[-1]
        rho = min(1.0, d / (d + n))
        traces = np.trace(hess, axis1=1, axis2=2)[:, None, None]
        hess = (1 - rho) * hess + rho * (traces / d) * np.eye(d)
        mean = m / n
        if hess.shape[0] == 1:  # one group: the plain [d, d] form
            hess, mean = hess[0], mean[0]
        out[node] = LayerInputs(hess, mean, n)
    return out


def initializer(proto: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == name))


def set_initializer(proto: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    for t in proto.graph.initializer:
        if t.name == name:
            t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
            return
    raise KeyError(name)


def symmetric_scales(m: np.ndarray, bits: int, clip: np.ndarray | float = 1.0) -> np.ndarray:
    """Per-row symmetric scales (QNN/AIMET non-strict: absmax / (2^(b-1) - 1)), rows clipped."""
    absmax = np.max(np.abs(m), axis=1) * clip
    return np.maximum(absmax, 1e-12) / (2 ** (bits - 1) - 1)


def fake_quant_rows(m: np.ndarray, scales: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.round(m / scales[:, None]), lo, hi) * scales[:, None]


def times_hessian(delta: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """``Δ H`` row by row, each row with its group's ``H`` (rows are grouped in order)."""
    if hessian.ndim == 2:
        return delta @ hessian
    groups = hessian.shape[0]
    return np.matmul(delta.reshape(groups, -1, delta.shape[1]), hessian).reshape(delta.shape)


def output_mse(delta: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """Per output channel E[((Wq - W) x)²] = diag(Δ H Δᵀ) (each row with its group's H)."""
    return np.einsum("od,od->o", times_hessian(delta, hessian), delta)
