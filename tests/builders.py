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
