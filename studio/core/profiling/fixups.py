"""Post-passes over mapped per-layer rows: fixes for how backends report fused groups.

Each pass corrects one reporting habit seen in real profiles, documented on the function: QNN
putting a fused group's cycles on its last op, ORT's NCHWc Conv writing its group's tensor through
a ReorderOutput, and nodes a backend folded without reporting them at all.
"""

from __future__ import annotations

from typing import Any

from studio.core.profiling.optypes import ARITHMETIC, FUSABLE, LAYOUT_OPS
from studio.core.profiling.records import LayerRow


def merge_zero_heads(graph: Any, layers: list[LayerRow]) -> list[LayerRow]:
    """Give a fused group's cycles back to its head op.

    On HTP in fp16, QNN reports a fused Conv+Relu as ``Conv_token_1: 0 cycles`` followed by
    ``Relu: 201,733 cycles``: the whole group's cost sits on its last op. A 0-cycle row of a node
    that does arithmetic, followed (in execution order) by a fusable node that consumes its
    output, takes that row's cycles, and the fusable node is listed as fused into it.
    """
    out: list[LayerRow] = []
    measured = {r.node_id for r in layers}
    i = 0
    while i < len(layers):
        row = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        node = graph.node_by_id[row.node_id]
        if (
            nxt is not None
            and row.cycles == 0
            and nxt.cycles
            and row.backend == nxt.backend
            and (node.macs > 0 or node.op_type in ARITHMETIC)
            and graph.node_by_id[nxt.node_id].op_type in FUSABLE
        ):
            produced = set(node.outputs)
            for f in row.fused:
                produced.update(graph.node_by_id[f].outputs)
            between = fusable_path(graph, produced, graph.node_by_id[nxt.node_id], measured)
            if between is not None:
                row.cycles = nxt.cycles
                row.value_range = nxt.value_range
                row.fused = sorted({*row.fused, nxt.node_id, *nxt.fused, *between})
                row.backend_ops += nxt.backend_ops
                out.append(row)
                i += 2
                continue
        out.append(row)
        i += 1
    return out


def fusable_path(
    graph: Any, produced: set[str], dst: Any, measured: set[str], depth: int = 4
) -> list[str] | None:
    """Unmeasured fusable nodes between tensors ``produced`` and node ``dst`` (None: no path).

    QNN folds a BatchNormalization into the Conv before it without reporting it; the Relu that
    carries the group's cycles then reads the BN's output, not the Conv's.
    """
    producer = {t: n for n in graph.nodes for t in n.outputs}
    frontier: list[tuple[str, list[str]]] = [(t, []) for t in dst.inputs]
    for _ in range(depth):
        nxt: list[tuple[str, list[str]]] = []
        for tensor, path in frontier:
            if tensor in produced:
                return path
            node = producer.get(tensor)
            if node is None or node.id in measured or node.op_type not in FUSABLE:
                continue
            nxt += [(t, [*path, node.id]) for t in node.inputs]
        frontier = nxt
    return None


def carry_through_reorders(ops: list[Any], onnx_tensors: dict[str, str]) -> None:
    """Give a kernel the ONNX tensor that a layout op right after it writes.

    ORT's NCHWc Conv writes a blocked tensor (``reorder_token_4``) that a ``ReorderOutput`` turns
    into the ONNX tensor the fused group produced (``/res/relu_out/Relu_output_0``): that tensor
    tells which ONNX nodes the Conv kernel covered. The layout op itself stays an inserted row.
    """
    made_by = {t: op for op in ops for t in op.outputs}
    for op in ops:
        if op.op_type not in LAYOUT_OPS or not op.inputs:
            continue
        src = made_by.get(op.inputs[0])
        if src is None or src is op or src.op_type in LAYOUT_OPS:
            continue
        named = [t for t in op.outputs if t in onnx_tensors and t not in src.outputs]
        if named and not any(t in onnx_tensors for t in src.outputs):
            src.outputs = [*src.outputs, *named]


def attribute_unreported(graph: Any, layers: list[LayerRow]) -> None:
    """Give nodes the backend did not report to the measured row just upstream of them.

    ORT's CPU kernels fuse e.g. a residual Add and the Relu after it into the preceding Conv
    (NCHWc "Sum" fusion) and report only the Conv. A fusable node (activation, element-wise,
    BatchNorm, view) all of whose producers are covered by measured rows is attributed to the row
    of its first producer; anything else (Q/DQ, nodes fed only by initializers, a heavy op) is
    left unmapped rather than guessed. Recorded in
    ``LayerRow.inferred`` so the UI can say it is an inference.
    """
    owner: dict[str, LayerRow] = {}
    for row in layers:
        owner[row.node_id] = row
        for f in row.fused:
            owner[f] = row
    producer = {t: n.id for n in graph.nodes for t in n.outputs}
    for node in graph.nodes:
        if node.id in owner or node.op_type not in FUSABLE:
            continue
        ups = [producer[t] for t in node.inputs if t in producer]
        rows = [owner[u] for u in ups if u in owner]
        if ups and rows and len(rows) == len(ups):
            target = rows[0]
            target.fused.append(node.id)
            target.inferred.append(node.id)
            owner[node.id] = target
