"""ONNX op facts the studio relies on, written once: the Q/DQ op set and "is this model quantised".

Why one place: the assignment, the profiler's mapping and suggestions, the encodings reader and
the backend config each asked the same two questions with their own copies, and two copies of
``is_quantized_model`` gave different answers for a QLinear model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def is_qdq(op_type: str) -> bool:
    """A QuantizeLinear or DequantizeLinear node."""
    return op_type in QDQ_OPS


def is_quantized_op(op_type: str) -> bool:
    """A node that makes a model quantised: Q/DQ, or an operator-format QLinear* kernel."""
    return op_type in QDQ_OPS or op_type.startswith("QLinear")


def is_quantized_model(model: str | Path | onnx.ModelProto | Any) -> bool:
    """True when the model carries QDQ or QLinear nodes (HTP then runs it in int, not fp16).

    ``model``: a file (read without external weights), a ModelProto or a ModelGraph.
    """
    if isinstance(model, (str, Path)):
        model = onnx.load(str(model), load_external_data=False)
    nodes = model.graph.node if isinstance(model, onnx.ModelProto) else model.nodes
    return any(is_quantized_op(n.op_type) for n in nodes)
