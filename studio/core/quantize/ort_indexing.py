"""Name indexes for onnxruntime's QDQ quantizer, so writing a QDQ model is linear in its size.

Why: ORT's quantizer (1.32) finds initializers with ``find_by_name``, a list comprehension over
every initializer, and redirects an activation's consumers with ``replace_input_of_all_nodes``, a
scan over every node, once per quantised tensor. Both are O(nodes) per tensor, so the build is
quadratic: 45 s for a 5,000-node export on 2 cores and more than 15 minutes at 20,000 nodes
(measured with ``npu-studio quantize`` on ``bench/_measure.bench_model(N, "exported_small")``),
which made "Analyse" on a large model look hung.

:func:`indexed_quantizer` swaps those lookups, for the duration of one ``quantize_model()`` call,
for dictionary lookups that return exactly what the scans return. The indexes only trust what they
can check: a hit is verified against the list (the item at the indexed position still has that
name, the node still reads that tensor), appended items are indexed on the next lookup, and any
shrink or mismatch rebuilds the index from the list. ``tests/core/test_quant_ort_indexing.py``
checks that the written models are byte-identical with and without the indexes.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

# the ORT modules that imported find_by_name by name (patching quant_utils alone misses them)
_FIND_BY_NAME_MODULES = (
    "onnxruntime.quantization.base_quantizer",
    "onnxruntime.quantization.qdq_quantizer",
    "onnxruntime.quantization.onnx_model",
    "onnxruntime.quantization.onnx_quantizer",
    "onnxruntime.quantization.operators.conv",
    "onnxruntime.quantization.operators.matmul",
)
_patch_lock = threading.Lock()


class _NameIndex:
    """name -> item of one protobuf repeated field (initializers), kept up to date lazily.

    Items get a virtual id as they are indexed (ids never shift); an item removed through
    :meth:`remove` records its id, so the current position of id ``v`` is ``v`` minus the number
    of removed ids below it (a bisect) and removals cost no re-indexing. Appended items are
    indexed on the next lookup; a list that shrank behind our back, or a hit whose name no
    longer matches, rebuilds the index from the list."""

    def __init__(self, items: Any) -> None:
        self.items = items
        self._rebuild()

    def _rebuild(self) -> None:
        self.ids: dict[str, int] = {}
        self.repeated: set[str] = set()  # names more than one item has
        self.removed: list[int] = []
        self.next_id = 0
        self.live = 0
        self._extend()

    def _extend(self) -> None:
        items = self.items
        for position in range(self.live, len(items)):
            # first occurrence wins, as find_by_name returns the first match
            name = items[position].name
            if name in self.ids:
                self.repeated.add(name)
            else:
                self.ids[name] = self.next_id
            self.next_id += 1
        self.live = len(items)

    def _fresh(self) -> None:
        if len(self.items) < self.live:
            self._rebuild()
        elif len(self.items) > self.live:
            self._extend()

    def _position(self, name: str) -> int | None:
        vid = self.ids.get(name)
        return None if vid is None else vid - bisect.bisect_left(self.removed, vid)

    def find(self, name: str) -> Any:
        self._fresh()
        position = self._position(name)
        if position is None:
            return None
        item = self.items[position]
        if item.name != name:
            self._rebuild()  # something was replaced in place: start again
            position = self._position(name)
            return None if position is None else self.items[position]
        return item

    def remove(self, item: Any) -> bool:
        """Delete ``item`` (this very object) from the list; False (nothing done) when it is not
        the first item of its name, for the caller's exact fallback."""
        self._fresh()
        position = self._position(item.name)
        if position is None or self.items[position] is not item:
            return False
        del self.items[position]
        bisect.insort(self.removed, self.ids.pop(item.name))
        self.live -= 1
        if item.name in self.repeated:
            self._rebuild()  # a later item of the same name becomes the first one
        return True


class _IndexedFind:
    """A drop-in ``find_by_name(name, items)`` that indexes the lists it is asked about."""

    def __init__(self, original: Any, *known: _NameIndex) -> None:
        self.original = original
        # the model's own indexes are shared, so removals made through it are seen here
        self.indexes: dict[int, _NameIndex] = {id(index.items): index for index in known}

    def __call__(self, item_name: str, item_list: Any) -> Any:
        if isinstance(item_list, list | tuple):
            return self.original(item_name, item_list)  # a temporary list: nothing to reuse
        index = self.indexes.get(id(item_list))
        if index is None or index.items is not item_list:
            index = self.indexes[id(item_list)] = _NameIndex(item_list)
        return index.find(item_name)


