"""Builders of small, real ONNX models for tests (no files shipped, no randomness across runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return Path(path)


def float_model(
    name: str,
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    x_shape: list[int],
    y_shape: list[int],
    y: str = "y",
) -> onnx.ModelProto:
    """A model of ``nodes`` with one float input ``x`` and one float output ``y`` (opset 17)."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, y_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def conv_relu(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = _init("conv1.weight", rng.normal(0, 0.2, (8, 3, 3, 3)))
    b = _init("conv1.bias", rng.normal(0, 0.05, (8,)))
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "conv1.weight", "conv1.bias"],
            ["/conv1/Conv_output_0"],
            name="/conv1/Conv",
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["/conv1/Conv_output_0"], ["y"], name="/relu1/Relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def small_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu-Conv + residual Add, GlobalAveragePool, Flatten, Gemm: HTP-friendly ops only."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("stem.weight", rng.normal(0, 0.25, (8, 3, 3, 3))),
        _init("stem.bias", rng.normal(0, 0.05, (8,))),
        _init("block.conv.weight", rng.normal(0, 0.15, (8, 8, 3, 3))),
        _init("block.conv.bias", rng.normal(0, 0.05, (8,))),
        _init("head.weight", rng.normal(0, 0.3, (10, 8))),
        _init("head.bias", rng.normal(0, 0.05, (10,))),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            ["input", "stem.weight", "stem.bias"],
            ["/stem/Conv_output_0"],
            name="/stem/Conv",
            pads=[1, 1, 1, 1],
        ),
        helper.make_node(
            "Relu", ["/stem/Conv_output_0"], ["/stem/Relu_output_0"], name="/stem/Relu"
        ),
        helper.make_node(
            "Conv",
            ["/stem/Relu_output_0", "block.conv.weight", "block.conv.bias"],
            ["/block/conv/Conv_output_0"],
            name="/block/conv/Conv",
            pads=[1, 1, 1, 1],
        ),
        helper.make_node(
            "Add",
            ["/block/conv/Conv_output_0", "/stem/Relu_output_0"],
            ["/block/Add_output_0"],
            name="/block/Add",
        ),
        helper.make_node(
            "Relu", ["/block/Add_output_0"], ["/block/Relu_output_0"], name="/block/Relu"
        ),
        helper.make_node(
            "GlobalAveragePool",
            ["/block/Relu_output_0"],
            ["/pool/GAP_output_0"],
            name="/pool/GlobalAveragePool",
        ),
        helper.make_node(
            "Flatten",
            ["/pool/GAP_output_0"],
            ["/pool/Flatten_output_0"],
            name="/pool/Flatten",
            axis=1,
        ),
        helper.make_node(
            "Gemm",
            ["/pool/Flatten_output_0", "head.weight", "head.bias"],
            ["logits"],
            name="/head/Gemm",
            transB=1,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def qdq_conv_erf(seed: int = 0, c_in: int = 16, c_out: int = 32, size: int = 32) -> onnx.ModelProto:
    """A hand-built QDQ model: Q, DQ, Conv (int8 weights), Q, DQ, Relu, Q, DQ, then Erf and Mul.

    The quantised Conv block is HTP work; ``Erf`` is not supported by the QNN EP, so the float
    tail (``/tail/Erf``, ``/tail/Mul``) is where an assignment has to hand over to the CPU. The
    Conv is large enough (4.7 M MACs by default) that running it on HTP is worth two boundaries.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.2 / np.sqrt(c_in), (c_out, c_in, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.05, (c_out,)).astype(np.float32)
    s_in, s_w, s_out = 1.0 / 255.0, float(np.abs(w).max() / 127.0), 3.0 / 255.0
    w_q = np.clip(np.round(w / s_w), -127, 127).astype(np.int8)
    b_q = np.round(b / (s_in * s_w)).astype(np.int32)

    def scalar(name: str, value, dtype) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(value, dtype=dtype), name)

    inits = [
        scalar("x_scale", s_in, np.float32),
        scalar("x_zp", 0, np.uint8),
        numpy_helper.from_array(w_q, "conv.weight_q"),
        scalar("w_scale", s_w, np.float32),
        scalar("w_zp", 0, np.int8),
        numpy_helper.from_array(b_q, "conv.bias_q"),
        scalar("b_scale", s_in * s_w, np.float32),
        scalar("b_zp", 0, np.int32),
        scalar("c_scale", 2 * s_out, np.float32),
        scalar("c_zp", 128, np.uint8),
        scalar("y_scale", s_out, np.float32),
        scalar("y_zp", 0, np.uint8),
        scalar("half", 0.5, np.float32),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="x_Q"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="x_DQ"),
        helper.make_node(
            "DequantizeLinear", ["conv.weight_q", "w_scale", "w_zp"], ["w_dq"], name="w_DQ"
        ),
        helper.make_node(
            "DequantizeLinear", ["conv.bias_q", "b_scale", "b_zp"], ["b_dq"], name="b_DQ"
        ),
        helper.make_node(
            "Conv", ["x_dq", "w_dq", "b_dq"], ["conv_out"], name="/conv/Conv", pads=[1, 1, 1, 1]
        ),
        helper.make_node("QuantizeLinear", ["conv_out", "c_scale", "c_zp"], ["c_q"], name="c_Q"),
        helper.make_node("DequantizeLinear", ["c_q", "c_scale", "c_zp"], ["c_dq"], name="c_DQ"),
        helper.make_node("Relu", ["c_dq"], ["relu_out"], name="/conv/Relu"),
        helper.make_node("QuantizeLinear", ["relu_out", "y_scale", "y_zp"], ["r_q"], name="r_Q"),
        helper.make_node("DequantizeLinear", ["r_q", "y_scale", "y_zp"], ["r_dq"], name="r_DQ"),
        helper.make_node("Erf", ["r_dq"], ["erf_out"], name="/tail/Erf"),
        helper.make_node("Mul", ["erf_out", "half"], ["y"], name="/tail/Mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq_conv_erf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, size, size])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def small_cnn_erf_head(seed: int = 0) -> onnx.ModelProto:
    """small_cnn with an ``Erf`` on the logits (output ``probs``): one op the QNN EP rejects.

    Quantised with :func:`quantize_for_qnn`, every node but ``/head/Erf`` (and the Q/DQ pair
    around it) goes to HTP: the fallback report must name it.
    """
    model = small_cnn(seed)
    graph = model.graph
    graph.node.append(helper.make_node("Erf", ["logits"], ["probs"], name="/head/Erf"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10]))
    return model


def transformer_mlp_block(seed: int = 0, tokens: int = 16, dim: int = 64) -> onnx.ModelProto:
    """A pre-norm transformer MLP block as torch exports it (opset 17): LayerNormalization,
    MatMul + Add, the erf-GELU decomposed into Div/Erf/Add/Mul/Mul, MatMul, residual Add.

    ``x`` is ``[1, tokens, dim]``; the GELU's nodes are ``/mlp/act/{Div,Erf,Add,Mul,Mul_1}``
    (intermediates ``gelu_div``, ``gelu_erf``, ``gelu_add``, ``gelu_mul``; output ``gelu``).
    """
    rng = np.random.default_rng(seed)
    hidden = 4 * dim
    nodes = [
        helper.make_node(
            "LayerNormalization",
            ["x", "ln.weight", "ln.bias"],
            ["ln"],
            name="/ln/LayerNormalization",
            axis=-1,
            epsilon=1e-6,
        ),
        helper.make_node("MatMul", ["ln", "fc1.weight"], ["fc1_mm"], name="/mlp/fc1/MatMul"),
        helper.make_node("Add", ["fc1_mm", "fc1.bias"], ["fc1"], name="/mlp/fc1/Add"),
        helper.make_node("Div", ["fc1", "sqrt2"], ["gelu_div"], name="/mlp/act/Div"),
        helper.make_node("Erf", ["gelu_div"], ["gelu_erf"], name="/mlp/act/Erf"),
        helper.make_node("Add", ["gelu_erf", "one"], ["gelu_add"], name="/mlp/act/Add"),
        helper.make_node("Mul", ["fc1", "gelu_add"], ["gelu_mul"], name="/mlp/act/Mul"),
        helper.make_node("Mul", ["gelu_mul", "half"], ["gelu"], name="/mlp/act/Mul_1"),
        helper.make_node("MatMul", ["gelu", "fc2.weight"], ["fc2"], name="/mlp/fc2/MatMul"),
        helper.make_node("Add", ["fc2", "x"], ["y"], name="/residual/Add"),
    ]
    inits = [
        _init("ln.weight", 1.0 + 0.2 * rng.standard_normal(dim)),
        _init("ln.bias", 0.1 * rng.standard_normal(dim)),
        _init("fc1.weight", rng.standard_normal((dim, hidden)) / np.sqrt(dim)),
        _init("fc1.bias", 0.1 * rng.standard_normal(hidden)),
        _init("fc2.weight", rng.standard_normal((hidden, dim)) / np.sqrt(hidden)),
        _init("sqrt2", np.array(np.sqrt(2.0))),
        _init("one", np.array(1.0)),
        _init("half", np.array(0.5)),
    ]
    shape = [1, tokens, dim]
    return float_model("transformer_mlp_block", nodes, inits, shape, shape)


def quantize_for_qnn(float_path: Path, qdq_path: Path, samples: int = 4, seed: int = 0) -> Path:
    """QDQ model for QNN HTP: ORT's quantize with get_qnn_qdq_config (uint8 act, int8 weights)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    model = onnx.load(str(float_path))
    inputs = [
        (i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input
    ]
    rng = np.random.default_rng(seed)
    batches = [
        {name: rng.random(shape, dtype=np.float32) for name, shape in inputs}
        for _ in range(samples)
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    quantize(str(float_path), str(qdq_path), get_qnn_qdq_config(str(float_path), Reader()))
    return Path(qdq_path)


# ops a weight-width QDQ case can be built for (qdq_weight_case): the weight-carrying ops the
# studio quantises, with the initializer input that carries the weight
WEIGHT_CASE_OPS = (
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "LayerNormalization",
    "InstanceNormalization",
    "Gather",
    "PRelu",
    "Mul",
    "Add",
)


def qdq_weight_case(
    op: str,
    weight_bits: int,
    act_bits: int,
    *,
    signed: bool = True,
    per_channel: bool | None = None,
    seed: int = 0,
    quantised: bool = True,
) -> onnx.ModelProto:
    """One ``op`` node over a QDQ activation and a QDQ initializer ``w`` at ``weight_bits``.

    What it is for: asking the QNN HTP backend (fallback disabled) whether it runs ``op`` with
    weights of ``weight_bits`` under ``act_bits`` activations, the way the studio's build writes
    them: activations asymmetric unsigned, weights symmetric signed (``signed=False``: asymmetric
    unsigned), per-channel by default for Conv/ConvTranspose/Gemm and per-tensor elsewhere,
    biases int32 at input scale x weight scale. Opset 21 (INT4/INT16 Q/DQ). The weight
    initializer is ``w`` (``w.q`` once quantised) and the node is named ``/case/<op>``.
    ``quantised=False``: the same graph in float, without any Q/DQ (what a plan is checked on).
    """
    rng = np.random.default_rng(seed)
    acts = {8: (TensorProto.UINT8, np.uint8), 16: (TensorProto.UINT16, np.uint16)}
    act_type, act_np = acts[act_bits]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    x_type = TensorProto.FLOAT

    def act_qdq(name: str, lo: float, hi: float) -> str:
        if not quantised:
            return name
        levels = (1 << act_bits) - 1
        scale = (hi - lo) / levels
        zero = int(round(-lo / scale))
        inits.append(numpy_helper.from_array(np.array(scale, np.float32), f"{name}.s"))
        inits.append(numpy_helper.from_array(np.array(zero, act_np), f"{name}.z"))
        nodes.append(
            helper.make_node("QuantizeLinear", [name, f"{name}.s", f"{name}.z"], [f"{name}.q"])
        )
        nodes.append(
            helper.make_node("DequantizeLinear", [f"{name}.q", f"{name}.s", f"{name}.z"], [f"{name}.dq"])
        )  # fmt: skip
        return f"{name}.dq"

    # (x shape, weight shape, per-channel axis of the weight, bias length, y shape)
    shapes = {
        "Conv": ([1, 8, 8, 8], [16, 8, 3, 3], 0, 16, [1, 16, 8, 8]),
        "ConvTranspose": ([1, 8, 8, 8], [8, 16, 2, 2], 1, 16, [1, 16, 16, 16]),
        "Gemm": ([1, 32], [32, 16], 1, 16, [1, 16]),
        "MatMul": ([1, 4, 32], [32, 16], 1, 0, [1, 4, 16]),
        "LayerNormalization": ([1, 4, 32], [32], 0, 32, [1, 4, 32]),
        "InstanceNormalization": ([1, 8, 8, 8], [8], 0, 8, [1, 8, 8, 8]),
        "Gather": ([1, 4], [64, 16], 1, 0, [1, 4, 16]),
        "PRelu": ([1, 8, 8, 8], [8, 1, 1], 0, 0, [1, 8, 8, 8]),
        "Mul": ([1, 8, 8, 8], [8, 1, 1], 0, 0, [1, 8, 8, 8]),
        "Add": ([1, 8, 8, 8], [8, 1, 1], 0, 0, [1, 8, 8, 8]),
    }
    x_shape, w_shape, axis, bias_len, y_shape = shapes[op]
    if per_channel is None:
        per_channel = op in ("Conv", "ConvTranspose", "Gemm")
    if op == "Gather":
        x_type = TensorProto.INT64
        x_in = "x"
    else:
        x_in = act_qdq("x", -1.0, 1.0)
    x_scale = 2.0 / ((1 << act_bits) - 1)

    w = rng.normal(0, 0.2, w_shape).astype(np.float32)
    if op in ("LayerNormalization", "InstanceNormalization"):
        w = np.abs(w) + 0.5  # a norm's scale (gamma) is positive
    reduce = tuple(a for a in range(w.ndim) if a != axis) if per_channel else None
    if signed:
        half = (1 << (weight_bits - 1)) - 1
        w_scale = np.abs(w).max(axis=reduce) / half
        lo_q, hi_q, zero = -half, half, np.zeros_like(w_scale, dtype=np.int64)
    else:
        lo_q, hi_q = 0, (1 << weight_bits) - 1
        w_min = np.minimum(w.min(axis=reduce), 0.0)
        w_max = np.maximum(w.max(axis=reduce), 0.0)
        w_scale = (w_max - w_min) / hi_q
        zero = np.round(-w_min / w_scale).astype(np.int64)
    w_scale = np.asarray(w_scale, np.float32)
    bshape = [1] * w.ndim
    if per_channel:
        bshape[axis] = -1
    codes = np.clip(
        np.round(w / w_scale.reshape(bshape)) + zero.reshape(bshape), lo_q, hi_q
    ).astype(np.int64)
    onnx_type = {
        (4, True): TensorProto.INT4,
        (4, False): TensorProto.UINT4,
        (8, True): TensorProto.INT8,
        (8, False): TensorProto.UINT8,
        (16, True): TensorProto.INT16,
        (16, False): TensorProto.UINT16,
    }[(weight_bits, signed)]
    if quantised:
        inits.append(helper.make_tensor("w.q", onnx_type, w_shape, codes.ravel().tolist()))
        inits.append(numpy_helper.from_array(w_scale, "w.s"))
        zeros = zero.ravel().tolist()
        inits.append(helper.make_tensor("w.z", onnx_type, list(w_scale.shape), zeros))
        attrs = {"axis": axis} if per_channel else {}
        nodes.append(helper.make_node("DequantizeLinear", ["w.q", "w.s", "w.z"], ["w"], **attrs))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    inputs = [x_in, "w"]
    if op == "Gather":
        inputs = ["w", x_in]
    if bias_len:
        b = rng.normal(0, 0.05, (bias_len,)).astype(np.float32)
        b_scale = (x_scale * np.broadcast_to(w_scale, (bias_len,))).astype(np.float32)
        if not per_channel:
            b_scale = np.array(x_scale * float(w_scale), np.float32)
        b_q = np.round(b / b_scale).astype(np.int32)
        if quantised:
            inits.append(numpy_helper.from_array(b_q, "b.q"))
            inits.append(numpy_helper.from_array(b_scale, "b.s"))
            inits.append(numpy_helper.from_array(np.zeros(b_scale.shape, np.int32), "b.z"))
            battrs = {"axis": 0} if per_channel else {}
            nodes.append(
                helper.make_node("DequantizeLinear", ["b.q", "b.s", "b.z"], ["b"], **battrs)
            )
        else:
            inits.append(numpy_helper.from_array(b, "b"))
        inputs.append("b")
    attrs = {}
    if op == "Conv":
        attrs = {"pads": [1, 1, 1, 1]}
    elif op == "ConvTranspose":
        attrs = {"strides": [2, 2]}
    elif op == "LayerNormalization":
        attrs = {"axis": -1}
    nodes.append(helper.make_node(op, inputs, ["y"], name=f"/case/{op}", **attrs))
    if not quantised:
        out = "y"
    elif op == "Gather" and weight_bits == act_bits and not per_channel:
        # a Gather's output shares its table's encoding (what the build writes, what HTP wants)
        nodes.append(helper.make_node("QuantizeLinear", ["y", "w.s", "w.z"], ["y.q"]))
        nodes.append(helper.make_node("DequantizeLinear", ["y.q", "w.s", "w.z"], ["y.dq"]))
        out = "y.dq"
    else:
        out = act_qdq("y", -4.0, 4.0)
    nodes.append(helper.make_node("Identity", [out], ["out"]))
    graph = helper.make_graph(
        nodes,
        f"qdq_{op}_w{weight_bits}a{act_bits}",
        [helper.make_tensor_value_info("x", x_type, x_shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, y_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def calibrated_cnn(tmp: Path, samples: int = 16, eval_samples: int = 6, seed: int = 3):
    """:func:`small_cnn` calibrated on ``samples`` random images: (stats, calibration feeds,
    held-out eval feeds, the calibration data's path), for the technique and auto-MP tests."""
    from studio.core.accuracy.jobs import load_feeds
    from studio.core.calibration import calibrate

    path = save(small_cnn(), tmp / "cnn.onnx")
    rng = np.random.default_rng(seed)
    data = tmp / "d.npz"
    np.savez(data, input=rng.random((samples, 3, 32, 32), dtype=np.float32))
    stats = calibrate(path, data, cache_dir=tmp / "c")
    calib = load_feeds(str(stats.prepared_model), str(data), limit=samples)
    feeds = [{"input": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(eval_samples)]
    return stats, calib, feeds, data
