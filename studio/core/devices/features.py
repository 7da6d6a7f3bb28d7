"""Per-node cost features of a model as the HTP would run it, from the ONNX graph.

Why features and not MAC counts: on HTP, MACs explain only part of a model's time. Depthwise
convolutions and element-wise ops are bound by memory traffic, every op pays a fixed dispatch cost,
and in a quantised graph concatenations of differently scaled inputs and normalisation/softmax/GELU
kernels cost far more than their MACs say. Each node gets a small vector of such features; the
device model (``estimate.py``) turns it into milliseconds with coefficients fitted offline.

The graph is featurised as the QNN EP receives and builds it: shape arithmetic folded
(``folding.py``), Conv+BN+ReLU, MatMul+bias and Reshape->Gemm->Reshape as one op, HardSigmoid(x)*x
as one HardSwish, the five nodes of an exported erf-GELU as one Gelu (float graphs), and the
NCHW<->NHWC Transposes that only convert to HTP's own layout dropped (the QNN EP's JSON graph dump
of convnext_tiny on this host: 18 Gelu ops, no Erf, 2 of the model's 46 Transposes). In a QDQ
graph each Concat input at another scale than the output is one more op (a rescale that reads and
writes it; the host reads the scales from the model).

A grouped convolution counts the MACs HMX really spends: each group's input channels padded to
HMX's channel block (``HMX_CHANNEL_TILE``).

Costs the fit set cannot see on their own are priced by what the fit set does calibrate, because
they are the same hardware work: a MatMul of two activations by the per-MAC rate of every other
MatMul/Conv (HMX runs both), an activation tensor too large for VTCM by the per-byte rate of
weights (both stream from DRAM), Sigmoid/Tanh/Exp by the per-element rate of the other special
function and normalisation kernels (LayerNorm, Softmax, GELU).

Precision: a float model runs fp16 on HTP (2 bytes per element); a QDQ model runs each op at the
bit width of the DequantizeLinear that feeds it. Q/DQ nodes themselves are plumbing, not work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from onnx import numpy_helper

from studio.core.devices.folding import QDQ_OPS, fold_shape_constants, static_tensors
from studio.core.model.costs import dtype_bits, num_elements
from studio.core.model.graph import ModelGraph, NodeInfo

FEATURES = (
    "macs_dense",  # Conv (not depthwise), Gemm, MatMul (a constant or an activation operand)
    "macs_dw",  # depthwise convolutions (one input channel per group)
    "act_bytes",  # activation bytes read and written, at the precision it runs
    "weight_bytes",  # parameter bytes at the precision it runs
    "nodes",  # one per compute op (dispatch cost), plus one per requantised Concat input
    "concat_bytes",  # output bytes of Concat (requantisation in quantised graphs)
    "norm_elems",  # elements through Softmax / LayerNorm / GELU / Sigmoid / reductions
    "requant_bytes",  # Concat inputs quantised at another scale than the output: rescaled first
    "spill_bytes",  # activation tensors too large for VTCM: written to and read back from DRAM
)
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
        "Sigmoid",
        "Tanh",
        "Exp",
        "Log",
        "Reciprocal",
    }
)
FLOAT_BITS = 16  # HTP runs float graphs in fp16
# Input channels HMX takes per block in a grouped convolution. Chosen by leave-one-out on the fit
# set only (none / 16 / 32 / 64; the fit set's grouped convolutions are ResNeXt-101's 8- to
# 64-channel groups and RegNetX-3.2GF's 48-channel ones): 32 had the lowest mean LOO error on
# both phones (scripts/fit_device_estimate.py; validation figures were not looked at).
HMX_CHANNEL_TILE = 32
# An activation larger than half of an 8 MB VTCM (the studio's assumed size, support.py) cannot sit
# there beside its producer's or consumer's other operand: it goes to DRAM and back.
SPILL_BYTES = 4 * 1024 * 1024


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


def _bias_add(graph: ModelGraph, node: NodeInfo, static: set[str]) -> bool:
    """True for the Add of a constant bias to a MatMul by a constant weight: ORT fuses the two into
    one Gemm before the QNN EP sees the graph (MatMulAddFusion), so HTP runs one op."""
    if node.op_type != "Add" or len(node.inputs) != 2:
        return False
    consts = [t for t in node.inputs if t in static]
    acts = [t for t in node.inputs if t not in static]
    if len(consts) != 1 or len(acts) != 1:
        return False
    prod = _real_producer(graph, acts[0])
    info = graph.tensors.get(acts[0])
    return bool(
        prod is not None
        and prod.op_type == "MatMul"
        and sum(t in static for t in prod.inputs) == 1
        and info is not None
        and len(info.consumers) == 1
    )


def _real_consumers(graph: ModelGraph, tensor: str) -> list[NodeInfo]:
    """The nodes consuming ``tensor``, looking through Q/DQ pairs."""
    out: list[NodeInfo] = []
    info = graph.tensors.get(tensor)
    for c in info.consumers if info else []:
        node = graph.node_by_id.get(c)
        if node is None:
            continue
        if node.op_type in QDQ_OPS and node.outputs:
            out.extend(_real_consumers(graph, node.outputs[0]))
        else:
            out.append(node)
    return out


def _qnn_ep_fused(graph: ModelGraph, node: NodeInfo) -> bool:
    """True for ops the QNN EP folds into a neighbour when it builds the QNN graph (its node-group
    fusions): HardSigmoid(x) * x runs as one HardSwish (the QDQ build writes HardSwish that way),
    and a Reshape feeding only a Gemm becomes the FullyConnected's own input reshape (how ORT's
    MatMul + Add fusion leaves an N-D MatMul in a prepared model: Reshape -> Gemm -> Reshape)."""
    if node.op_type == "Mul" and len(node.inputs) == 2:
        prods = [_real_producer(graph, t) for t in node.inputs]
        for i, prod in enumerate(prods):
            other = prods[1 - i]
            if (
                prod is not None
                and prod.op_type == "HardSigmoid"
                and prod.inputs
                and _real_producer(graph, prod.inputs[0]) is other
            ):
                return True
    if node.op_type == "Reshape" and node.outputs:
        users = _real_consumers(graph, node.outputs[0])
        if len(users) == 1 and users[0].op_type == "Gemm":
            return True
        # ... and the Reshape back to N-D after that Gemm: together they are one N-D MatMul
        prod = _real_producer(graph, node.inputs[0]) if node.inputs else None
        before = _real_producer(graph, prod.inputs[0]) if prod and prod.inputs else None
        return bool(
            prod is not None
            and prod.op_type == "Gemm"
            and before is not None
            and before.op_type == "Reshape"
            and len(_real_consumers(graph, prod.outputs[0])) == 1
        )
    return False


def _group_padding(group: int, c_in: int) -> float:
    """MACs HMX spends per useful MAC of a grouped convolution: it takes input channels in blocks
    of ``HMX_CHANNEL_TILE``, so a group narrower than a block is padded (a 4-channel group of
    ResNeXt-50 costs a 32-channel one). 1.0 for ungrouped convolutions and full groups."""
    if group <= 1 or c_in <= 0:
        return 1.0
    return math.ceil(c_in / HMX_CHANNEL_TILE) * HMX_CHANNEL_TILE / c_in


def _gelu_members(graph: ModelGraph, static: set[str]) -> set[str]:
    """Ids of the Div/Add/Mul nodes of each exported erf-GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))``:
    the QNN EP builds the five nodes as one Gelu op (its QNN graph dump of convnext_tiny has 18
    Gelu ops and no Erf), so the Erf alone stands for the op and the other four cost nothing."""
    members: set[str] = set()
    for erf in graph.nodes:
        if erf.op_type != "Erf" or not erf.inputs or not erf.outputs:
            continue
        div = _real_producer(graph, erf.inputs[0])
        if (
            div is None
            or div.op_type != "Div"
            or len(div.inputs) != 2
            or div.inputs[1] not in static
        ):
            continue
        x = div.inputs[0]
        adds = _real_consumers(graph, erf.outputs[0])
        if (
            len(adds) != 1
            or adds[0].op_type != "Add"
            or not any(t in static for t in adds[0].inputs)
        ):
            continue
        muls = _real_consumers(graph, adds[0].outputs[0])
        if len(muls) != 1 or muls[0].op_type != "Mul":
            continue
        m1 = muls[0]
        others = [_real_producer(graph, t) for t in m1.inputs]
        half = next((o for o in others if o is not None and o.op_type == "Mul"), None)
        px = _real_producer(graph, x)
        if x in m1.inputs or (px is not None and any(o is px for o in others)):
            tail = _real_consumers(graph, m1.outputs[0])
            if (
                len(tail) == 1
                and tail[0].op_type == "Mul"
                and any(t in static for t in tail[0].inputs)
            ):
                members.update({div.id, adds[0].id, m1.id, tail[0].id})
        elif half is not None and x in half.inputs and any(t in static for t in half.inputs):
            members.update({div.id, adds[0].id, half.id, m1.id})
    return members


NHWC_PERMS = ((0, 2, 3, 1), (0, 3, 1, 2))


def _layout_transpose(node: NodeInfo) -> bool:
    """True for a 4-D Transpose between NCHW and NHWC. HTP keeps activations in NHWC; the QNN EP
    lays the graph out that way (ORT's layout transformer, then its transpose optimiser cancels
    the conversions it inserted against the model's own), so such a Transpose moves no data."""
    perm = node.attributes.get("perm") if node.op_type == "Transpose" else None
    return perm is not None and tuple(int(p) for p in perm) in NHWC_PERMS


def _scalars(graph: ModelGraph) -> dict[str, float]:
    """Single-value initializers and Constants (Q/DQ scales) by tensor name."""
    out: dict[str, float] = {}
    for t in graph.proto.graph.initializer:
        if len(t.dims) == 0 or (len(t.dims) == 1 and t.dims[0] == 1):
            try:
                out[t.name] = float(numpy_helper.to_array(t).reshape(-1)[0])
            except (ValueError, TypeError):  # external or unreadable: not a scale we can compare
                pass
    for n in graph.proto.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            arr = numpy_helper.to_array(n.attribute[0].t)
            if arr.size == 1:
                out[n.output[0]] = float(arr.reshape(-1)[0])
    return out


def _scale_in(graph: ModelGraph, tensor: str, scalars: dict[str, float]) -> float | None:
    """The scale of the DequantizeLinear producing ``tensor`` (None if not a per-tensor DQ)."""
    info = graph.tensors.get(tensor)
    prod = graph.node_by_id.get(info.producer or "") if info else None
    if prod is None or prod.op_type != "DequantizeLinear" or len(prod.inputs) < 2:
        return None
    return scalars.get(prod.inputs[1])


def _scale_out(graph: ModelGraph, tensor: str, scalars: dict[str, float]) -> float | None:
    """The scale of the QuantizeLinear consuming ``tensor``."""
    info = graph.tensors.get(tensor)
    for c in info.consumers if info else []:
        q = graph.node_by_id.get(c)
        if q is not None and q.op_type == "QuantizeLinear" and len(q.inputs) > 1:
            return scalars.get(q.inputs[1])
    return None


def requantised_inputs(graph: ModelGraph, node: NodeInfo, scalars: dict[str, float]) -> list[str]:
    """The inputs of a quantised Concat at another scale than its output (rescaled before it)."""
    if node.op_type != "Concat" or not node.outputs:
        return []
    out = _scale_out(graph, node.outputs[0], scalars)
    picked = []
    for t in node.inputs:
        if not t:
            continue
        s = _scale_in(graph, t, scalars)
        if s is None or out is None or abs(s - out) > 1e-6 * abs(out):
            picked.append(t)
    return picked


def requant_bytes(graph: ModelGraph, node: NodeInfo, scalars: dict[str, float]) -> float:
    """Bytes of a quantised Concat's inputs that HTP must rescale to the output's scale first.

    A Concat of int8 tensors at one shared scale is a copy; every input at another scale is
    requantised (read, rescaled, written) before it. A densely concatenating CNN quantised per
    tensor has hundreds of such inputs, which is why AI Hub measures it slower at w8a8 than fp16.
    """
    return float(
        sum(
            _elements(graph, t) * _bits_of(graph, t, True) / 8
            for t in requantised_inputs(graph, node, scalars)
        )
    )


# Highest tensor rank the QNN HTP backend takes: on this host the QNN EP rejects every rank-6
# Reshape/Transpose of swin_tiny ("Failed to add node"; rank 5 compiles), so on a phone those
# nodes run on the CPU, between HTP partitions.
HTP_MAX_RANK = 5


def over_rank(graph: ModelGraph, feats: list[NodeFeatures]) -> list[str]:
    """Ids of featurised nodes with a tensor above ``HTP_MAX_RANK``: the HTP cannot take them."""
    out = []
    for f in feats:
        node = graph.node_by_id.get(f.id)
        if node is None:
            continue
        for t in list(node.inputs) + list(node.outputs):
            info = graph.tensors.get(t) if t else None
            if info is not None and info.shape is not None and len(info.shape) > HTP_MAX_RANK:
                out.append(f.id)
                break
    return out


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
    scalars = _scalars(graph) if quantized else {}
    # the QDQ build runs GELU's parts as written (no Gelu in its QNN graph dump)
    gelu = set() if quantized else _gelu_members(graph, static)
    out: list[NodeFeatures] = []
    for node in graph.nodes:
        op = node.op_type
        if (
            op in QDQ_OPS
            or op in FREE_OPS
            or _fused(graph, node)
            or _bias_add(graph, node, static)
            or _qnn_ep_fused(graph, node)
            or _layout_transpose(node)
            or node.id in gelu
        ):
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
        extra_nodes = 0.0
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
                v["macs_dense"] = macs * _group_padding(group, c_in)
        elif op in ("MatMul", "Gemm"):
            v["macs_dense"] = macs
        else:
            v["macs_dense"] = 0.0
        if op in NORM_OPS:
            v["norm_elems"] = float(out_elems)
        if op == "Concat":
            v["concat_bytes"] = out_elems * bits / 8
            if quantized:
                rescaled = requantised_inputs(graph, node, scalars)
                v["requant_bytes"] = requant_bytes(graph, node, scalars)
                # each rescaled input is one more op in the compiled graph (a requantise that
                # reads and writes it): priced like any other op, by the same coefficients
                extra_nodes = float(len(rescaled))
                act_bytes += 2 * v["requant_bytes"]
        v["act_bytes"] = act_bytes
        v["spill_bytes"] = sum(
            b
            for b in (
                _elements(graph, t) * _bits_of(graph, t, quantized) / 8
                for t in act_in + [t for t in node.outputs if t]
            )
            if b > SPILL_BYTES
        )
        v["weight_bytes"] = weight_bytes
        v["nodes"] = 1.0 + extra_nodes
        out.append(NodeFeatures(id=node.id, op_type=op, bits=bits, values=v))
    return out


def totals(features: list[NodeFeatures]) -> dict[str, float]:
    """Feature sums over a model (what the fit sees per model)."""
    tot = dict.fromkeys(FEATURES, 0.0)
    for f in features:
        for k, x in f.values.items():
            tot[k] += x
    return tot
