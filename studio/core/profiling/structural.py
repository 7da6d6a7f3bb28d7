"""Matching backend ops that carry no ONNX name at all, through their neighbours.

For a model whose nodes have no names, QNN names ops ``_token_2`` and their tensors
``_token_1``: neither says which ONNX node it was. The QNN graph dump still gives each op's input
and output tensors, so once the ops around it are matched (``Relu1`` is the ONNX ``Relu_1``) the
op feeding ``Relu1``'s first input is the ONNX node feeding ``Relu_1``'s first input, if its type
agrees (``Conv2d`` ~ ``Conv``). We propagate such matches over the graph until nothing changes;
an op whose neighbours are ambiguous stays unmatched rather than guessed.
"""

from __future__ import annotations

from typing import Any


def anchor_by_structure(
    graph: Any,
    ops: list[Any],
    assign: dict[int, tuple[str, list[str]]],
    claimed: set[str],
    types_of: Any,
    max_passes: int = 8,
) -> None:
    """Fill ``assign[i] = (node id, [])`` for unassigned ops ``i`` matched through neighbours."""
    producer = {t: n.id for n in graph.nodes for t in n.outputs}
    consumers: dict[str, list[tuple[int, int]]] = {}
    for i, op in enumerate(ops):
        for k, t in enumerate(op.inputs):
            consumers.setdefault(t, []).append((i, k))
    made_by = {t: i for i, op in enumerate(ops) for t in op.outputs}
    for _ in range(max_passes):
        changed = False
        for i, op in enumerate(ops):
            if i in assign or not op.op_type:
                continue
            want = types_of(op.op_type)
            candidates: set[str] = set()
            # Downstream: the op feeding a matched consumer's k-th input feeds its node's k-th.
            for t in op.outputs:
                for j, k in consumers.get(t, []):
                    if j not in assign:
                        continue
                    node = graph.node_by_id[assign[j][0]]
                    if k < len(node.inputs) and node.inputs[k] in producer:
                        candidates.add(producer[node.inputs[k]])
            # Upstream: a matched producer's node feeds this op's node.
            for t in op.inputs:
                j = made_by.get(t)
                if j is None or j not in assign:
                    continue
                up = graph.node_by_id[assign[j][0]]
                for out in up.outputs:
                    candidates.update(
                        n.id for n in graph.nodes if out in n.inputs and n.op_type in want
                    )
            fits = [
                c for c in candidates if graph.node_by_id[c].op_type in want and c not in claimed
            ]
            if len(fits) == 1:
                assign[i] = (fits[0], [])
                claimed.add(fits[0])
                changed = True
        if not changed:
            return
