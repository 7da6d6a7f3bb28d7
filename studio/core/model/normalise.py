"""Graph facts and rewrites that real exporters make necessary before quantising or batching.

Three mechanisms, not per-model patches (REFERENCE.md §7):

- :func:`normalise_gemm_biases`: exporters write a Gemm's C (or a MatMul + Add bias that ORT's
  pre-processing fuses into a Gemm) as ``[1, N]``, a scalar, or ``[M, N]``. onnxruntime's QDQ
  quantiser treats C as a per-channel int32 bias and indexes it as a vector; a 2-D C made it
  compare arrays ("The truth value of an array with more than one element is ambiguous"). ``[1,
  N]`` and scalars are rewritten as the equivalent ``[N]``; an ``[M, N]`` C (not a bias of
  output channels at all) moves to an Add after the Gemm.
- :func:`fixed_batch_nodes`: a Reshape/Expand whose target shape is a constant with a literal
  leading dim (Paddle's ``[1, 200]``) pins the batch; stacking samples into such a model fails.
  Knowing it before running avoids the failing run (and onnxruntime's error log).
- :func:`drop_unbounded_extrema`: ``Max(x, -inf)`` / ``Min(x, +inf)`` is the identity (jax2tf
  writes ``max(-inf, ReduceMax(logits))`` before a softmax). Quantised, the infinite constant is
  a weight whose scale is inf (its zero point NaN): the Max then outputs 0 instead of ``x``, and
  the softmax after it saturates. Removing the identity is exact in float.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

_SHAPE_OPS = {"Reshape": 1, "Expand": 1, "ConstantOfShape": 0, "Tile": 1}


def _constants(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: t for t in proto.graph.initializer}
    out: dict[str, np.ndarray] = {}
    for name, tensor in values.items():
        if tensor.data_type == onnx.TensorProto.INT64 or tensor.data_type == onnx.TensorProto.INT32:
            out[name] = numpy_helper.to_array(tensor)
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None and attr.t.data_type in (
                onnx.TensorProto.INT64,
                onnx.TensorProto.INT32,
            ):
                out[node.output[0]] = numpy_helper.to_array(attr.t)
    return out


def fixed_batch_nodes(proto: onnx.ModelProto) -> list[str]:
    """Nodes whose constant target shape fixes the leading (batch) dim to a literal size.

    Reshape's 0 (copy) and -1 (infer) leave the batch free; any positive leading value, as
    paddle2onnx and torch's tracer write (``[1, 200]``, ``[1, 6, -1]``), does not. Tile repeats
    of a leading 1 are fine, so Tile counts only when the input shape is the issue (not checked).
    """
    consts = _constants(proto)
    found = []
    for index, node in enumerate(proto.graph.node):
        slot = _SHAPE_OPS.get(node.op_type)
        if slot is None or node.op_type == "Tile" or len(node.input) <= slot:
            continue
        shape = consts.get(node.input[slot])
        if shape is None or shape.ndim != 1 or shape.size == 0:
            continue
        lead = int(shape[0])
        if node.op_type == "Reshape" and lead in (0, -1):
            continue
        if node.op_type == "Expand" and lead == 1:
            continue  # broadcasting keeps the input's batch
        found.append(node.name or f"{node.op_type}_{index}")
    return found


def normalise_gemm_biases(proto: onnx.ModelProto) -> list[str]:
    """Rewrite every Gemm C initializer as a vector of output channels (in place); returns notes.

    The arithmetic is unchanged: Gemm broadcasts C to [M, N] and ``[1, N]``/scalar C equal their
    ``[N]`` form; an ``[M, N]`` C becomes an Add after the Gemm.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    users: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    notes: list[str] = []
    new_nodes: list[tuple[int, onnx.NodeProto]] = []
    for index, node in enumerate(proto.graph.node):
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in inits:
            continue
        c_name = node.input[2]
        c_tensor = inits[c_name]
        dims = list(c_tensor.dims)
        n_out = _gemm_outputs(node, inits)
        if len(dims) == 1 and (n_out is None or dims[0] == n_out):
            continue
        values = numpy_helper.to_array(c_tensor)
        label = node.name or f"Gemm_{index}"
        if n_out is not None and values.size in (1, n_out) and (values.ndim < 2 or dims[0] == 1):
            vector = np.broadcast_to(values.reshape(-1), (n_out,)).astype(values.dtype)
            replacement = numpy_helper.from_array(np.ascontiguousarray(vector), c_name)
            if users.get(c_name, 0) > 1:  # shared: give this Gemm its own copy
                replacement.name = f"{c_name}_vector"
                proto.graph.initializer.append(replacement)
                node.input[2] = replacement.name
            else:
                c_tensor.CopyFrom(replacement)
            notes.append(f"Gemm '{label}': bias {dims} written as [{n_out}] (same arithmetic)")
            continue
        # a full [M, N] addend is not a bias: move it after the Gemm
        out = node.output[0]
        mid = f"{out}_before_bias"
        node.output[0] = mid
        del node.input[2]
        add = helper.make_node("Add", [mid, c_name], [out], name=f"{label}_bias_add")
        new_nodes.append((index + 1, add))
        notes.append(f"Gemm '{label}': addend {dims} moved to an Add after it")
    for offset, (position, add) in enumerate(new_nodes):
        proto.graph.node.insert(position + offset, add)
    return notes


