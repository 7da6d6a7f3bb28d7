"""Per-node cost features of a model as the HTP would run it, from the ONNX graph.

Why features and not MAC counts: on HTP, MACs explain only part of a model's time. Depthwise
convolutions and element-wise ops are bound by memory traffic, every op pays a fixed dispatch cost,
and in a quantised graph concatenations of differently scaled inputs and normalisation/softmax/GELU
kernels cost far more than their MACs say. Each node gets a small vector of such features; the
device model (``estimate.py``) turns it into milliseconds with coefficients fitted offline.

Precision: a float model runs fp16 on HTP (2 bytes per element); a QDQ model runs each op at the
bit width of the DequantizeLinear that feeds it. Q/DQ nodes themselves are plumbing, not work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.core.devices.folding import fold_shape_constants, static_tensors
from studio.core.model.costs import dtype_bits, num_elements
from studio.core.model.graph import ModelGraph, NodeInfo

FEATURES = (
    "macs_dense",  # Conv (not depthwise), Gemm, MatMul with a constant operand
    "macs_dw",  # depthwise convolutions (one input channel per group)
    "macs_actmm",  # MatMul of two activations (attention)
    "act_bytes",  # activation bytes read and written, at the precision it runs
    "weight_bytes",  # parameter bytes at the precision it runs
    "nodes",  # one per compute op (dispatch cost)
    "concat_bytes",  # output bytes of Concat (requantisation in quantised graphs)
    "norm_elems",  # elements through Softmax / LayerNorm / GELU / Erf / reductions
)
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Ops that do no work on HTP once compiled (constants, shape arithmetic, identities).
FREE_OPS = frozenset(
    {"Constant", "Identity", "Shape", "Gather_shape", "Unsqueeze", "Squeeze", "Flatten", "Dropout"}
)
NORM_OPS = frozenset(
    {
        "Softmax",
        "LogSoftmax",
        "LayerNormalization",
        "GroupNormalization",
        "InstanceNormalization",
        "Erf",
        "Gelu",
        "ReduceMean",
        "ReduceSum",
        "Pow",
        "Sqrt",
        "Div",
    }
)
FLOAT_BITS = 16  # HTP runs float graphs in fp16


@dataclass
class NodeFeatures:
    id: str
    op_type: str
    bits: int
    values: dict[str, float] = field(default_factory=dict)


def _bits_of(graph: ModelGraph, tensor: str, quantized: bool) -> int:
    """Runtime bit width of an activation: its DQ's integer type in a QDQ graph, else fp16."""
    if not quantized:
        return FLOAT_BITS
    info = graph.tensors.get(tensor)
    prod = graph.node_by_id.get(info.producer or "") if info else None
    if prod is not None and prod.op_type == "DequantizeLinear" and prod.inputs:
        src = graph.tensors.get(prod.inputs[0])
        bits = dtype_bits(src.elem_type) if src else None
        return int(bits or 8)
    # consumed by a QuantizeLinear: quantised at that width
    for c in info.consumers if info else []:
        q = graph.node_by_id.get(c)
        if q is not None and q.op_type == "QuantizeLinear" and q.outputs:
            out = graph.tensors.get(q.outputs[0])
            return int((dtype_bits(out.elem_type) if out else None) or 8)
    return FLOAT_BITS


def _elements(graph: ModelGraph, tensor: str) -> int:
    info = graph.tensors.get(tensor)
    return int(num_elements(info.shape) or 0) if info is not None else 0


FUSE_INTO = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add"})
FUSABLE = frozenset({"Relu", "Clip", "BatchNormalization"})


def _real_producer(graph: ModelGraph, tensor: str) -> NodeInfo | None:
    """The node computing ``tensor``, looking through Q/DQ pairs (plumbing, not work)."""
    for _ in range(4):
        info = graph.tensors.get(tensor)
        node = graph.node_by_id.get(info.producer or "") if info else None
        if node is None or node.op_type not in QDQ_OPS or not node.inputs:
            return node
        tensor = node.inputs[0]
    return None


