"""Bias correction, empirical (AIMET's empirical form; Nagel et al., 2019): remove the mean shift
that quantisation adds to each Conv/Gemm output, as measured in the quantised model.

Why measured and not ``(Wq - W) E[x]``: that analytic form only counts the layer's own weight
error on float inputs. On a real network the shift at a layer's output is mostly the error that
arrives through its input: activation rounding upstream, carried through depthwise convolutions
(which the weight techniques skip), HardSwish/HardSigmoid clipping and SE multiplies. On
ppocr_cls the analytic shift is 3-20x smaller than the measured one and uncorrelated with it
(correlation -0.56 to 0.45 per layer after the first two), so subtracting it only perturbed the
biases at random and cost 6 dB of output SQNR on a metric that a few near-boundary samples
dominate. Here every biased Conv (any group) and Gemm is corrected by
``E[y_quantised] - E[y_float]`` per output channel, pooled over the calibration samples, with
the QDQ model built exactly as it will be (the plan's pinned weight encodings included).

A correction changes what every later layer sees, so the layers are corrected one at a time in
graph order, each measured with the earlier corrections in place. The corrected biases are kept
only when the worst output's SQNR on the calibration samples does not drop. Layers without a
bias are left alone (ORT's quantiser would have to add one), as is a bias shared by two layers.

Two things decide whether it helps, both measured on ppocr_cls. A Conv whose ReLU ORT folds into
the output's quantiser is compared after ``max(0, .)``, as the next layer sees it, and its step
is divided by the share of values the ReLU passes (correcting the pre-ReLU mean let the discarded
negative half steer it: held-out SQNR fell to 24.5 dB). A channel that is one value per sample
(a logit, a squeeze-excite gate) has its mean shift shrunk towards 0 by its standard error, so
16 samples' noise is not fitted. With both, on ppocr_cls (CPU QDQ, bench inputs): rms output
mean shift 0.031 -> 0.010, calibration-sample SQNR 34.3 -> 42.8 dB, 64 held-out samples
28.0 -> 31.0 dB (logits 16.1 -> 16.7 dB). On 8 held-out samples it reads 45.3 -> 42.2 dB: that
figure is decided by one sample near the decision boundary (the default's SQNR on quarters of
the 64 spans 22.7-36.2 dB), which ``--techniques auto`` guards by keeping the default when a
candidate scores lower.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from studio.core.engine.sessions import simulation_session
from studio.core.model.expose import with_outputs
from studio.core.model.prepare import sort_nodes

MIN_GAIN = 0.25  # a ReLU channel that is almost always off gets at most 4x its mean shift


@dataclass
class BiasLayer:
    node: str
    op_type: str
    output: str
    bias: str
    relu: bool = False  # its output feeds only a ReLU
    q_output: str = ""  # its output's name in the QDQ model (a fused ReLU takes the name)


def bias_layers(proto: onnx.ModelProto) -> list[BiasLayer]:
    """Conv (any group) and Gemm nodes with a 1-D constant bias of their own, in graph order."""
    inits = {t.name: t for t in proto.graph.initializer}
    uses: dict[str, int] = {}
    consumers: dict[str, list[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
            consumers.setdefault(name, []).append(node.op_type)
    finals = {o.name for o in proto.graph.output}
    out = []
    for index, node in enumerate(proto.graph.node):
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        bias = inits.get(node.input[2])
        if bias is None or len(bias.dims) != 1 or uses.get(node.input[2], 0) != 1:
            continue
        if bias.data_type != onnx.TensorProto.FLOAT:
            continue
        out.append(
            BiasLayer(
                node.name or f"{node.op_type}_{index}",
                node.op_type,
                node.output[0],
                bias.name,
                relu=consumers.get(node.output[0]) == ["Relu"] and node.output[0] not in finals,
            )
        )
    return out


def _session(proto: onnx.ModelProto, names: list[str]) -> ort.InferenceSession:
    """A CPU session of ``proto`` that also returns the tensors in ``names``."""
    return simulation_session(with_outputs(proto, names).SerializeToString())


def _run_means(
    sess: ort.InferenceSession,
    names: list[str],
    feeds: list[dict[str, np.ndarray]],
    extra: dict[str, np.ndarray] | None = None,
    relu: frozenset[str] = frozenset(),
    positive: dict[str, list[np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Per sample, the per output channel (axis 1) mean of each tensor in ``names``: [samples, C].
    Tensors in ``relu`` are averaged after ``max(0, .)`` (what the next layer sees); with
    ``positive`` given, the share of their values above 0 is appended there per sample."""
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for feed in feeds:
        for name, value in zip(names, sess.run(names, {**feed, **(extra or {})}), strict=True):
            v = np.asarray(value, np.float64)
            axes = tuple(a for a in range(v.ndim) if a != 1) if v.ndim > 1 else ()
            if name in relu:
                if positive is not None:
                    on = (v > 0).astype(np.float64)
                    positive.setdefault(name, []).append(on.mean(axis=axes) if axes else on)
                v = np.maximum(v, 0.0)
            rows[name].append(v.mean(axis=axes) if axes else v)
    return {name: np.stack(r) for name, r in rows.items()}


