"""Split a model along a backend assignment into contiguous per-backend segment models.

Each segment is a valid ONNX sub-model whose inputs are the boundary tensors it consumes and whose
outputs are the tensors later segments (or the graph outputs) need. Segments follow the model's
topological order, so running them one after the other with a shared tensor dictionary reproduces
the whole model. ``Constant`` nodes are copied into every segment that uses them instead of
becoming boundary tensors (they are free to recompute and would otherwise cost a transfer).
Execution (sessions per backend, chained, timed) lives in :mod:`studio.core.assignment.partitioned_run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from studio.core.errors import BadInputError, ConfigError

# Numpy dtype names (as ModelGraph reports them) -> ONNX element types, for boundary value infos.
_ELEM_TYPES = {
    np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t)).name: t
    for t in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.INT8,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.INT16,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.INT32,
        onnx.TensorProto.INT64,
        onnx.TensorProto.BOOL,
    )
}


@dataclass
class Segment:
    """A run of consecutive nodes (topological order) assigned to one backend."""

    index: int
    backend: str
    node_ids: list[str]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    model_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "backend": self.backend,
            "node_ids": list(self.node_ids),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "model_path": self.model_path,
        }


def split_segments(graph: Any, assignment: Mapping[str, str]) -> list[Segment]:
    """Group the graph's nodes into maximal runs of the same backend, with their boundaries.

    ``graph`` is a ``ModelGraph``; ``assignment`` maps every non-Constant node id to a backend.
    """
    missing = [
        n.id
        for n in graph.nodes
        if not (n.op_type == "Constant" and not n.inputs) and n.id not in assignment
    ]
    if missing:
        raise ConfigError(
            f"the plan leaves {len(missing)} node(s) without a backend: "
            + ", ".join(f"'{m}'" for m in missing[:8])
        )
    unknown = sorted(set(assignment) - set(graph.node_by_id))
    if unknown:
        raise ConfigError(
            "the plan names node(s) the model lacks: " + ", ".join(f"'{u}'" for u in unknown[:8])
        )

    segments: list[Segment] = []
    for node in graph.nodes:
        if node.op_type == "Constant" and not node.inputs:
            continue
        backend = assignment[node.id]
        if not segments or segments[-1].backend != backend:
            segments.append(Segment(index=len(segments), backend=backend, node_ids=[]))
        segments[-1].node_ids.append(node.id)
    _compute_boundaries(graph, segments)
    return segments


def _compute_boundaries(graph: Any, segments: list[Segment]) -> None:
    constant_outputs = {
        out for n in graph.nodes if n.op_type == "Constant" and not n.inputs for out in n.outputs
    }
    initializers = {name for name, t in graph.tensors.items() if t.is_initializer}
    graph_outputs = [t.name for t in graph.outputs]
    segment_of: dict[str, int] = {}
    for seg in segments:
        for node_id in seg.node_ids:
            segment_of[node_id] = seg.index
    for seg in segments:
        produced: list[str] = []
        consumed: list[str] = []
        for node_id in seg.node_ids:
            node = graph.node_by_id[node_id]
            consumed.extend(t for t in node.inputs if t and t not in consumed)
            produced.extend(t for t in node.outputs if t)
        produced_set = set(produced)
        seg.inputs = [
            t
            for t in consumed
            if t not in produced_set and t not in initializers and t not in constant_outputs
        ]
        needed_later: list[str] = []
        for tensor in produced:
            info = graph.tensors.get(tensor)
            consumers = info.consumers if info is not None else []
            later = any(segment_of.get(c, -1) > seg.index for c in consumers)
            if later or tensor in graph_outputs:
                needed_later.append(tensor)
        seg.outputs = needed_later


def write_segment_models(
    graph: Any,
    segments: list[Segment],
    folder: str | Path,
    full_model: onnx.ModelProto | None = None,
) -> list[Path]:
    """Write one ONNX file per segment (weights included) into ``folder``; returns their paths."""
    from studio.core.assignment.probe import load_full_model

    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    # graph.proto is in topological order with fixed input shapes; NodeInfo.index points into it.
    model = full_model if full_model is not None else load_full_model(graph)
    by_index = list(model.graph.node)
    value_infos = {vi.name: vi for vi in model.graph.value_info}
    initializers = {init.name: init for init in model.graph.initializer}
    constants = {
        out: n
        for n in model.graph.node
        if n.op_type == "Constant" and not n.input
        for out in n.output
    }
    paths: list[Path] = []
    for seg in segments:
        nodes = [by_index[graph.node_by_id[nid].index] for nid in seg.node_ids]
        used = {t for n in nodes for t in n.input if t}
        const_nodes = [constants[t] for t in sorted(used) if t in constants]
        inits = [initializers[t] for t in sorted(used) if t in initializers]
        boundary = set(seg.inputs) | set(seg.outputs)
        inner = [
            value_infos[t]
            for n in nodes
            for t in n.output
            if t in value_infos and t not in boundary
        ]
        sub = helper.make_graph(
            const_nodes + nodes,
            f"{model.graph.name or 'graph'}_segment{seg.index}_{seg.backend}",
            [_value_info(graph, t) for t in seg.inputs],
            [_value_info(graph, t) for t in seg.outputs],
            inits,
            value_info=inner,
        )
        sub_model = helper.make_model(sub, opset_imports=list(model.opset_import))
        sub_model.ir_version = model.ir_version
        path = out_dir / f"segment{seg.index}_{seg.backend}.onnx"
        onnx.save(sub_model, str(path))
        seg.model_path = str(path)
        paths.append(path)
    return paths


def _value_info(graph: Any, name: str) -> onnx.ValueInfoProto:
    info = graph.tensors.get(name)
    dtype = getattr(info, "dtype", None)
    if dtype not in _ELEM_TYPES:
        raise BadInputError(
            f"boundary tensor '{name}' has unknown dtype {dtype!r}: fix input shapes first "
            "(--input-shape) so shape inference can type it"
        )
    shape = getattr(info, "shape", None)
    dims = None if shape is None else [d if isinstance(d, int) and d > 0 else None for d in shape]
    return helper.make_tensor_value_info(name, _ELEM_TYPES[dtype], dims)
