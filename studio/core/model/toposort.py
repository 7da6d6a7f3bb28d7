"""The one topological sort of the studio: Kahn's algorithm over vertex indices.

Two callers need an order with different views of a graph: loading a model orders the protobuf's
nodes (``prepare.topological_order``, where a cycle is an error naming its nodes) and the graph
layout orders the vertices of a collapsed view (``layout``, where collapsing two name scopes can
make a cycle that is simply drawn). Both hand this module plain ``(source, target)`` index pairs,
so the algorithm and its tie-break (first ready, first out: the file's own order wherever the
graph allows it) live in one place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


def kahn_order(n: int, edges: Iterable[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """``(order, stuck)`` of the vertices ``0 .. n-1`` under ``edges`` (source before target).

    ``order`` lists every vertex whose predecessors all come before it; ties keep index order
    (a queue, so an already sorted graph comes back as it is). ``stuck`` lists, by index, the
    vertices left over: those on a cycle and those downstream of one; it is empty for a DAG.
    A repeated edge counts once per occurrence on both sides, so duplicates need not be removed.
    """
    remaining = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    for s, t in edges:
        remaining[t] += 1
        succs[s].append(t)
    ready = deque(v for v in range(n) if remaining[v] == 0)
    order: list[int] = []
    while ready:
        v = ready.popleft()
        order.append(v)
        for t in succs[v]:
            remaining[t] -= 1
            if remaining[t] == 0:
                ready.append(t)
    stuck = [v for v in range(n) if remaining[v]] if len(order) < n else []
    return order, stuck
