"""Mapping backend op names back to ONNX node ids, and building the per-layer table.

Backends rename what they run. What we have seen (onnxruntime-qnn 2.x, ORT 1.2x):

* QNN keeps a node's name and may add ``_token_N`` when it rewrites the op (``/stem/Conv`` ->
  ``/stem/Conv_token_1``); an unnamed node becomes ``<OpType><index>`` (``Relu1``, ``Gemm13``) or
  just ``_token_N``; fused ops report their cycles on one op and 0 on the others; layout
  ``Transpose``\\ s and ``Input``/``Output`` ops are inserted. QNN's JSON graph dump
  (``dump_json_qnn_graph``) gives each QNN op's type and output tensor names, which resolves the
  rest: an output named after an ONNX tensor (``/stem/Relu_output_0_QuantizeLinear``) names the
  ONNX node that produced it.
* ORT's CPU kernels keep node names, name NCHWc-fused nodes after their output
  (``/stem/Relu_output_0_nchwc``), name unnamed nodes ``<OpType>_<index>`` (as ModelGraph's
  synthetic ids do) and insert ``ReorderInput``/``ReorderOutput``.

Ops that match no ONNX node become rows with ``inserted=True`` and a note saying what they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from studio.core.profiling.fixups import (
    attribute_unreported,
    carry_through_reorders,
    merge_zero_heads,
)
from studio.core.profiling.optypes import (
    LAYOUT_OPS,
    QDQ_ONNX,
    QUANT_OPS,
    onnx_types_of,
)
from studio.core.profiling.records import LayerRow
from studio.core.profiling.structural import anchor_by_structure

_TOKEN_RE = re.compile(r"_token_\d+$")
_OPTYPE_INDEX_RE = re.compile(r"^(?P<op>[A-Za-z][A-Za-z]*?)_?(?P<index>\d+)$")
_QNN_TENSOR_SUFFIXES = (
    "_QuantizeLinear_Output",
    "_DequantizeLinear_Output",
    "_QuantizeLinear_Input",
    "_QuantizeLinear",
    "_DequantizeLinear",
)
_ORT_SUFFIXES = ("_nchwc", "_fused")


@dataclass
class BackendOp:
    """One backend op's figure per inference (median over profiled runs).

    ``unit`` is ``"CYCLES"`` or ``"US"``; ``op_type`` / ``outputs`` / ``inputs`` come from the
    backend when known (QNN JSON dump, ORT's optimized graph, ORT's ``op_name``) and let an op
    whose name says nothing be mapped through the tensors it reads and writes.
    """

    name: str
    value: float
    unit: str
    backend: str
    op_type: str = ""
    outputs: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    spread: tuple[float, float] | None = None  # lowest / highest reading over profiled runs


def _strip_suffixes(name: str, suffixes: Iterable[str]) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                changed = True
    return name


class NodeMatcher:
    """Finds the ONNX node (and the nodes fused into it) behind a backend op name."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.by_id = graph.node_by_id
        self.by_name = {n.name: n for n in graph.nodes if n.name}
        self.by_op_index = {(n.op_type, n.index): n for n in graph.nodes}
        self.producer = {t: n.id for n in graph.nodes for t in n.outputs}

    def _tensor_node(self, tensor: str) -> str | None:
        for candidate in (tensor, _strip_suffixes(tensor, _QNN_TENSOR_SUFFIXES)):
            if candidate in self.producer:
                return self.producer[candidate]
        return None

    def _direct(self, name: str) -> str | None:
        # ORT names some fusions after the node they start from: ".../MatMul/MatMulAddFusion".
        if name.startswith("fused "):  # ORT's activation fusion: "fused <node name>"
            name = name[len("fused ") :]
        head, _, last = name.rstrip("/").rpartition("/")
        fusion = head if head and last.endswith("Fusion") else name
        for candidate in (
            name,
            _TOKEN_RE.sub("", name),
            _strip_suffixes(name, _ORT_SUFFIXES),
            fusion,
        ):
            if candidate in self.by_id:
                return candidate
            if candidate in self.by_name:
                return self.by_name[candidate].id
        m = _OPTYPE_INDEX_RE.match(name)
        if m:
            node = self.by_op_index.get((m.group("op"), int(m.group("index"))))
            if node is not None:
                return node.id
        return None

    def _closure(
        self,
        producers: list[str],
        want: set[str],
        stops: set[str],
        claimed: set[str],
        limit: int = 48,
    ) -> list[str]:
        """ONNX nodes a fused backend op covers: backwards from the producers of its outputs.

        The walk stops at the op's own input tensors (``stops``), at initializers and graph
        inputs, at nodes another op already covers (``claimed``), and at the head node of the
        op's type (a fused Conv+Relu starts at the Conv). Without known inputs and without a
        node of the op's type, nothing beyond the output producers is claimed: no guessing.
        """
        seen: list[str] = []
        queue = list(dict.fromkeys(producers))
        expand = (
            bool(stops)
            or any(self.by_id[p].op_type in want for p in producers)
            or bool(want and self._upstream_has(producers, want, claimed))
        )
        while queue and len(seen) < limit:
            nid = queue.pop(0)
            if nid in seen or (nid in claimed and nid not in producers):
                continue
            seen.append(nid)
            node = self.by_id[nid]
            if not expand or node.op_type in want:
                continue
            for t in node.inputs:
                if t in stops or t not in self.producer:
                    continue
                queue.append(self.producer[t])
        return seen

    def _upstream_has(
        self, producers: list[str], want: set[str], claimed: set[str], depth: int = 6
    ) -> bool:
        """Whether a node of a type in ``want`` lies within ``depth`` steps upstream."""
        frontier = list(producers)
        for _ in range(depth):
            nxt = []
            for nid in frontier:
                node = self.by_id[nid]
                if node.op_type in want:
                    return True
                nxt += [
                    self.producer[t]
                    for t in node.inputs
                    if t in self.producer and self.producer[t] not in claimed
                ]
            frontier = nxt
        return False

    def match(self, op: BackendOp, claimed: set[str] | None = None) -> tuple[str | None, list[str]]:
        """(primary ONNX node id or None, other ONNX node ids fused into this op)."""
        claimed = claimed if claimed is not None else set()
        primary = self._direct(op.name)
        producers = [p for p in (self._tensor_node(t) for t in op.outputs) if p]
        if primary is not None:
            fused: list[str] = []
            for p in producers:
                if p != primary:
                    fused.extend(self._chain_between(primary, p))
            return primary, sorted(set(fused) - {primary})
        if not producers:
            stripped = _strip_suffixes(op.name, _ORT_SUFFIXES)
            if stripped != op.name or stripped in self.producer:
                producers = [p for p in [self._tensor_node(stripped)] if p]
        producers = [p for p in producers if p not in claimed]
        if not producers:
            return None, []
        want = onnx_types_of(op.op_type)
        stops = {
            name
            for t in op.inputs
            for name in (t, _strip_suffixes(t, _QNN_TENSOR_SUFFIXES))
            if name in self.producer
        }
        covered = self._closure(producers, want, stops, claimed)
        heads = [n for n in covered if self.by_id[n].op_type in want]
        if not heads and (op.op_type in LAYOUT_OPS or op.op_type in QUANT_OPS):
            # A reorder/transpose that writes a node's final tensor did not compute that node.
            return None, []
        # The head of the op's type, else the node doing the most arithmetic, else the producer.
        pool = heads or covered
        primary = max(pool, key=lambda n: (self.by_id[n].macs, n in producers))
        return primary, sorted(set(covered) - {primary})

    def _chain_between(self, primary: str, last: str, limit: int = 6) -> list[str]:
        """Nodes from ``last`` back to ``primary`` (exclusive): what the backend fused after it."""
        out = []
        node = self.by_id.get(last)
        for _ in range(limit):
            if node is None or node.id == primary:
                return out
            out.append(node.id)
            parents = [self.producer[t] for t in node.inputs if t in self.producer]
            node = self.by_id.get(parents[0]) if parents else None
        return []


