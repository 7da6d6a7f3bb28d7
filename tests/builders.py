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