def _gemm_outputs(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> int | None:
    b = inits.get(node.input[1])
    if b is None or len(b.dims) != 2:
        return None
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    return int(b.dims[0] if trans_b else b.dims[1])


def constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of ``name`` when it is an initializer or a Constant node's ``value`` tensor.

    One reader for the graph rewrites here and in ``model.variance`` (each had its own copy).
    """
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            return None if attr is None else numpy_helper.to_array(attr.t)
    return None


def _float_constant(proto: onnx.ModelProto, name: str) -> np.ndarray | None:
    value = constant_value(proto.graph, name)
    return value if value is not None and value.dtype.kind == "f" else None


# the constant that makes each op the identity on its other operand
_NEUTRAL = {"Max": -np.inf, "Min": np.inf}


class _Ranks:
    """Tensor ranks from the model's value infos, shape-inferred (on a copy) on first need."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.proto = proto
        self.known: dict[str, int] | None = None

    def __call__(self, name: str) -> int | None:
        if self.known is None:
            try:
                typed = onnx.shape_inference.infer_shapes(self.proto, strict_mode=False)
            except Exception:  # partial shapes: what the model itself records
                typed = self.proto
            g = typed.graph
            self.known = {
                vi.name: len(vi.type.tensor_type.shape.dim)
                for vi in (*g.input, *g.value_info, *g.output)
                if vi.type.tensor_type.HasField("shape")
            }
        return self.known.get(name)


def drop_unbounded_extrema(proto: onnx.ModelProto) -> list[str]:
    """Remove every ``Max(x, -inf)`` / ``Min(x, +inf)`` (in place); returns one note each.

    Only where the infinite operand is a constant that does not broadcast ``x`` to a larger shape
    (a scalar, or all-1 dims of no higher rank than ``x``). Consumers read ``x`` instead; when the
    output is a graph output the node becomes an Identity so the output keeps its name.
    """
    graph = proto.graph
    outputs = {o.name for o in graph.output}
    rank_of = _Ranks(proto)
    rewire: dict[str, str] = {}
    notes: list[str] = []
    for node in list(graph.node):
        neutral = _NEUTRAL.get(node.op_type)
        if neutral is None or len(node.input) != 2 or len(node.output) != 1:
            continue
        for slot in (0, 1):
            value = _float_constant(proto, node.input[slot])
            if value is None or value.size != 1 or float(value.reshape(-1)[0]) != neutral:
                continue
            other = rewire.get(node.input[1 - slot], node.input[1 - slot])
            rank = rank_of(other) if value.ndim else 0
            if value.ndim and (rank is None or value.ndim > rank):
                continue  # it would broadcast x to a higher rank: not the identity
            label, op = node.name or node.output[0], node.op_type
            if node.output[0] in outputs:
                identity = helper.make_node("Identity", [other], [node.output[0]], name=label)
                node.CopyFrom(identity)
            else:
                rewire[node.output[0]] = other
                graph.node.remove(node)
            notes.append(f"{op} '{label}' with a constant {neutral} removed (the identity)")
            break
    if rewire:
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name in rewire:
                    node.input[i] = rewire[name]
        _drop_unused_constants(proto)
    return notes


def _drop_unused_constants(proto: onnx.ModelProto) -> None:
    used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
    for tensor in list(proto.graph.initializer):
        if tensor.name not in used:
            proto.graph.initializer.remove(tensor)
    for node in list(proto.graph.node):
        if node.op_type == "Constant" and node.output and node.output[0] not in used:
            proto.graph.node.remove(node)
