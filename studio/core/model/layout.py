"""Graph layout: node boxes and routed edges for the Graph workspace, as plain data (no Qt).

Why here and not in the UI: the layout of a 20,000-node model is computed on a worker thread and
must be testable headless. igraph's Sugiyama layout places the vertices layer by layer and routes
long edges through dummy vertices; we return those bends as polylines so the scene draws them
without knowing about igraph.

Name-scope groups (``NodeInfo.scope``, e.g. ``encoder/layer.3``) can be collapsed: every node
inside a collapsed scope becomes one box, edges inside it vanish and edges crossing its border are
merged. The layout is recomputed for the smaller graph, which is what makes a 20k-node transformer
readable (collapse the layers and a few hundred boxes remain).

Coordinates are scene units: x grows to the right, y downwards, inputs at the top.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import igraph
import numpy as np

from studio.core.model.graph import paused_gc
from studio.core.model.toposort import kahn_order

NODE_W = 172.0
NODE_H = 40.0
GROUP_W = 200.0
GROUP_H = 58.0
IO_W = 150.0
IO_H = 36.0
X_STEP = 222.0  # distance between neighbouring columns (> widest box)
Y_STEP = 86.0  # distance between layers

KIND_NODE = 0
KIND_GROUP = 1
KIND_INPUT = 2
KIND_OUTPUT = 3

MAX_ROUTED_SPAN = 40  # edges spanning more layers are drawn in a side lane, not routed by igraph

GROUP_PREFIX = "scope:"
INPUT_PREFIX = "input:"
OUTPUT_PREFIX = "output:"


@dataclass
class Layout:
    """Where every vertex and edge goes. Arrays are indexed by vertex (or edge) position."""

    ids: list[str]  # node id, "scope:<a/b>" for a collapsed group, "input:<t>" / "output:<t>"
    labels: list[str]  # what the box says first: op type, group name or tensor name
    kinds: np.ndarray  # int8, KIND_*
    boxes: np.ndarray  # float64 (n, 4): x, y, w, h (top-left corner, size)
    edges: np.ndarray  # int32 (e, 2): source vertex, target vertex
    edge_points: np.ndarray  # float64 (p, 2): all polylines, concatenated
    edge_offsets: np.ndarray  # int64 (e + 1,): polyline i is edge_points[off[i]:off[i+1]]
    collapsed: frozenset[str] = frozenset()
    members: dict[str, list[str]] = field(default_factory=dict)  # group id -> node ids
    vertex_of: dict[str, int] = field(default_factory=dict)  # node id (or vertex id) -> vertex

    @property
    def size(self) -> int:
        return len(self.ids)

    def polyline(self, edge: int) -> np.ndarray:
        return self.edge_points[self.edge_offsets[edge] : self.edge_offsets[edge + 1]]

    def bounds(self) -> tuple[float, float, float, float]:
        """x, y, w, h of everything drawn (boxes and edges)."""
        if not self.size:
            return 0.0, 0.0, 0.0, 0.0
        b = self.boxes
        x0 = float(b[:, 0].min())
        y0 = float(b[:, 1].min())
        x1 = float((b[:, 0] + b[:, 2]).max())
        y1 = float((b[:, 1] + b[:, 3]).max())
        if len(self.edge_points):
            x0 = min(x0, float(self.edge_points[:, 0].min()))
            x1 = max(x1, float(self.edge_points[:, 0].max()))
        return x0, y0, x1 - x0, y1 - y0

    def center(self, vertex: int) -> tuple[float, float]:
        x, y, w, h = self.boxes[vertex]
        return float(x + w / 2), float(y + h / 2)


def scope_key(scope: Iterable[str]) -> str:
    return "/".join(scope)


def scope_groups(graph: Any) -> dict[str, int]:
    """Every name-scope prefix with the number of nodes inside it (for the collapse controls)."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        key = ""
        for part in node.scope:
            key = f"{key}/{part}" if key else part
            counts[key] = counts.get(key, 0) + 1
    return counts


def scopes_at_depth(graph: Any, depth: int, min_nodes: int = 2) -> set[str]:
    """Scopes ``depth`` levels deep holding at least ``min_nodes`` nodes: "collapse to level N"."""
    return {
        key
        for key, count in scope_groups(graph).items()
        if key.count("/") == depth - 1 and count >= min_nodes
    }


def scope_levels(graph: Any, min_nodes: int = 2, max_depth: int = 6) -> dict[int, list[str]]:
    """Scopes holding at least ``min_nodes`` nodes, by depth (1..max_depth): the "Group" choices.

    One pass over the nodes (the UI used to ask :func:`scopes_at_depth` once per level, on its
    thread).
    """
    levels: dict[int, list[str]] = {}
    for key, count in scope_groups(graph).items():
        depth = key.count("/") + 1
        if depth <= max_depth and count >= min_nodes:
            levels.setdefault(depth, []).append(key)
    return dict(sorted(levels.items()))


