"""ModelGraph: one ONNX model as the studio sees it, loaded safely and analysed once.

Why this shape: every workspace keys its data (overlays, plans, pins, profiles) by node id, so the
model is turned once into plain lists and dicts (nodes in topological order, tensors with their
producer and consumers, per-node MACs/params/bytes) that any module can read without touching
protobuf. External weights stay on disk (``model_io``): a 1 GB model opens in a few MB, and
:meth:`ModelGraph.initializer_array` reads one tensor's bytes only when asked.

Node ids: the node's name when it is set and unique, else ``<OpType>_<index>`` (REFERENCE §7: Paddle
exports leave half their nodes unnamed). ``NodeInfo.synthetic_id`` says which is which.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studio.core.model import loading as model_io
from studio.core.model.costs import _MAC_RULES as MAC_OPS
from studio.core.model.costs import (
    NON_PARAM_DTYPES,
    Shape,
    dtype_name,
    nbytes,
    node_macs,
    num_elements,
)
from studio.core.model.prepare import (
    attribute_value,
    dims_of,
    fix_input_shapes,
    infer_shapes,
    topological_order,
)


@dataclass
class TensorInfo:
    """A value in the graph: its type, shape and who produces and consumes it."""

    name: str
    shape: Shape = None
    dtype: str | None = None
    elem_type: int | None = None
    is_initializer: bool = False
    is_input: bool = False
    is_output: bool = False
    producer: str | None = None
    consumers: list[str] = field(default_factory=list)
    external: bool = False

    @property
    def nbytes(self) -> int | None:
        return nbytes(self.shape, self.elem_type)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "dtype": self.dtype,
            "is_initializer": self.is_initializer,
        }


@dataclass
class NodeInfo:
    """One operator with the figures the UI shows: parameters, MACs and activation bytes.

    ``attributes`` is read from the protobuf on first use (``ModelGraph.complete`` reads the
    rest): 8,000 of a 20k-node export's nodes carry attributes, and converting them all cost
    ~50 ms before the graph could be drawn.
    """

    id: str
    name: str
    index: int
    op_type: str
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    synthetic_id: bool = False
    params: int = 0
    macs: int = 0
    activation_bytes: int = 0
    scope: list[str] = field(default_factory=list)
    # a dict, or the protobuf's attribute list until ``attributes`` is first read
    attribute_source: Any = field(default=None, repr=False, compare=False)

    @property
    def attributes(self) -> dict[str, Any]:
        """The node's attributes as plain values (``prepare.attribute_value``)."""
        source = self.attribute_source
        if type(source) is not dict:
            source = {a.name: attribute_value(a) for a in source} if source else {}
            self.attribute_source = source
        return source

    @attributes.setter
    def attributes(self, value: dict[str, Any]) -> None:
        self.attribute_source = dict(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "op_type": self.op_type,
            "domain": self.domain,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "params": self.params,
            "macs": self.macs,
            "activation_bytes": self.activation_bytes,
        }


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector during bulk allocation of acyclic data.

    A 20k-node model is hundreds of thousands of small objects; building them triggers several
    automatic full collections, each walking everything allocated so far, which made loading
    (and laying out) about twice as slow. Nothing allocated here forms reference cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def scope_of(name: str) -> list[str]:
    """Name-scope path of a node: ``/encoder/layer.3/attn/MatMul`` -> ['encoder', 'layer.3', 'attn']."""
    parts = [p for p in name.split("/") if p]
    return parts[:-1]


def check_model_file(path: str | Path) -> tuple[onnx.ModelProto, dict[str, model_io.ExternalRef]]:
    """Every check ``ModelGraph.load`` makes, without shape inference or per-node analysis.

    Jobs that hand a file straight to ORT or QNN (run, compile, profile, calibrate) call this
    first, so a PNG, a truncated download, missing or escaping external data, a cycle or a checker
    failure is named as such, not as the runtime's own load error. Returns the protobuf (nodes in
    topological order, external weights not loaded) and the validated external references.
    """
    model_path = Path(path)
    proto = model_io.read_model_proto(model_path)
    refs = model_io.validate_external_data(proto, model_path)
    order = topological_order(proto.graph, model_path)
    if order != list(range(len(order))):
        reordered = [proto.graph.node[i] for i in order]
        del proto.graph.node[:]
        proto.graph.node.extend(reordered)
    model_io.run_checker(model_path, proto)
    return proto, refs