def _channel_means(
    model: onnx.ModelProto, names: list[str], feeds: list[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    return _run_means(_session(model, names), names, feeds)


@dataclass
class BiasCorrection:
    """What :func:`correct_biases` did: the layers corrected and the rms of their output mean
    shifts (QDQ minus float, pooled over channels) before and after."""

    layers: list[str]
    shift_before: float = 0.0
    shift_after: float = 0.0
    calib_db_before: float | None = None
    calib_db_after: float | None = None
    kept: bool = True

    def notes(self) -> list[str]:
        if not self.layers:
            return ["bias correction: no Conv/Gemm with its own bias"]
        line = (
            f"bias correction (empirical, sequential): {len(self.layers)} layers; rms output "
            f"mean shift {self.shift_before:.3g} -> {self.shift_after:.3g}; output SQNR on the "
            f"calibration samples {self.calib_db_before:.2f} -> {self.calib_db_after:.2f} dB"
        )
        if not self.kept:
            line += " (lower: biases left as they were)"
        return [line]


def _with_bias_inputs(qdq: onnx.ModelProto, layers: list[BiasLayer]) -> list[BiasLayer]:
    """Give every layer's bias an added graph input ``<bias>.bc_delta`` (in place) so one session
    can try corrections without rebuilding; returns the layers found in ``qdq``."""
    by_output = {n.output[0]: n for n in qdq.graph.node if n.op_type in ("Conv", "Gemm")}
    by_name = {n.name: n for n in qdq.graph.node if n.op_type in ("Conv", "Gemm") and n.name}
    inits = {t.name: t for t in qdq.graph.initializer}
    found = []
    for layer in layers:
        # by name first: when ORT folds a following ReLU into the output's quantiser, the
        # convolution writes the ReLU's tensor (still the pre-clip value, as the float side)
        node = by_name.get(layer.node) or by_output.get(layer.output)
        if node is None or len(node.input) < 3:
            continue
        channels = _bias_size(qdq, node.input[2], inits)
        if channels is None:
            continue
        delta = f"{layer.bias}.bc_delta"
        added = f"{layer.bias}.bc_corrected"
        qdq.graph.node.append(onnx.helper.make_node("Add", [node.input[2], delta], [added]))
        node.input[2] = added
        layer.q_output = node.output[0]
        qdq.graph.input.append(
            onnx.helper.make_tensor_value_info(delta, onnx.TensorProto.FLOAT, [channels])
        )
        found.append(layer)
    # Add nodes were appended: restore a topological order for ORT
    sort_nodes(qdq.graph)
    return found


def _bias_size(qdq: onnx.ModelProto, name: str, inits: dict) -> int | None:
    if name in inits:
        return int(np.prod(inits[name].dims))
    for node in qdq.graph.node:
        if node.output and node.output[0] == name and node.op_type == "DequantizeLinear":
            source = inits.get(node.input[0])
            return int(np.prod(source.dims)) if source is not None else None
    return None


def correct_biases(
    model: onnx.ModelProto,
    stats: Any,
    plan: Any,
    feeds: list[dict[str, np.ndarray]],
) -> BiasCorrection:
    """Correct ``model``'s biases in place so the QDQ model built from ``stats`` and ``plan``
    has the float model's per-channel mean at every biased Conv/Gemm output (see module).

    Sequential, as AIMET's empirical correction: layer by layer in graph order, each measured
    with every earlier correction in place (correcting all at once from one measurement
    over-corrects: a shift carried down the network is removed at its source and again at every
    later layer; on ppocr_cls that diverged). The QDQ model is built once; corrections are tried
    through an added input per bias, so each layer costs one pass over ``feeds``, not a build.
    """
    from studio.core.quantize.build import build_qdq  # the builder sits beside the techniques

    layers = bias_layers(model)
    if not layers or not feeds:
        return BiasCorrection([])
    names = [layer.output for layer in layers]
    relu_f = frozenset(layer.output for layer in layers if layer.relu)
    positive: dict[str, list[np.ndarray]] = {}
    float_means = _run_means(_session(model, names), names, feeds, None, relu_f, positive)
    # a bias change moves a ReLU's mean output by the share of values that pass the ReLU
    gain = {name: np.maximum(np.mean(v, axis=0), MIN_GAIN) for name, v in positive.items()}
    with tempfile.TemporaryDirectory(prefix="npu-studio-bc-") as tmp:
        path = Path(tmp) / "bc.onnx"
        qdq = onnx.load(str(build_qdq(stats, plan, path, model=model).qdq_path))
    layers = _with_bias_inputs(qdq, layers)
    if not layers:
        return BiasCorrection([])
    q_outputs = [layer.q_output for layer in layers]
    finals = [o.name for o in model.graph.output]
    sess = _session(qdq, q_outputs + [f for f in finals if f not in q_outputs])
    relu_q = frozenset(layer.q_output for layer in layers if layer.relu)
    float_final = _runs(model, finals, feeds)
    deltas = {
        f"{layer.bias}.bc_delta": np.zeros(float_means[layer.output].shape[1], np.float32)
        for layer in layers
    }

    def shifts() -> dict[str, np.ndarray]:
        """Per sample and channel: QDQ minus float (paired, so the sample's own content cancels)."""
        q = _run_means(sess, q_outputs, feeds, deltas, relu_q)
        return {layer.output: q[layer.q_output] - float_means[layer.output] for layer in layers}

    first = shifts()
    current = first
    for index, layer in enumerate(layers):
        if index:
            current = shifts()
        key = f"{layer.bias}.bc_delta"
        step = _shrunk_mean(current[layer.output])
        if layer.relu:
            step = step / gain[layer.output]
        deltas[key] = (deltas[key] - step).astype(np.float32)
    last = shifts()
    zeros = {k: np.zeros_like(v) for k, v in deltas.items()}
    before_db = output_sqnr_db(float_final, _runs(sess, finals, feeds, zeros), finals)
    after_db = output_sqnr_db(float_final, _runs(sess, finals, feeds, deltas), finals)
    result = BiasCorrection(
        [layer.node for layer in layers], _rms(first), _rms(last), before_db, after_db
    )
    if after_db < before_db:
        # the mean is right but the worst output is worse on the very samples it was fitted
        # on (a classifier's saturated softmax: a few samples near the boundary decide it)
        result.kept = False
        return result
    inits = {t.name: t for t in model.graph.initializer}
    for layer in layers:
        tensor = inits[layer.bias]
        bias = numpy_helper.to_array(tensor).astype(np.float64)
        fixed = bias + deltas[f"{layer.bias}.bc_delta"]
        tensor.CopyFrom(numpy_helper.from_array(fixed.astype(np.float32), layer.bias))
    return result


def _runs(
    model: onnx.ModelProto | ort.InferenceSession,
    names: list[str],
    feeds: list[dict[str, np.ndarray]],
    extra: dict[str, np.ndarray] | None = None,
) -> list[dict[str, np.ndarray]]:
    sess = model if isinstance(model, ort.InferenceSession) else _session(model, names)
    return [
        dict(zip(names, sess.run(names, {**feed, **(extra or {})}), strict=True)) for feed in feeds
    ]


def output_sqnr_db(
    ref: list[dict[str, np.ndarray]], test: list[dict[str, np.ndarray]], names: list[str]
) -> float:
    """The worst output's SQNR pooled over samples (the figure the studio reports)."""
    worst = math.inf
    for name in names:
        sig = noise = 0.0
        for r, t in zip(ref, test, strict=True):
            x = np.asarray(r[name], np.float64).reshape(-1)
            y = np.asarray(t[name], np.float64).reshape(-1)
            sig += float(x @ x)
            noise += float((x - y) @ (x - y))
        if noise > 0:
            worst = min(worst, 10 * math.log10(max(sig, 1e-30) / noise))
    return worst


def _shrunk_mean(diffs: np.ndarray) -> np.ndarray:
    """The mean shift per channel, shrunk where it is not clearly above its standard error
    (``mean * max(0, 1 - se² / mean²)``): a logit or a squeeze-excite channel is one value per
    sample, and 16 samples' mean of it is mostly noise that a correction would fit (on a small
    CNN's Gemm head that cost 0.5 dB held-out while it gained on the calibration samples)."""
    mean = diffs.mean(axis=0)
    if diffs.shape[0] < 2:
        return mean
    se2 = diffs.var(axis=0, ddof=1) / diffs.shape[0]
    keep = np.clip(1.0 - se2 / np.maximum(mean**2, 1e-30), 0.0, 1.0)
    return mean * keep


def _rms(shifts: dict[str, np.ndarray]) -> float:
    flat = np.concatenate([s.mean(axis=0).reshape(-1) for s in shifts.values()])
    return float(np.sqrt(np.mean(flat**2)))