def group_of(scope: list[str], collapsed: frozenset[str] | set[str]) -> str | None:
    """The outermost collapsed scope containing a node with this scope path, if any."""
    if not collapsed or not scope:
        return None
    for depth in range(1, len(scope) + 1):
        key = scope_key(scope[:depth])
        if key in collapsed:
            return key
    return None


def _layers(n: int, edges: list[tuple[int, int]], order: list[int]) -> list[int]:
    """Longest-path layering, then sources pulled down next to their first consumer.

    igraph would put every source (Constant nodes, weights gathered from tables) in layer 0 with a
    long edge down to its user; placing a source just above its consumer keeps the picture local.
    """
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for s, t in edges:
        preds[t].append(s)
        succs[s].append(t)
    layer = [0] * n
    for v in order:
        if preds[v]:
            layer[v] = max(layer[p] for p in preds[v]) + 1
    for v in order:
        if not preds[v] and succs[v]:
            layer[v] = max(0, min(layer[s] for s in succs[v]) - 1)
    return layer


def _vertex_order(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Kahn's order of the (possibly collapsed) graph; cycles left over are appended as they come."""
    order, stuck = kahn_order(n, edges)
    return order + stuck


def _separate(coords: np.ndarray, layers: list[int]) -> None:
    """Push boxes of one layer apart to at least one column step (in place).

    igraph's placement can leave two vertices of a layer less than ``hgap`` apart (seen on
    exported transformers), and their boxes would overlap. Within each layer, sorted by x:
    ``x[i] = max(x[i], x[i-1] + 1)``, written as a running maximum of ``x - rank``.
    """
    n = len(coords)
    if n < 2:
        return
    layer = np.asarray(layers[:n], dtype=np.float64)
    order = np.lexsort((coords[:, 0], layer))
    sorted_layer = layer[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_layer))[0] + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    x = coords[order, 0]
    span = float(x.max() - x.min()) + n + 1.0
    shifted = x - rank + sorted_layer * span  # layers never mix in the running maximum
    coords[order, 0] = np.maximum.accumulate(shifted) - sorted_layer * span + rank


def _split_long(edges: list[tuple[int, int]], layers: list[int]) -> tuple[list[int], list[int]]:
    """Indices of edges igraph routes, and of those spanning more than ``MAX_ROUTED_SPAN`` layers.

    An exporter's attention mask is computed once at the top and added in every layer: each of
    those edges spans thousands of layers, and igraph would route each through one dummy vertex
    per layer (millions for a 20k-node BERT: 30 s of layout). They are drawn in a lane beside the
    graph instead (:func:`_full_routing`).
    """
    short: list[int] = []
    long_edges: list[int] = []
    for i, (s, t) in enumerate(edges):
        (long_edges if layers[t] - layers[s] > MAX_ROUTED_SPAN else short).append(i)
    return short, long_edges


def _full_routing(
    count: int,
    short: list[int],
    routed: list[list[list[float]]],
    long_edges: list[int],
    edges: list[tuple[int, int]],
    coords: np.ndarray,
) -> list[list[list[float]]]:
    """igraph's bends for short edges; long ones leave their source, run down a lane left of
    the graph (one lane per source) and come back in just above their target."""
    if not long_edges:
        return routed
    routing: list[list[list[float]]] = [[] for _ in range(count)]
    for k, i in enumerate(short):
        if k < len(routed):
            routing[i] = routed[k]
    left = float(coords[:, 0].min()) if len(coords) else 0.0
    lanes: dict[int, float] = {}
    for i in long_edges:
        s, t = edges[i]
        lane = lanes.setdefault(s, left - 1.0 - 0.15 * (len(lanes) % 6))
        ys, yt = float(coords[s, 1]), float(coords[t, 1])
        routing[i] = [[lane, ys + 0.5], [lane, yt - 0.5]]
    return routing