class ModelGraph:
    """A loaded, validated, shape-inferred ONNX model with per-node statistics.

    Build with :meth:`load`. Attributes are plain data; nothing here holds weights in memory
    except initializers stored inside the protobuf itself (models under 2 GB without external data).
    """

    def __init__(self, path: Path, proto: onnx.ModelProto, notes: list[str] | None = None) -> None:
        self.path = path
        self.proto = proto
        self.notes: list[str] = list(notes or [])
        self.nodes: list[NodeInfo] = []
        self.node_by_id: dict[str, NodeInfo] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.external_refs: dict[str, model_io.ExternalRef] = {}
        # initializers stored inside the model file, left on disk at load (loading.skeleton)
        self.inline_weights: frozenset[str] = frozenset()
        # True between ``load(shapes=False)`` and ``complete()``: shapes only as the file
        # declares them, no checker run yet, every node's params/MACs/bytes still 0
        self.shapes_pending = True
        self._sha256: str | None = None

    # ----- loading ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | Path,
        input_shapes: dict[str, list[int]] | None = None,
        *,
        shapes: bool = True,
    ) -> ModelGraph:
        """Read, validate and analyse ``path``; every failure is a ModelLoadError naming it.

        ``shapes=False`` stops after the structure (nodes, tensors, the shapes the file itself
        declares): enough to lay the graph out and draw it. :meth:`complete` then runs the
        checker, shape inference and the per-node statistics, typically on another thread
        while the graph is on screen (``shapes_pending`` says which stage a graph is at).
        """
        with paused_gc():
            graph = cls._open(Path(path), input_shapes)
            if shapes:
                graph._complete()
        return graph

    @classmethod
    def _open(cls, model_path: Path, input_shapes: dict[str, list[int]] | None) -> ModelGraph:
        proto = model_io.read_model_proto(model_path)
        refs = model_io.validate_external_data(proto, model_path)
        if input_shapes:
            fix_input_shapes(proto, input_shapes, model_path)
        graph = cls._structure(model_path, proto, refs)
        if graph is None:  # not in topological order: sort the protobuf (names a cycle), redo
            order = topological_order(proto.graph, model_path)
            reordered = [proto.graph.node[i] for i in order]
            del proto.graph.node[:]
            proto.graph.node.extend(reordered)
            graph = cls._structure(model_path, proto, refs)
            assert graph is not None, "a topological order is sorted"
        return graph

    @classmethod
    def _structure(
        cls, model_path: Path, proto: onnx.ModelProto, refs: dict[str, model_io.ExternalRef]
    ) -> ModelGraph | None:
        graph = cls(model_path, proto)
        graph.external_refs = refs
        own_file = model_path.resolve()
        graph.inline_weights = frozenset(n for n, r in refs.items() if r.file == own_file)
        return graph if graph._analyse_structure() else None

    def complete(self) -> None:
        """The second stage of :meth:`load` after ``shapes=False``: check, infer, count.

        Runs the ONNX checker (a rejection is a ModelLoadError, as from :meth:`load`), shape
        inference and every node's parameters, MACs and activation bytes. Safe to run on a
        thread while another reads the graph: it only fills in tensors' shapes and types and
        nodes' figures (no tensor or node is added or removed) and swaps ``proto`` last.
        """
        if self.shapes_pending:
            with paused_gc():
                self._complete()

    def _complete(self) -> None:
        model_io.run_checker(self.path, self.proto)
        inferred, notes = infer_shapes(self.proto, self.path)
        self._apply_types(inferred.graph, add=False)
        byte_cache: dict[str, int] = {}
        param_cache: dict[str, int] = {}
        for node in self.nodes:
            node.attributes  # noqa: B018 - read now: no reference to the old protobuf stays
            self._node_stats(node, byte_cache, param_cache)
        self.notes.extend(notes)
        self.proto = inferred
        self.shapes_pending = False

    def _analyse_structure(self) -> bool:
        """Turn the protobuf into nodes and tensors once (a 20k-node model in ~0.2 s).

        Returns False when the nodes are not in topological order (a consumer came before its
        producer): the caller sorts them and analyses again. That check costs nothing here,
        where a separate sort would read every node's fields a second time.

        Written for speed: protobuf field access and dataclass construction dominate, so each
        field is read once and TensorInfo objects are created only when missing.
        """
        g = self.proto.graph
        tensors = self.tensors
        inline = self.inline_weights
        for t in g.initializer:
            elem = t.data_type
            tensors[t.name] = TensorInfo(
                name=t.name,
                shape=[int(d) for d in t.dims],
                dtype=dtype_name(elem),
                elem_type=elem,
                is_initializer=True,
                external=model_io.is_external(t) and t.name not in inline,
            )
        self._apply_types(g, add=True)
        for vi in g.input:
            info = tensors[vi.name]
            if not info.is_initializer:
                info.is_input = True
                self.inputs.append(info)
        for vi in g.output:
            tensors[vi.name].is_output = True
            self.outputs.append(tensors[vi.name])

        protos = list(g.node)
        node_names = [n.name for n in protos]
        names = Counter(node_names)
        scopes: dict[str, list[str]] = {}  # "/a/b" -> ["a", "b"]: nodes of one scope share it
        node_by_id = self.node_by_id
        append = self.nodes.append
        get_tensor = tensors.get
        for index, node in enumerate(protos):
            name = node_names[index]
            op_type = node.op_type
            unique = bool(name) and names[name] == 1
            if unique:
                node_id = name
                cut = name.rstrip("/").rfind("/")  # as scope_of: the last part is the op
                prefix = name[:cut] if cut > 0 else ""
                scope = scopes.get(prefix)
                if scope is None:
                    scope = scopes[prefix] = [p for p in prefix.split("/") if p]
            else:
                node_id = f"{op_type}_{index}"
                scope = []
            while node_id in node_by_id:
                node_id += "_"
            inputs = node.input[:]
            outputs = node.output[:]
            attributes = node.attribute
            info = NodeInfo(
                node_id,
                name,
                index,
                op_type,
                node.domain,
                inputs,
                outputs,
                not unique,
                0,
                0,
                0,
                scope,
                attributes if attributes else None,
            )
            append(info)
            node_by_id[node_id] = info
            for t in inputs:
                if t:
                    tensor = get_tensor(t)
                    if tensor is None:
                        tensor = tensors[t] = TensorInfo(t)
                    tensor.consumers.append(node_id)
            for t in outputs:
                if t:
                    tensor = get_tensor(t)
                    if tensor is None:
                        tensor = tensors[t] = TensorInfo(t)
                    elif tensor.consumers:
                        return False  # consumed before it is produced (or by its producer)
                    tensor.producer = node_id
        return True

    def _apply_types(self, g: onnx.GraphProto, *, add: bool) -> None:
        """Shapes and element types from a graph's inputs, value_info and outputs.

        The first source that knows a tensor's shape (or type) wins, initializers first.
        ``add`` False (after shape inference) fills in existing tensors only.
        """
        tensors = self.tensors
        for field_ in (g.input, g.value_info, g.output):
            for vi in field_:
                name = vi.name
                info = tensors.get(name)
                if info is None:
                    if not add:
                        continue
                    info = tensors[name] = TensorInfo(name=name)
                if info.shape is not None and info.elem_type is not None:
                    continue
                shape, elem = dims_of(vi.type)
                if info.shape is None:
                    info.shape = shape
                if info.elem_type is None and elem:
                    info.elem_type, info.dtype = elem, dtype_name(elem)

    def _node_stats(
        self,
        node: NodeInfo,
        byte_cache: dict[str, int] | None = None,
        param_cache: dict[str, int] | None = None,
    ) -> None:
        tensors = self.tensors
        byte_cache = {} if byte_cache is None else byte_cache
        param_cache = {} if param_cache is None else param_cache
        ins = [tensors.get(t) for t in node.inputs]
        outs = [tensors.get(t) for t in node.outputs]
        if node.op_type in MAC_OPS:
            node.macs = node_macs(
                node.op_type,
                node.attributes,
                [t.shape if t else None for t in ins],
                [t.shape if t else None for t in outs],
            )
        params = 0
        activation = 0
        for t in ins:
            if t is None:
                continue
            if t.is_initializer:
                count = param_cache.get(t.name)
                if count is None:
                    count = param_cache[t.name] = (
                        (num_elements(t.shape) or 0) if t.dtype not in NON_PARAM_DTYPES else 0
                    )
                params += count
            else:
                size = byte_cache.get(t.name)
                if size is None:
                    size = byte_cache[t.name] = t.nbytes or 0
                activation += size
        for t in outs:
            if t is not None and not t.is_initializer:
                size = byte_cache.get(t.name)
                if size is None:
                    size = byte_cache[t.name] = t.nbytes or 0
                activation += size
        node.params = params
        node.activation_bytes = activation

    # ----- queries ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.proto.graph.name or self.path.stem

    @property
    def opset(self) -> int:
        for op in self.proto.opset_import:
            if op.domain in ("", "ai.onnx"):
                return int(op.version)
        return 0

    def sha256(self) -> str:
        """SHA-256 of the model file (cached): the key for caches and project checks."""
        if self._sha256 is None:
            self._sha256 = model_io.file_sha256(self.path)
        return self._sha256

    def initializer_array(self, name: str) -> np.ndarray:
        """Values of one initializer, reading only its bytes when it is stored externally."""
        for t in self.proto.graph.initializer:
            if t.name == name:
                return model_io.read_tensor(t, self.external_refs.get(name))
        raise KeyError(name)

    def dynamic_inputs(self) -> dict[str, Shape]:
        """Inputs whose shape has a symbolic or unknown dim (they need --input-shape)."""
        return {
            t.name: t.shape
            for t in self.inputs
            if t.shape is None or any(not isinstance(d, int) or d <= 0 for d in t.shape)
        }

    def op_histogram(self) -> dict[str, int]:
        return dict(Counter(n.op_type for n in self.nodes).most_common())

    @property
    def total_params(self) -> int:
        return sum(
            num_elements(t.shape) or 0
            for t in self.tensors.values()
            if t.is_initializer and t.dtype not in NON_PARAM_DTYPES
        )

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    def summary(self) -> dict[str, Any]:
        """What ``npu-studio inspect --json`` prints; also the report's model section."""
        producer = self.proto.producer_name
        if self.proto.producer_version:
            producer = f"{producer} {self.proto.producer_version}".strip()
        return {
            "schema_version": 1,
            "path": str(self.path),
            "name": self.name,
            "sha256": self.sha256(),
            "ir_version": int(self.proto.ir_version),
            "opset": self.opset,
            "opsets": {op.domain or "ai.onnx": int(op.version) for op in self.proto.opset_import},
            "producer": producer,
            "inputs": [_io(t) for t in self.inputs],
            "outputs": [_io(t) for t in self.outputs],
            "dynamic_inputs": self.dynamic_inputs(),
            "node_count": len(self.nodes),
            "unnamed_nodes": sum(1 for n in self.nodes if n.synthetic_id),
            "op_types": self.op_histogram(),
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "external_data": len(self.external_refs) > len(self.inline_weights),
            "notes": self.notes,
        }


def _io(t: TensorInfo) -> dict[str, Any]:
    return {"name": t.name, "shape": t.shape, "dtype": t.dtype}