class _ConsumerIndex:
    """tensor name -> the nodes that read it, for ``replace_input_of_all_nodes``.

    Entries are (position, node); an entry is used only while ``graph.node[position] is node``
    (protobuf's upb runtime keeps one wrapper per element), otherwise the index is rebuilt.
    Nodes appended to the graph are indexed on the next call; inputs the quantizer rewrites
    through ``replace_node_input`` move with it."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.readers: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        self.count = 0

    def _rebuild(self) -> None:
        self.readers, self.count = defaultdict(list), 0
        self._extend()

    def _extend(self) -> None:
        nodes = self.graph.node
        for position in range(self.count, len(nodes)):
            node = nodes[position]
            for name in set(node.input):
                self.readers[name].append((position, node))
        self.count = len(nodes)

    def _fresh(self) -> None:
        if len(self.graph.node) < self.count:
            self._rebuild()
        elif len(self.graph.node) > self.count:
            self._extend()

    def nodes_reading(self, name: str) -> list[Any]:
        self._fresh()
        entries = self.readers.get(name, [])
        nodes = self.graph.node
        if any(position >= len(nodes) or nodes[position] is not node for position, node in entries):
            self._rebuild()
            entries = self.readers.get(name, [])
        # in graph order, as the scan visits them
        return [node for _, node in sorted(entries, key=lambda entry: entry[0])]

    def moved(self, node: Any, old: str, new: str) -> None:
        """``node`` no longer reads ``old`` but reads ``new``."""
        self._fresh()
        entries = self.readers.get(old, [])
        kept = [entry for entry in entries if entry[1] is not node]
        moved = [entry for entry in entries if entry[1] is node]
        if kept:
            self.readers[old] = kept
        else:
            self.readers.pop(old, None)
        if moved and not any(entry[1] is node for entry in self.readers.get(new, [])):
            self.readers[new].append(moved[0])


def _index_model(onnx_model: Any, float8: bool) -> _NameIndex:
    """Give one ORT ``ONNXModel`` indexed versions of its scanning methods (instance attributes,
    so the class and every other model are untouched)."""
    from onnxruntime.quantization.onnx_model import ONNXModel

    initializers = _NameIndex(onnx_model.model.graph.initializer)
    consumers = _ConsumerIndex(onnx_model.model.graph)

    def get_initializer(name: str) -> Any:
        return initializers.find(name)

    def replace_node_input(node: Any, old_input_name: str, new_input_name: str) -> None:
        read = old_input_name in node.input
        ONNXModel.replace_node_input(node, old_input_name, new_input_name)
        if read:
            consumers.moved(node, old_input_name, new_input_name)

    def replace_input_of_all_nodes(old_input_name: str, new_input_name: str) -> None:
        for node in consumers.nodes_reading(old_input_name):
            replace_node_input(node, old_input_name, new_input_name)

    def remove_initializer(tensor: Any) -> None:
        if not initializers.remove(tensor):
            ONNXModel.remove_initializer(onnx_model, tensor)
            return
        for graph_input in onnx_model.model.graph.input:  # as ORT: a graph input of that name goes
            if graph_input.name == tensor.name:
                onnx_model.model.graph.input.remove(graph_input)
                break

    def initializer_extend(inits: Any) -> None:
        # ORT re-checks every existing initializer on each call; its check only reads FLOAT8
        # initializers, which these builds never hold (see _holds_float8), so only the new
        # ones are checked
        if len(inits) == 0:
            raise ValueError("Can add an empty list.")
        for init in inits:
            onnx_model._check_init(init)
            onnx_model.model.graph.initializer.append(init)

    onnx_model.get_initializer = get_initializer
    onnx_model.remove_initializer = remove_initializer
    if not float8:
        onnx_model.initializer_extend = initializer_extend
    onnx_model.replace_node_input = replace_node_input
    onnx_model.replace_input_of_all_nodes = replace_input_of_all_nodes
    return initializers


def _holds_float8(quantizer: Any) -> bool:
    """Whether FLOAT8 tensors are or may be written (ORT's initializer check reads only those)."""
    import onnx

    f8 = onnx.TensorProto.FLOAT8E4M3FN
    types = {getattr(quantizer, "weight_qType", None), getattr(quantizer, "activation_qType", None)}
    return f8 in types or any(i.data_type == f8 for i in quantizer.model.model.graph.initializer)


@contextlib.contextmanager
def indexed_quantizer(quantizer: Any) -> Iterator[Any]:
    """Run ``quantizer.quantize_model()`` inside this block to have it use name indexes.

    ``find_by_name`` is rebound in ORT's quantisation modules for the block (under a lock, so two
    builds on two threads do not restore each other's patch early) and restored after it."""
    import importlib

    modules = [importlib.import_module(name) for name in _FIND_BY_NAME_MODULES]
    with _patch_lock:
        originals = [getattr(module, "find_by_name") for module in modules]  # noqa: B009
        initializers = _index_model(quantizer.model, _holds_float8(quantizer))
        indexed = _IndexedFind(originals[0], initializers)
        try:
            for module in modules:
                module.find_by_name = indexed
            yield quantizer
        finally:
            for module, original in zip(modules, originals, strict=True):
                module.find_by_name = original