def _route(
    edges: list[tuple[int, int]],
    routing: list[list[list[float]]],
    cx: np.ndarray,
    cy: np.ndarray,
    heights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Polylines from each source's bottom centre, through igraph's bends, to the target's top.

    Vectorised: most edges have no bend, so the points are written with numpy fancy indexing
    and only the bends (dummy vertices of long edges) go through Python.
    """
    e = len(edges)
    pairs = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    src, dst = pairs[:, 0], pairs[:, 1]
    bend_count = np.fromiter(
        (len(r) for r in routing[:e]), dtype=np.int64, count=min(e, len(routing))
    )
    if len(bend_count) < e:
        bend_count = np.concatenate([bend_count, np.zeros(e - len(bend_count), np.int64)])
    offsets = np.zeros(e + 1, dtype=np.int64)
    np.cumsum(bend_count + 2, out=offsets[1:])
    points = np.empty((int(offsets[-1]), 2), dtype=np.float64)
    first, last = offsets[:-1], offsets[1:] - 1
    points[first, 0] = cx[src]
    points[first, 1] = cy[src] + heights[src] / 2
    points[last, 0] = cx[dst]
    points[last, 1] = cy[dst] - heights[dst] / 2
    bent = np.nonzero(bend_count)[0]
    if len(bent):
        bends = np.asarray([p for i in bent.tolist() for p in routing[i]], dtype=np.float64)
        slots = np.repeat(first[bent] + 1, bend_count[bent])
        slots += np.arange(len(slots)) - np.repeat(
            np.cumsum(bend_count[bent]) - bend_count[bent], bend_count[bent]
        )
        points[slots, 0] = bends[:, 0] * X_STEP
        points[slots, 1] = bends[:, 1] * Y_STEP
    return points, offsets


def compute(
    graph: Any, collapsed: Iterable[str] = (), *, show_io: bool = True, maxiter: int = 20
) -> Layout:
    """Lay out ``graph`` (a ModelGraph) with the scopes in ``collapsed`` folded into one box each.

    Runs in well under a second for 20,000 nodes (igraph does the placement in C); call it off the
    UI thread all the same.
    """
    with paused_gc():
        return _compute(graph, collapsed, show_io=show_io, maxiter=maxiter)


def _compute(graph: Any, collapsed: Iterable[str], *, show_io: bool, maxiter: int) -> Layout:
    collapsed_set = frozenset(collapsed)
    ids: list[str] = []
    labels: list[str] = []
    kinds: list[int] = []
    vertex_of: dict[str, int] = {}
    members: dict[str, list[str]] = {}

    for node in graph.nodes:
        group = group_of(node.scope, collapsed_set) if collapsed_set else None
        if group is None:
            vertex_of[node.id] = len(ids)
            ids.append(node.id)
            labels.append(node.op_type)
            kinds.append(KIND_NODE)
            continue
        gid = GROUP_PREFIX + group
        if gid not in members:
            members[gid] = []
            vertex_of[gid] = len(ids)
            ids.append(gid)
            labels.append(group.rsplit("/", 1)[-1])
            kinds.append(KIND_GROUP)
        members[gid].append(node.id)
        vertex_of[node.id] = vertex_of[gid]

    if show_io:
        for t in graph.inputs:
            vertex_of[INPUT_PREFIX + t.name] = len(ids)
            ids.append(INPUT_PREFIX + t.name)
            labels.append(t.name)
            kinds.append(KIND_INPUT)
        for t in graph.outputs:
            vertex_of[OUTPUT_PREFIX + t.name] = len(ids)
            ids.append(OUTPUT_PREFIX + t.name)
            labels.append(t.name)
            kinds.append(KIND_OUTPUT)

    edge_set: set[tuple[int, int]] = set()
    edges: list[tuple[int, int]] = []
    for tensor in graph.tensors.values():
        if tensor.producer is not None:
            src = vertex_of[tensor.producer]
        elif show_io and tensor.is_input:
            src = vertex_of[INPUT_PREFIX + tensor.name]
        else:
            continue
        targets = [vertex_of[c] for c in tensor.consumers]
        if show_io and tensor.is_output and tensor.producer is not None:
            targets.append(vertex_of[OUTPUT_PREFIX + tensor.name])
        for dst in targets:
            if dst != src and (src, dst) not in edge_set:
                edge_set.add((src, dst))
                edges.append((src, dst))
    edges.sort()

    n = len(ids)
    kind_arr = np.asarray(kinds, dtype=np.int8)
    if n == 0:
        return Layout(
            ids, labels, kind_arr, np.zeros((0, 4)), np.zeros((0, 2), np.int32),
            np.zeros((0, 2)), np.zeros(1, np.int64), collapsed_set, members, vertex_of,
        )  # fmt: skip

    # Without groups the vertices are already in topological order (nodes come sorted, graph
    # inputs are sources and outputs sinks); a collapsed scope can make cycles, so sort then.
    order = _vertex_order(n, edges) if members else list(range(n))
    layers = _layers(n, edges, order)
    short, long_edges = _split_long(edges, layers)
    g = igraph.Graph(n=n, edges=[edges[i] for i in short], directed=True)
    placed = g.layout_sugiyama(layers=layers, hgap=1, vgap=1, maxiter=maxiter)
    coords = np.asarray(placed.coords[:n], dtype=np.float64)
    _separate(coords, layers)
    routing = _full_routing(len(edges), short, placed.edge_routing, long_edges, edges, coords)
    cx = coords[:, 0] * X_STEP
    cy = coords[:, 1] * Y_STEP

    widths = np.full(n, NODE_W)
    heights = np.full(n, NODE_H)
    widths[kind_arr == KIND_GROUP] = GROUP_W
    heights[kind_arr == KIND_GROUP] = GROUP_H
    io = (kind_arr == KIND_INPUT) | (kind_arr == KIND_OUTPUT)
    widths[io] = IO_W
    heights[io] = IO_H
    boxes = np.column_stack([cx - widths / 2, cy - heights / 2, widths, heights])

    points, offsets = _route(edges, routing, cx, cy, heights)

    return Layout(
        ids=ids,
        labels=labels,
        kinds=kind_arr,
        boxes=boxes,
        edges=np.asarray(edges, dtype=np.int32).reshape(-1, 2),
        edge_points=points,
        edge_offsets=offsets,
        collapsed=collapsed_set,
        members=members,
        vertex_of=vertex_of,
    )
