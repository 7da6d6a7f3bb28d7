"""Compile-time constants of a graph, folded as the QNN compiler folds them before it costs anything.

Why: a model exported from dynamic code (``x.shape`` in PyTorch, reshape targets computed at run
time) arrives with Shape -> Gather -> Concat -> Reshape chains. With the input shapes fixed, every
one of those is a constant: ONNX Runtime folds them before it hands the graph to the QNN EP, and the
HTP never runs them. Featurised as they are, they count as ops (a Swin-T has ~3,000 of them beside
~600 real ops), their int64 vectors count as activation bytes, and the shapes below them stay
unknown to shape inference, so the Reshapes, MatMuls and Softmaxes they feed count no bytes and no
MACs. This module finds the tensors known at compile time (initializers, Constants, the Shape/Size
of a statically shaped tensor, and anything computed only from those), evaluates the ones that
come from shapes (one small ONNX Runtime session over that subgraph alone), and rebuilds the graph
with them as initializers so shape inference sees the shapes the compiler sees.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import external_data_helper, numpy_helper

from studio.core.model import loading as model_io
from studio.core.model.graph import ModelGraph

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
SHAPE_OPS = frozenset({"Shape", "Size"})
# Ops with no inputs whose output is a constant (ConstantOfShape has an input, folded as usual).
SOURCE_OPS = frozenset({"Constant"})


def _static_shape(graph: ModelGraph, tensor: str) -> bool:
    info = graph.tensors.get(tensor)
    return bool(
        info is not None
        and info.shape is not None
        and all(isinstance(d, int) and d >= 0 for d in info.shape)
    )


# Ops whose output shape depends on input VALUES: below one fed by a run-time value, shapes are
# not compile-time constants. (Reshape and friends are listed with the inputs that set the shape.)
DATA_DEPENDENT = frozenset({"NonZero", "Unique", "Compress", "NonMaxSuppression"})
SHAPE_INPUTS = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4),
    "Pad": (1,),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "TopK": (1,),
    "OneHot": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
}


def static_tensors(graph: ModelGraph) -> tuple[set[str], set[str]]:
    """(every tensor known at compile time, those of them derived from a shape).

    The Shape/Size of a tensor is known at compile time unless its shape depends on run-time
    values (a symbolic input dimension, or a data-dependent op above it). A Q/DQ of a constant is
    a (quantised) weight: static, kept as the op's weight, never folded.
    """
    static = {t.name for t in graph.tensors.values() if t.is_initializer}
    dynamic_shape = {
        t.name
        for t in graph.inputs
        if t.shape is None or not all(isinstance(d, int) and d >= 0 for d in t.shape)
    }
    from_shape: set[str] = set()
    for node in graph.nodes:
        outs = [t for t in node.outputs if t]
        ins = [t for t in node.inputs if t]
        op = node.op_type
        shape_args = [node.inputs[i] for i in SHAPE_INPUTS.get(op, ()) if i < len(node.inputs)]
        if (
            any(t in dynamic_shape for t in ins)
            or (op in DATA_DEPENDENT and not all(t in static for t in ins))
            or any(t and t not in static for t in shape_args)
        ):
            dynamic_shape.update(outs)
        if op in SOURCE_OPS:
            static.update(outs)
        elif op in SHAPE_OPS:
            if ins and ins[0] not in dynamic_shape:
                static.update(outs)
                from_shape.update(outs)
        elif ins and all(t in static for t in ins):
            static.update(outs)
            if op not in QDQ_OPS and any(t in from_shape for t in ins):
                from_shape.update(outs)
    return static, from_shape


def _run_for(model: onnx.ModelProto, wanted: list[str], feeds: dict) -> dict:
    """The ``wanted`` tensors of ``model`` on ``feeds``, unoptimised (as the graph defines them)."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    return dict(zip(wanted, session.run(wanted, feeds), strict=True))


