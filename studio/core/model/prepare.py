"""Getting an ONNX protobuf ready for :class:`studio.core.model.graph.ModelGraph` to analyse.

Split from ``model.py`` so that module keeps to the graph the studio works with: these are the
load-time steps on the raw protobuf (a topological order, the user's input-shape fixes, shape
inference) and the readers of its fields (tensor dims, attribute values).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
from onnx import AttributeProto, helper

from studio.core.errors import BadInputError, ModelLoadError
from studio.core.model import skeleton
from studio.core.model.costs import Shape, dtype_name
from studio.core.model.toposort import kahn_order


def attribute_value(attr: AttributeProto) -> Any:
    """A JSON-friendly view of an attribute; tensors and graphs are summarised, not copied."""
    kind = attr.type
    if kind == AttributeProto.INT:
        return attr.i
    if kind == AttributeProto.INTS:
        return list(attr.ints)
    if kind == AttributeProto.FLOAT:
        return attr.f
    if attr.type == AttributeProto.TENSOR:
        t = attr.t
        return f"tensor {dtype_name(t.data_type)}{list(t.dims)}"
    if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        return "<subgraph>"
    if attr.type == AttributeProto.SPARSE_TENSOR:
        return "<sparse tensor>"
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def dims_of(type_proto: onnx.TypeProto) -> tuple[Shape, int | None]:
    """Shape (ints, symbolic names, None for unknown) and element type of a value's type."""
    if not type_proto.HasField("tensor_type"):
        return None, None
    tt = type_proto.tensor_type
    elem = tt.elem_type or None
    if not tt.HasField("shape"):
        return None, elem
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        which = d.WhichOneof("value")
        if which == "dim_value":
            dims.append(int(d.dim_value))
        elif which == "dim_param":
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims, elem


def topological_order(graph: onnx.GraphProto, path: Path) -> list[int]:
    """Kahn's order of node indices (``toposort.kahn_order``); a cycle is a ModelLoadError.

    The error names nodes on the cycle, or the node that consumes its own output. Each node's
    fields are read from the protobuf once (field access dominates on 20k nodes).
    """
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer[out] = i
    get = producer.get
    edges: list[tuple[int, int]] = []
    for i, node in enumerate(nodes):
        deps: set[int] = set()
        for name in node.input:
            j = get(name)
            if j is None or j in deps:
                continue
            if j == i:
                raise ModelLoadError(
                    f"node '{node.name or node.op_type}' consumes its own output '{name}' "
                    "(the graph has a cycle)",
                    path=str(path),
                )
            deps.add(j)
            edges.append((j, i))
    order, stuck = kahn_order(len(nodes), edges)
    if stuck:
        names = [nodes[i].name or nodes[i].op_type for i in stuck]
        raise ModelLoadError(
            f"the graph has a cycle through {len(names)} nodes, e.g. {', '.join(names[:5])}",
            path=str(path),
        )
    return order


def sort_nodes(graph: onnx.GraphProto) -> None:
    """Put ``graph``'s nodes in a topological order in place (``toposort.kahn_order``), for a
    rewrite that appended nodes ahead of their consumers (ORT wants producers first).

    Unlike :func:`topological_order` a cycle is not an error here: the nodes on it, and those
    downstream of it, keep their order at the end (the session that loads the graph says why).
    """
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    edges = [
        (producer[name], i)
        for i, node in enumerate(nodes)
        for name in node.input
        if name in producer
    ]
    order, stuck = kahn_order(len(nodes), edges)
    copies = [onnx.NodeProto() for _ in nodes]
    for copy_, i in zip(copies, order + stuck, strict=True):
        copy_.CopyFrom(nodes[i])
    del graph.node[:]
    graph.node.extend(copies)


def parse_dims(text: str, what: str) -> list[int]:
    """``"1,3,224,224"`` (or ``1x3x224x224``) as dims; ``what`` names the field in the error.

    The one reader of typed-in shapes: ``--input-shape NAME=DIMS`` on every command and the
    shape fields of the GUI's import dialog.
    """
    try:
        dims = [int(d) for d in str(text).replace("x", ",").split(",") if d.strip()]
    except ValueError:
        dims = []
    if not dims or any(d <= 0 for d in dims):
        raise BadInputError(
            f"{what}: '{text}' is not a list of positive integers, e.g. 1,3,224,224"
        )
    return dims


def check_input_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]], path: str | Path | None
) -> dict[str, onnx.ValueInfoProto]:
    """The graph inputs ``shapes`` names, after checking the request fits them.

    One ModelLoadError per kind of mistake, the same wherever the shapes come from
    (``--input-shape``, a project, a request): a name that is not a real input (initializers listed
    as inputs by old exporters do not count), or a rank other than the input's. A dim the model
    fixes may be given another size (a fully convolutional model at another resolution); a
    model whose other shapes then disagree fails in shape inference or the session, named.
    """
    where = str(path) if path is not None else None
    inits = {t.name for t in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in inits}
    unknown = [name for name in shapes if name not in inputs]
    if unknown:
        raise ModelLoadError(
            f"--input-shape names {', '.join(unknown)}, which "
            f"{'is not a model input' if len(unknown) == 1 else 'are not model inputs'} "
            f"(inputs: {', '.join(inputs) or 'none'})",
            path=where,
        )
    for name, dims in shapes.items():
        current = inputs[name].type.tensor_type.shape.dim
        if len(current) and len(current) != len(dims):
            raise ModelLoadError(
                f"--input-shape {name} has {len(dims)} dims but the input has {len(current)}",
                path=where,
            )
    return {name: inputs[name] for name in shapes}


