"""A picture of the model graph with a heat overlay (share of cycles / time per node), as SVG.

Layered with igraph's Sugiyama layout. Quantize/DequantizeLinear nodes are drawn through (their
producer is linked to their consumers) so a QDQ model looks like its float original. Graphs with
more than ``max_nodes`` drawable nodes are not drawn whole: we draw the *hot path*, the chain
that starts at the hottest node and follows the hottest producer upwards and the hottest consumer
downwards, and say so in a caption. A 500-node picture in a report is unreadable anyway.
"""

from __future__ import annotations

from typing import Any

import igraph

from studio.core.profiling.svg import FONT, esc

_SKIP = {"QuantizeLinear", "DequantizeLinear", "Constant"}
BOX_W, BOX_H, X_STEP, Y_STEP = 150.0, 34.0, 175.0, 58.0


def heat_color(fraction: float | None) -> str:
    """White -> yellow -> red for 0..1; grey when the node has no figure."""
    if fraction is None:
        return "#e6e6e6"
    f = max(0.0, min(1.0, fraction))
    if f < 0.5:
        g = 255 - int(40 * f * 2)
        b = 255 - int(200 * f * 2)
        return f"#ff{g:02x}{b:02x}"
    g = 215 - int(175 * (f - 0.5) * 2)
    return f"#ff{g:02x}37"


def _drawable_edges(graph: Any) -> tuple[list[str], list[tuple[str, str]]]:
    keep = [n for n in graph.nodes if n.op_type not in _SKIP]
    keep_ids = {n.id for n in keep}
    producer = {t: n for n in graph.nodes for t in n.outputs}

    def sources(tensor: str, depth: int = 0) -> list[str]:
        node = producer.get(tensor)
        if node is None or depth > 8:
            return []
        if node.id in keep_ids:
            return [node.id]
        return [s for t in node.inputs[:1] for s in sources(t, depth + 1)]

    edges = set()
    for n in keep:
        for t in n.inputs:
            for s in sources(t):
                if s != n.id:
                    edges.add((s, n.id))
    return [n.id for n in keep], sorted(edges)


def _hot_path(nodes: list[str], edges: list[tuple[str, str]], heat: dict[str, float], limit: int):
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in edges:
        succs.setdefault(a, []).append(b)
        preds.setdefault(b, []).append(a)
    start = max(nodes, key=lambda n: heat.get(n, 0.0))
    path = [start]
    seen = {start}
    for step_map, at_front in ((preds, True), (succs, False)):
        cur = start
        while len(path) < limit:
            options = [n for n in step_map.get(cur, []) if n not in seen]
            if not options:
                break
            cur = max(options, key=lambda n: heat.get(n, 0.0))
            seen.add(cur)
            if at_front:
                path.insert(0, cur)
            else:
                path.append(cur)
    return path, list(zip(path, path[1:], strict=False))


def heat_graph_svg(
    graph: Any, heat: dict[str, float], *, title: str = "Graph heat", max_nodes: int = 60
) -> tuple[str, str]:
    """(svg, caption). ``heat``: node id -> share (0..1) of the run's total, e.g. ProfileRun.overlay().values."""
    nodes, edges = _drawable_edges(graph)
    if not nodes:
        return "", "The graph has no nodes to draw."
    caption = f"All {len(nodes)} compute nodes (Q/DQ drawn through)."
    if len(nodes) > max_nodes:
        nodes, edges = _hot_path(nodes, edges, heat, max_nodes)
        caption = (
            f"The model has {len(graph.nodes)} nodes: only the hot path ({len(nodes)} nodes, "
            f"from the hottest node along its hottest producers and consumers) is drawn."
        )
    index = {n: i for i, n in enumerate(nodes)}
    g = igraph.Graph(n=len(nodes), edges=[(index[a], index[b]) for a, b in edges], directed=True)
    coords = g.layout_sugiyama().coords[: len(nodes)]
    xs = [c[0] for c in coords]
    min_x = min(xs)
    pos = [((c[0] - min_x) * X_STEP + 20, c[1] * Y_STEP + 40) for c in coords]
    width = int(max(p[0] for p in pos) + BOX_W + 80)
    height = int(max(p[1] for p in pos) + BOX_H + 50)
    hmax = max((heat.get(n, 0.0) for n in nodes), default=0.0) or 1.0
    body = [
        "<defs><marker id='arr' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='6' "
        "markerHeight='6' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#888'/></marker></defs>"
    ]
    for a, b in edges:
        (ax, ay), (bx, by) = pos[index[a]], pos[index[b]]
        x1, y1, x2, y2 = ax + BOX_W / 2, ay + BOX_H, bx + BOX_W / 2, by
        if by - ay > Y_STEP * 1.5:
            # A skip edge (residual): bow it out to the right of the boxes it passes.
            bow = max(x1, x2) + BOX_W / 2 + 25
            path = f"M{x1:.1f},{y1:.1f} C{bow:.1f},{y1 + 20:.1f} {bow:.1f},{y2 - 20:.1f} {x2:.1f},{y2:.1f}"
        else:
            path = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
        body.append(f"<path d='{path}' fill='none' stroke='#888' marker-end='url(#arr)'/>")
    for n, (x, y) in zip(nodes, pos, strict=True):
        info = graph.node_by_id[n]
        share = heat.get(n)
        label = n if len(n) <= 24 else "…" + n[-23:]
        tip = f"{n} ({info.op_type})" + (f": {share * 100:.1f}%" if share is not None else "")
        body.append(
            f"<g><title>{esc(tip)}</title>"
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{BOX_W}' height='{BOX_H}' rx='5' "
            f"fill='{heat_color(None if share is None else share / hmax)}' stroke='#666'/>"
            f"<text x='{x + BOX_W / 2:.1f}' y='{y + 14:.1f}' text-anchor='middle' {FONT} "
            f"font-size='11' font-weight='bold'>{esc(info.op_type)}"
            + (f" {share * 100:.1f}%" if share is not None else "")
            + f"</text><text x='{x + BOX_W / 2:.1f}' y='{y + 27:.1f}' text-anchor='middle' "
            f"{FONT} font-size='9' fill='#333'>{esc(label)}</text></g>"
        )
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{esc(title)}'>"
        f"<rect width='{width}' height='{height}' fill='white'/>"
        f"<text x='10' y='20' {FONT} font-size='13' font-weight='bold'>{esc(title)}</text>"
        + "".join(body)
        + "</svg>"
    )
    return svg, caption