def _shape_constants(
    graph: ModelGraph, static: set[str], from_shape: set[str]
) -> dict[str, object]:
    """Values of the shape-derived tensors the live graph consumes.

    When every Shape reads a tensor whose shape inference already knows, one small ORT session
    over the shape subgraph alone (Shape replaced by its value); otherwise (shapes below a
    dynamic reshape are unknown until it is folded) one run of the whole model on zeros, fetching
    those tensors: their values depend on shapes only, never on the input's values.
    """
    live_inputs = {
        t for n in graph.nodes if not all(o in static for o in n.outputs if o) for t in n.inputs
    }
    wanted = sorted((from_shape & live_inputs) | ({t.name for t in graph.outputs} & from_shape))
    if not wanted:
        return {}
    shape_nodes = [n for n in graph.nodes if n.op_type in SHAPE_OPS and n.outputs[0] in from_shape]
    if not all(_static_shape(graph, n.inputs[0]) for n in shape_nodes):
        model = onnx.ModelProto()
        model.CopyFrom(graph.proto)
        _inline_external(model, graph)
        del model.graph.value_info[:]
        known_out = {o.name for o in model.graph.output}
        model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in wanted if t not in known_out)
        feeds = {
            t.name: np.zeros(
                [int(d) for d in t.shape or []],
                dtype=onnx.helper.tensor_dtype_to_np_dtype(int(t.elem_type or 1)),
            )
            for t in graph.inputs
        }
        return _run_for(model, wanted, feeds)
    # the shape nodes, and every node feeding them (Constants, casts of small initializers)
    include: set[str] = set()
    need = {n.id for n in graph.nodes if n.outputs and all(o in from_shape for o in n.outputs if o)}
    for node in reversed(graph.nodes):
        if node.id in need:
            include.add(node.id)
            if node.op_type in SHAPE_OPS:
                continue
            for t in node.inputs:
                info = graph.tensors.get(t) if t else None
                if info is not None and info.producer and not info.is_initializer:
                    need.add(info.producer)
    nodes = []
    needed_inits: set[str] = set()
    for node in graph.nodes:
        outs = [t for t in node.outputs if t]
        if node.id not in include:
            continue
        if node.op_type in SHAPE_OPS:
            shape = list(graph.tensors[node.inputs[0]].shape or [])
            if node.op_type == "Size":
                value = np.array(int(np.prod(shape)), dtype=np.int64)
            else:
                start = int(node.attributes.get("start", 0) or 0)
                end = node.attributes.get("end")
                value = np.array(shape[start : None if end is None else int(end)], dtype=np.int64)
            nodes.append(
                onnx.helper.make_node("Constant", [], outs, value=numpy_helper.from_array(value))
            )
            continue
        nodes.append(graph.proto.graph.node[node.index])
        needed_inits.update(t for t in node.inputs if t and graph.tensors[t].is_initializer)
    inits = [t for t in graph.proto.graph.initializer if t.name in needed_inits]
    sub = onnx.helper.make_graph(
        nodes, "shape_constants", [], [onnx.ValueInfoProto(name=t) for t in wanted], inits
    )
    model = onnx.helper.make_model(sub, opset_imports=list(graph.proto.opset_import))
    model.ir_version = graph.proto.ir_version
    _inline_external(model, graph)
    return _run_for(model, wanted, {})


def _inline_external(model: onnx.ModelProto, graph: ModelGraph) -> None:
    """Read externally stored initializers into ``model`` (ORT cannot resolve them from bytes)."""
    if any(model_io.is_external(t) for t in model.graph.initializer):
        external_data_helper.load_external_data_for_model(model, str(graph.path.parent))


def fold_shape_constants(graph: ModelGraph) -> ModelGraph:
    """``graph`` with its shape-derived constants folded into initializers (the same graph when it
    has none). Node ids are kept: every surviving node is named by its id in ``graph``."""
    static, from_shape = static_tensors(graph)
    if not from_shape:
        return graph
    try:
        values = _shape_constants(graph, static, from_shape)
    except Exception as exc:  # noqa: BLE001 - a graph ORT cannot evaluate is featurised unfolded
        graph.notes.append(f"shape constants not folded ({' '.join(str(exc).split())[:200]})")
        return graph
    proto = onnx.ModelProto()
    proto.CopyFrom(graph.proto)
    g = proto.graph
    kept = []
    for node in graph.nodes:
        outs = [t for t in node.outputs if t]
        if outs and all(t in from_shape for t in outs):
            continue  # evaluated (or dead): the compiler folds it
        p = onnx.NodeProto()
        p.CopyFrom(graph.proto.graph.node[node.index])
        p.name = node.id
        kept.append(p)
    del g.node[:]
    g.node.extend(kept)
    g.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())
    # shapes inferred before folding were partial: let inference redo them
    del g.value_info[:]
    folded = ModelGraph._structure(graph.path, proto, graph.external_refs)
    if folded is None:  # cannot happen: the order of surviving nodes is unchanged
        return graph
    folded._complete()
    folded.notes.append(f"{len(graph.nodes) - len(kept)} shape-arithmetic nodes folded")
    return folded
