"""Op-type vocabulary shared by the mapping passes: aliases and the families of ops they treat alike.

Backends name op types their own way (QNN ``Conv2d``, ORT ``FusedConv``); a backend op type maps
to the ONNX op types it can stand for. The families say which ONNX ops a backend folds into a
neighbour (``FUSABLE``), which are layout conversions, which are quantisation, and which compute
although shape-only MAC counting gives them 0.
"""

from __future__ import annotations

from studio.core.model.ops import QDQ_OPS

# Backend op types (ORT fused kernels, QNN ops) and the ONNX op types they start from.
OP_ALIASES: dict[str, set[str]] = {
    "FusedConv": {"Conv"},
    "FusedGemm": {"Gemm", "MatMul"},
    "FusedMatMul": {"MatMul"},
    "Conv2d": {"Conv"},
    "DepthWiseConv2d": {"Conv"},
    "TransposeConv2d": {"ConvTranspose"},
    "FullyConnected": {"Gemm", "MatMul"},
    "ElementWiseAdd": {"Add"},
    "ElementWiseMultiply": {"Mul"},
    "ElementWiseSubtract": {"Sub"},
    "ElementWiseDivide": {"Div"},
    "PoolAvg2d": {"AveragePool", "GlobalAveragePool"},
    "PoolMax2d": {"MaxPool", "GlobalMaxPool"},
    "Quantize": {"QuantizeLinear"},
    "Dequantize": {"DequantizeLinear"},
}


def onnx_types_of(op_type: str) -> set[str]:
    """ONNX op types a backend op type stands for (itself when unknown; empty when none given)."""
    if not op_type:
        return set()
    return OP_ALIASES.get(op_type, {op_type})


LAYOUT_OPS = {"Transpose", "ReorderInput", "ReorderOutput"}
QDQ_ONNX = QDQ_OPS  # the ONNX Q/DQ ops (studio.core.model.ops)
# Ops backends fold into the op before them (activations, residual adds, BN) or elide (views).
FUSABLE = {
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Gelu",
    "Add",
    "Sum",
    "Sub",
    "Mul",
    "Div",
    "BatchNormalization",
    "Identity",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
}
# Ops that compute (so may head a fused group) though shape-only MAC counting gives them 0.
ARITHMETIC = {"Add", "Sub", "Mul", "Div", "Sum"}
QUANT_OPS = {"Quantize", "Dequantize", "QuantizeLinear", "DequantizeLinear", "Convert", "Cast"}