def _fused(graph: ModelGraph, node: NodeInfo) -> bool:
    """True for a BatchNormalization or ReLU/Clip that the QNN compiler folds into the op before
    it (Conv+BN+ReLU run as one HTP op), so it costs no dispatch and no extra memory pass."""
    if node.op_type not in FUSABLE or not node.inputs:
        return False
    prod = _real_producer(graph, node.inputs[0])
    if prod is None:
        return False
    if prod.op_type == "BatchNormalization":
        prod = _real_producer(graph, prod.inputs[0]) if prod.inputs else None
        if prod is None:
            return False
    if node.op_type == "BatchNormalization":
        return prod.op_type in ("Conv", "ConvTranspose", "Gemm")
    return prod.op_type in FUSE_INTO


def is_quantized(graph: ModelGraph) -> bool:
    return any(n.op_type in QDQ_OPS for n in graph.nodes)


def node_features(graph: ModelGraph) -> list[NodeFeatures]:
    """One NodeFeatures per compute node (Q/DQ and free ops left out), in graph order.

    The graph is first folded as the compiler folds it (``folding.py``): shape arithmetic of a
    dynamic export is constant once the input shapes are fixed, and costs nothing on the HTP.
    """
    graph = fold_shape_constants(graph)
    static, _ = static_tensors(graph)
    quantized = is_quantized(graph)
    out: list[NodeFeatures] = []
    for node in graph.nodes:
        op = node.op_type
        if op in QDQ_OPS or op in FREE_OPS or _fused(graph, node):
            continue
        ins = [t for t in node.inputs if t]
        # A node computed only from compile-time constants is folded by the compiler.
        if all(t in static for t in node.outputs if t):
            continue
        act_in = [t for t in ins if t not in static]
        weights = [t for t in ins if t in static]
        bits = max([_bits_of(graph, t, quantized) for t in act_in] or [FLOAT_BITS])
        act_bytes = 0.0
        for t in act_in:
            act_bytes += _elements(graph, t) * _bits_of(graph, t, quantized) / 8
        out_elems = 0
        for t in node.outputs:
            if t:
                e = _elements(graph, t)
                out_elems += e
                act_bytes += e * _bits_of(graph, t, quantized) / 8
        weight_bytes = 0.0
        for t in weights:
            w_bits = _bits_of(graph, t, quantized) if quantized else FLOAT_BITS
            if t == (node.inputs[2] if op in ("Conv", "Gemm") and len(node.inputs) > 2 else None):
                w_bits = 32 if quantized else FLOAT_BITS  # bias
            weight_bytes += _elements(graph, t) * w_bits / 8
        v = dict.fromkeys(FEATURES, 0.0)
        macs = float(node.macs)
        if op == "Conv":
            group = int(node.attributes.get("group", 1) or 1)
            c_in = 0
            if len(node.inputs) > 1:
                w = graph.tensors.get(node.inputs[1])
                if w is not None and w.shape and len(w.shape) > 1 and isinstance(w.shape[1], int):
                    c_in = int(w.shape[1])
            if group > 1 and c_in == 1:
                v["macs_dw"] = macs
            else:
                v["macs_dense"] = macs
        elif op in ("MatMul", "Gemm"):
            if len(act_in) >= 2:
                v["macs_actmm"] = macs
            else:
                v["macs_dense"] = macs
        else:
            v["macs_dense"] = 0.0
        if op in NORM_OPS:
            v["norm_elems"] = float(out_elems)
        if op == "Concat":
            v["concat_bytes"] = out_elems * bits / 8
        v["act_bytes"] = act_bytes
        v["weight_bytes"] = weight_bytes
        v["nodes"] = 1.0
        out.append(NodeFeatures(id=node.id, op_type=op, bits=bits, values=v))
    return out


def totals(features: list[NodeFeatures]) -> dict[str, float]:
    """Feature sums over a model (what the fit sees per model)."""
    tot = dict.fromkeys(FEATURES, 0.0)
    for f in features:
        for k, x in f.values.items():
            tot[k] += x
    return tot