ANONYMOUS_DIMS = frozenset({"?", ""})  # symbolic dims that name no size shared with others


def fix_input_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]], path: str | Path | None
) -> None:
    """Fix the named inputs to ``shapes``, in place: the one input-shape fixer of the studio.

    Used by ``ModelGraph.load``, calibration (``calibration.collect.load_fixed``) and the copy a
    QNN session opens (``engine.feeds.write_fixed_copy``), so all three accept and refuse the
    same requests (``check_input_shapes``). A symbolic dim is replaced wherever the graph uses it,
    not only on the input (a ``batch`` output becomes the same number, as onnxruntime's
    ``make_dim_param_fixed`` does), so one name cannot be given two sizes. Anonymous dims (``?``,
    as Paddle writes every unknown size, or an empty name) name nothing shared: each is fixed on
    its own input only (ppocr's classifier has H and W both '?', 48 and 192).
    """
    where = str(path) if path is not None else None
    inputs = check_input_shapes(model, shapes, path)
    params: dict[str, tuple[int, str]] = {}
    for name, dims in shapes.items():
        for d, want in zip(inputs[name].type.tensor_type.shape.dim, dims, strict=False):
            if d.WhichOneof("value") != "dim_param" or d.dim_param in ANONYMOUS_DIMS:
                continue
            seen = params.setdefault(d.dim_param, (int(want), name))
            if seen[0] != int(want):
                raise ModelLoadError(
                    f"--input-shape gives the model's dim '{d.dim_param}' two sizes: "
                    f"{seen[0]} ({seen[1]}) and {int(want)} ({name})",
                    path=where,
                )
    for name, dims in shapes.items():
        tt = inputs[name].type.tensor_type
        del tt.shape.dim[:]
        for d in dims:
            tt.shape.dim.add().dim_value = int(d)
    if params:
        _replace_dim_params(model.graph, {p: v for p, (v, _) in params.items()})


def _replace_dim_params(graph: onnx.GraphProto, values: dict[str, int]) -> None:
    """Each ``dim_param`` named in ``values`` becomes its number, in every value and subgraph."""
    for vi in (*graph.input, *graph.output, *graph.value_info):
        if not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.WhichOneof("value") == "dim_param" and d.dim_param in values:
                d.dim_value = values[d.dim_param]  # setting the oneof clears the name
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                _replace_dim_params(attr.g, values)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    _replace_dim_params(sub, values)


def infer_shapes(model: onnx.ModelProto, path: Path) -> tuple[onnx.ModelProto, list[str]]:
    """onnx shape inference, then ORT's symbolic inference when onnx left float tensors unshaped."""
    notes: list[str] = []
    original = model
    model, weights = skeleton.without_weights(model)  # dims and types are all it needs
    try:
        inferred = _onnx_infer(model)
    except Exception as exc:  # onnx raises InferenceError/RuntimeError on inconsistent models
        notes.append(f"onnx shape inference failed: {' '.join(str(exc).split())[:300]}")
        inferred = model
    if _unshaped_outputs(inferred):
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            symbolic = SymbolicShapeInference.infer_shapes(copy.deepcopy(inferred), auto_merge=True)
            if symbolic is not None and len(_unshaped_outputs(symbolic)) < len(
                _unshaped_outputs(inferred)
            ):
                notes.append("shapes completed by onnxruntime's symbolic shape inference")
                inferred = symbolic
        except Exception as exc:  # best effort: a partial shape map is still usable
            notes.append(f"symbolic shape inference failed: {' '.join(str(exc).split())[:200]}")
    return skeleton.restore_weights(inferred, original, weights), notes


def _onnx_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnx's shape inference through files, because that binding releases the GIL.

    The in-memory ``infer_shapes`` holds the GIL for the whole inference (a 782 ms gap in the UI
    thread's timer while a 20k-node export's second load stage ran on a worker thread, measured);
    ``infer_shapes_path`` lets the window run meanwhile (0 ms gap), and the weight-less skeleton
    is cheap to write and read back.
    """
    with tempfile.TemporaryDirectory(prefix="studio-shapes-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(model.SerializeToString())
        onnx.shape_inference.infer_shapes_path(
            str(src), str(dst), strict_mode=False, data_prop=True
        )
        return onnx.ModelProto.FromString(dst.read_bytes())


def _unshaped_outputs(model: onnx.ModelProto) -> list[str]:
    known = {v.name for v in model.graph.value_info} | {v.name for v in model.graph.output}
    return [o for n in model.graph.node for o in n.output if o and o not in known]