def _inserted_note(op: BackendOp) -> tuple[str, str]:
    """(op type, note) for a backend op that matches no ONNX node."""
    base = _TOKEN_RE.sub("", op.name)
    op_type = op.op_type or re.sub(r"[_\d]+$", "", base) or base
    if op.name in ("Input", "Output"):
        return op.name, "graph I/O op inserted by backend"
    if op_type in LAYOUT_OPS or base in LAYOUT_OPS:
        return op_type, "layout conversion inserted by backend"
    if op_type in QUANT_OPS:
        return op_type, "quantize/dequantize inserted by backend"
    return op_type, "inserted by backend (no matching ONNX node)"


def build_layer_rows(
    graph: Any, ops: list[BackendOp]
) -> tuple[list[LayerRow], list[LayerRow], list[str]]:
    """Per-layer rows (ONNX nodes), extra rows (inserted by backend), unmapped ONNX node ids.

    Several backend ops that map to one ONNX node are summed into its row (a node the backend
    splits into parts). Shares are computed per measure over all rows, extras included.
    """
    matcher = NodeMatcher(graph)
    carry_through_reorders(ops, matcher.producer)
    rows: dict[tuple[str, str], LayerRow] = {}
    extra: list[LayerRow] = []
    # Ops named after their node claim it first, so a fused op's walk never swallows them.
    claimed = {nid for nid in (matcher._direct(op.name) for op in ops) if nid}
    assign: dict[int, tuple[str, list[str]]] = {}
    for i, op in enumerate(ops):
        primary, fused = matcher.match(op, claimed)
        if primary is not None:
            assign[i] = (primary, fused)
            claimed.add(primary)
            claimed.update(fused)
    anchor_by_structure(graph, ops, assign, claimed, onnx_types_of)
    for i, op in enumerate(ops):
        primary, fused = assign.get(i, (None, []))
        is_cycles = op.unit.upper() == "CYCLES"
        if primary is None:
            op_type, note = _inserted_note(op)
            extra.append(
                LayerRow(
                    node_id=op.name,
                    op_type=op_type,
                    backend=op.backend,
                    cycles=op.value if is_cycles else None,
                    time_us=None if is_cycles else op.value,
                    backend_ops=[op.name],
                    value_range=list(op.spread) if op.spread else None,
                    inserted=True,
                    note=note,
                )
            )
            continue
        node = graph.node_by_id[primary]
        key = (primary, op.backend)
        row = rows.get(key)
        if row is None:
            row = rows[key] = LayerRow(node_id=primary, op_type=node.op_type, backend=op.backend)
        if is_cycles:
            row.cycles = (row.cycles or 0.0) + op.value
        else:
            row.time_us = (row.time_us or 0.0) + op.value
        row.backend_ops.append(op.name)
        if op.spread is not None:
            lo, hi = row.value_range or [0.0, 0.0]
            row.value_range = [lo + op.spread[0], hi + op.spread[1]]
        row.fused = sorted(set(row.fused) | set(fused))
    layers = merge_zero_heads(graph, list(rows.values()))
    for row in layers:
        row.fused = [f for f in row.fused if graph.node_by_id[f].op_type not in QDQ_ONNX]
    attribute_unreported(graph, layers)
    for row in layers:
        node = graph.node_by_id[row.node_id]
        row.macs = int(node.macs) + sum(int(graph.node_by_id[f].macs) for f in row.fused)
        if row.cycles is not None and row.macs > 0:
            row.cycles_per_mac = row.cycles / row.macs
        reported = [f for f in row.fused if f not in row.inferred]
        notes = []
        if reported:
            notes.append("fused by backend: " + ", ".join(reported))
        if row.inferred:
            notes.append(
                "not reported by the backend, attributed to this upstream node (likely fused): "
                + ", ".join(row.inferred)
            )
        row.note = "; ".join(notes)
    _fill_shares([*layers, *extra])
    covered = {r.node_id for r in layers} | {f for r in layers for f in r.fused}
    unmapped = [n.id for n in graph.nodes if n.id not in covered and n.op_type not in QDQ_ONNX]
    order = {n.id: i for i, n in enumerate(graph.nodes)}
    layers.sort(key=lambda r: order.get(r.node_id, 0))
    return layers, extra, unmapped


def _fill_shares(rows: list[LayerRow]) -> None:
    totals: dict[str, float] = {}
    for r in rows:
        if r.measure:
            totals[r.measure] = totals.get(r.measure, 0.0) + float(r.value or 0.0)
    for r in rows:
        total = totals.get(r.measure or "", 0.0)
        r.share = (float(r.value or 0.0) / total) if r.measure and total > 0 else None
