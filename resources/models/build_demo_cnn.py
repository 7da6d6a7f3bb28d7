"""Build the bundled demo CNN reproducibly: ``python resources/models/build_demo_cnn.py [OUT]``.

Why generated, not downloaded: nothing may be fetched at run time, and a shipped checkpoint would be
opaque. The weights are built to look like a trained network's, not like noise, because the demo
exists to show quantisation behaviour, and that depends on weight statistics:

- the stem's filters are oriented edge (Gabor) and colour-opponent detectors, smooth in space;
- deeper filters are low-rank mixtures with per-output-channel gains drawn from a log-normal, so a
  few channels have much larger ranges than the rest (why per-channel quantisation matters);
- BatchNorm carries realistic gamma/beta/running statistics. (A BatchNorm whose running mean is
  large next to its input's range runs on QNN HTP at -13 dB SQNR against the CPU QDQ reference,
  measured with onnxruntime-qnn 2.7: keep the statistics moderate so the demo shows HTP's normal
  behaviour.)
- the classifier head is sparse-ish with a heavy tail.

Architecture (only ops QNN HTP runs): Conv-BN-Relu stem (stride 2) -> depthwise-separable block
(3x3 depthwise-BN-Relu6, 1x1-BN) -> residual block (Conv-BN-Relu-Conv-BN + Add, Relu) ->
squeeze-excitation gate (GlobalAveragePool-1x1-Relu-1x1-Sigmoid, Mul) -> strided Conv-BN-Relu ->
GlobalAveragePool -> Flatten -> Gemm logits -> Softmax probabilities.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
INPUT_SHAPE = [1, 3, 64, 64]
NUM_CLASSES = 10
SEED = 20261125


class _Net:
    """Accumulates nodes and initializers with PyTorch-exporter-style names."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def op(self, op_type: str, scope: str, inputs: list[str], **attrs) -> str:
        out = f"{scope}/{op_type}_output_0"
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=f"{scope}/{op_type}", **attrs)
        )
        return out

    def conv(self, scope: str, x: str, weight: np.ndarray, stride: int = 1, group: int = 1) -> str:
        k = weight.shape[-1]
        w = self.init(f"{scope.strip('/').replace('/', '.')}.weight", weight)
        b = self.init(
            f"{scope.strip('/').replace('/', '.')}.bias",
            self.rng.normal(0.0, 0.02, weight.shape[0]),
        )
        return self.op(
            "Conv",
            scope,
            [x, w, b],
            kernel_shape=[k, k],
            pads=[k // 2] * 4,
            strides=[stride, stride],
            group=group,
        )

    def bn(self, scope: str, x: str, channels: int) -> str:
        rng = self.rng
        prefix = scope.strip("/").replace("/", ".")
        gamma = rng.normal(1.0, 0.15, channels).clip(0.4, 1.8)
        beta = rng.normal(0.05, 0.12, channels)
        mean = rng.normal(0.0, 0.3, channels)
        var = rng.lognormal(-0.5, 0.5, channels)
        names = [
            self.init(f"{prefix}.weight", gamma),
            self.init(f"{prefix}.bias", beta),
            self.init(f"{prefix}.running_mean", mean),
            self.init(f"{prefix}.running_var", var),
        ]
        return self.op("BatchNormalization", scope, [x, *names], epsilon=1e-5)


def _gabor_bank(rng: np.random.Generator, out_ch: int, in_ch: int, k: int) -> np.ndarray:
    """Oriented edge detectors (on luminance) and colour-opponent blobs: a trained stem's look."""
    ys, xs = np.mgrid[-(k // 2) : k // 2 + 1, -(k // 2) : k // 2 + 1].astype(np.float64)
    filters = np.zeros((out_ch, in_ch, k, k))
    for o in range(out_ch):
        if o % 3 != 2:
            theta = np.pi * o / out_ch
            xr = xs * np.cos(theta) + ys * np.sin(theta)
            g = np.exp(-(xs**2 + ys**2) / 2.0) * np.sin(1.6 * xr)
            filters[o] = g[None] * rng.normal(1.0, 0.1, (in_ch, 1, 1))
        else:
            blob = np.exp(-(xs**2 + ys**2) / 1.5)
            colours = rng.normal(0.0, 1.0, in_ch)
            filters[o] = colours[:, None, None] * blob[None] - colours.mean() * blob[None]
    fan_in = in_ch * k * k
    filters /= np.sqrt((filters**2).sum(axis=(1, 2, 3), keepdims=True)) + 1e-8
    return filters * np.sqrt(2.0 / fan_in) * np.sqrt(fan_in) * 0.5


def _mixing(rng: np.random.Generator, out_ch: int, in_ch: int, k: int, rank: int = 4) -> np.ndarray:
    """Low-rank filters with log-normal per-output-channel gains (a few very wide channels)."""
    fan_in = in_ch * k * k
    basis = rng.normal(0.0, 1.0, (rank, in_ch * k * k))
    coeff = rng.normal(0.0, 1.0, (out_ch, rank))
    w = coeff @ basis + 0.3 * rng.normal(0.0, 1.0, (out_ch, in_ch * k * k))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    gains = rng.lognormal(0.0, 0.45, (out_ch, 1))
    return (w * gains * np.sqrt(2.0)).reshape(out_ch, in_ch, k, k) * np.sqrt(fan_in) / fan_in


def _depthwise(rng: np.random.Generator, channels: int, k: int) -> np.ndarray:
    ys, xs = np.mgrid[-(k // 2) : k // 2 + 1, -(k // 2) : k // 2 + 1].astype(np.float64)
    base = np.exp(-(xs**2 + ys**2) / 2.0)
    w = base[None] * rng.lognormal(0.0, 0.3, (channels, 1, 1)) + rng.normal(
        0, 0.05, (channels, k, k)
    )
    return (w / w.sum(axis=(1, 2), keepdims=True)).reshape(channels, 1, k, k) * 1.5


def build(seed: int = SEED) -> onnx.ModelProto:
    """The demo model, identical for the same seed (checked by tests)."""
    rng = np.random.default_rng(seed)
    net = _Net(rng)
    c1, c2, c3 = 16, 32, 48

    x = net.conv("/stem/conv", "image", _gabor_bank(rng, c1, 3, 3), stride=2)
    x = net.bn("/stem/bn", x, c1)
    x = net.op("Relu", "/stem", [x])

    # depthwise-separable block (MobileNet style, ReLU6 as Clip 0..6)
    y = net.conv("/dsconv/dw", x, _depthwise(rng, c1, 3), group=c1)
    y = net.bn("/dsconv/dw_bn", y, c1)
    lo, hi = (
        net.init("/dsconv/clip_min", np.array(0.0)),
        net.init("/dsconv/clip_max", np.array(6.0)),
    )
    y = net.op("Clip", "/dsconv/relu6", [y, lo, hi])
    y = net.conv("/dsconv/pw", y, _mixing(rng, c2, c1, 1))
    x = net.bn("/dsconv/pw_bn", y, c2)

    # residual block
    r = net.conv("/res/conv1", x, _mixing(rng, c2, c2, 3))
    r = net.bn("/res/bn1", r, c2)
    r = net.op("Relu", "/res/relu1", [r])
    r = net.conv("/res/conv2", r, _mixing(rng, c2, c2, 3))
    r = net.bn("/res/bn2", r, c2)
    x = net.op("Add", "/res", [x, r])
    x = net.op("Relu", "/res/relu_out", [x])

    # squeeze-and-excitation gate
    s = net.op("GlobalAveragePool", "/se/pool", [x])
    s = net.conv("/se/fc1", s, _mixing(rng, 8, c2, 1))
    s = net.op("Relu", "/se/relu", [s])
    s = net.conv("/se/fc2", s, _mixing(rng, c2, 8, 1))
    s = net.op("Sigmoid", "/se/gate", [s])
    x = net.op("Mul", "/se/scale", [x, s])

    # downsample + head
    x = net.conv("/down/conv", x, _mixing(rng, c3, c2, 3), stride=2)
    x = net.bn("/down/bn", x, c3)
    x = net.op("Relu", "/down", [x])
    x = net.op("GlobalAveragePool", "/head/pool", [x])
    x = net.op("Flatten", "/head/flatten", [x], axis=1)
    w = rng.laplace(0.0, 0.08, (NUM_CLASSES, c3)) * (rng.random((NUM_CLASSES, c3)) > 0.3)
    logits_w = net.init("head.fc.weight", w)
    logits_b = net.init("head.fc.bias", rng.normal(0.0, 0.05, NUM_CLASSES))
    net.nodes.append(
        helper.make_node(
            "Gemm", [x, logits_w, logits_b], ["logits"], name="/head/fc/Gemm", transB=1
        )
    )
    net.nodes.append(
        helper.make_node("Softmax", ["logits"], ["probs"], name="/head/Softmax", axis=1)
    )

    graph = helper.make_graph(
        net.nodes,
        "demo_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, INPUT_SHAPE)],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, NUM_CLASSES]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, NUM_CLASSES]),
        ],
        net.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="npu-studio demo builder",
        producer_version="1",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("demo_cnn.onnx")
    onnx.save(build(), str(out))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
