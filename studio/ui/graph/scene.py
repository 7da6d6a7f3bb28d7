"""The graph scene: one custom item paints every node and edge, culled by bands and by LOD.

Why not one QGraphicsItem per node: 20,000 Python items cost most of the open-time budget and
every repaint walks them. Here the layout (plain numpy arrays) is cut into horizontal *bands* of a
few hundred vertices; a band keeps, built lazily, one QPainterPath of its edges and one fill path
per colour of its boxes. A repaint visits only bands crossing the exposed rectangle:

* zoomed out (nodes a few pixels tall) a band is a handful of ``fillPath``/``drawPath`` calls,
  whatever its size;
* zoomed in, the visible boxes (a numpy mask over the band) are drawn one by one with their op
  type, second line and badges. Few are visible at that zoom, so the Python work stays small.

Overlays only change the per-vertex colour index and drop the cached fill paths: no re-layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsScene

from studio.core.model import layout as lay
from studio.ui.graph import styles
from studio.ui.graph.items import Band, GraphItem, MarkItem, build_band_edges, build_band_fills

BAND_SIZE = 512
LONG_EDGE = 40 * lay.Y_STEP  # edges taller than this (scene units) share one band of their own
OVERLAY_BINS = 64


class GraphScene(QGraphicsScene):
    """Holds the layout and the per-vertex state (colour, badges, selection, search hits)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setBackgroundBrush(styles.BACKGROUND)
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.graph: Any = None
        self.layout: lay.Layout | None = None
        self.bands: list[Band] = []
        self.palette: list[QColor] = []
        self.text_colors: list[QColor] = []
        self.fill_index = np.zeros(0, dtype=np.int32)
        self.base_index = np.zeros(0, dtype=np.int32)
        self.badges: dict[int, list[str]] = {}
        self.selected = -1
        self.hits: list[int] = []
        self.current_hit = -1
        self.generation = 0  # bumped whenever what GraphItem draws changes (drops its cache)
        self._sub_cache: dict[int, str] = {}
        self._overlay_base = 0
        self._no_data = 0
        self.item = GraphItem(self)
        self.marks = MarkItem(self)
        self.addItem(self.item)
        self.addItem(self.marks)

    # ----- building ---------------------------------------------------------------------
    def set_graph(self, graph: Any, layout: lay.Layout, prepared: ScenePrep | None = None) -> None:
        """Show ``layout`` of ``graph``; cheap (no per-node Python objects are created).

        ``prepared`` (from :func:`prepare_scene`, run with the layout on a worker thread) holds
        the bands and their paths already built; without it they are built here.
        """
        self.item.prepareGeometryChange()
        self.marks.prepareGeometryChange()
        self.graph = graph
        self.layout = layout
        self.badges = {}
        self.selected = -1
        self.hits = []
        self.current_hit = -1
        self._sub_cache = {}
        if prepared is None or prepared.layout is not layout:
            prepared = prepare_scene(layout, build_paths=False)
        self._build_palette(prepared.base_index)
        self.bands = prepared.bands
        x, y, w, h = layout.bounds()
        self._bounds = QRectF(x - 20, y - 40, w + 40, h + 80)
        margin = max(w, h, 800.0) * 0.25
        self.setSceneRect(self._bounds.adjusted(-margin, -margin, margin, margin))
        self._changed()
        self.marks.update()

    def refresh_text(self) -> None:
        """Shapes arrived (``ModelGraph.complete``): redraw the boxes' second lines."""
        self._sub_cache = {}
        self._changed()
        self.update()

    def clear_graph(self) -> None:
        self.item.prepareGeometryChange()
        self.marks.prepareGeometryChange()
        self.graph = None
        self.layout = None
        self.bands = []
        self.fill_index = np.zeros(0, dtype=np.int32)
        self.badges, self.hits, self.selected = {}, [], -1
        self._changed()
        self.update()

    def _changed(self) -> None:
        self.generation += 1
        self.item.invalidate_cache()

    @property
    def bounds(self) -> QRectF:
        return QRectF(self._bounds) if self.layout is not None else QRectF()

    def _build_palette(self, base_index: np.ndarray) -> None:
        colours = [QColor(styles.CATEGORY_COLORS[n]) for n in styles.CATEGORY_COLORS]
        self._overlay_base = len(colours)
        self._no_data = self._overlay_base + OVERLAY_BINS
        self.palette = colours + [QColor(0, 0, 0)] * OVERLAY_BINS + [styles.NO_DATA]
        self._refresh_text_colors()
        self.base_index = base_index
        self.fill_index = base_index.copy()

    def _refresh_text_colors(self) -> None:
        self.text_colors = [
            QColor("#101216") if c.lightnessF() > 0.62 else styles.NODE_TEXT for c in self.palette
        ]

    # ----- per-vertex state -------------------------------------------------------------
    def set_overlay_values(self, t: np.ndarray | None, table: np.ndarray | None = None) -> None:
        """Colour vertices by ``t`` (0..1, NaN = no data) through ``table``; None restores."""
        if self.layout is None:
            return
        if t is None or table is None:
            if np.array_equal(self.fill_index, self.base_index):
                return  # already the category colours: keep the bands' fill paths
            self.fill_index = self.base_index.copy()
        else:
            picks = np.linspace(0, len(table) - 1, OVERLAY_BINS).round().astype(int)
            for k, row in enumerate(table[picks]):
                self.palette[self._overlay_base + k] = QColor(int(row[0]), int(row[1]), int(row[2]))
            self._refresh_text_colors()
            bins = np.clip(np.nan_to_num(t, nan=0.0) * (OVERLAY_BINS - 1), 0, OVERLAY_BINS - 1)
            index = self._overlay_base + np.rint(bins).astype(np.int32)
            index[~np.isfinite(t)] = self._no_data
            self.fill_index = index
        for band in self.bands:
            band.fills = None
        self._changed()

    def set_badges(self, badges: Mapping[int, list[str]]) -> None:
        """vertex -> texts; a lazy mapping (the Graph workspace's MergedBadges) is kept as it is,
        so that only drawn vertices are looked up."""
        if isinstance(badges, dict):
            badges = {k: list(v) for k, v in badges.items() if v}
        self.badges = badges
        self._changed()

    def set_selected(self, vertex: int) -> None:
        if vertex != self.selected:
            self.selected = vertex
            self.marks.update()

    def set_hits(self, vertices: list[int], current: int = -1) -> None:
        self.hits = list(vertices)
        self.current_hit = current
        self.marks.update()

    # ----- queries ------------------------------------------------------------------------
    def vertex_at(self, point: QPointF) -> int:
        """The vertex whose box contains ``point`` (scene coordinates), or -1."""
        if self.layout is None or not self.layout.size:
            return -1
        b = self.layout.boxes
        x, y = point.x(), point.y()
        hit = np.nonzero((b[:, 0] <= x) & (x <= b[:, 0] + b[:, 2]) & (b[:, 1] <= y))[0]
        hit = hit[y <= b[hit, 1] + b[hit, 3]]
        return int(hit[-1]) if len(hit) else -1

    def vertex_rect(self, vertex: int) -> QRectF:
        x, y, w, h = self.layout.boxes[vertex].tolist()
        return QRectF(x, y, w, h)

    def visible_vertices(self, rect: QRectF, within: np.ndarray | None = None) -> np.ndarray:
        b = self.layout.boxes if within is None else self.layout.boxes[within]
        mask = (
            (b[:, 0] + b[:, 2] >= rect.left())
            & (b[:, 0] <= rect.right())
            & (b[:, 1] + b[:, 3] >= rect.top())
            & (b[:, 1] <= rect.bottom())
        )
        idx = np.nonzero(mask)[0]
        return idx if within is None else within[idx]

    def label(self, vertex: int) -> str:
        return self.layout.labels[vertex]

    def subtext(self, vertex: int) -> str:
        """Second line of a box: output shape for nodes and tensors, member count for groups."""
        cached = self._sub_cache.get(vertex)
        if cached is not None:
            return cached
        text = ""
        kind = int(self.layout.kinds[vertex])
        vid = self.layout.ids[vertex]
        g = self.graph
        if kind == lay.KIND_GROUP:
            text = f"{len(self.layout.members.get(vid, []))} nodes"
        elif kind == lay.KIND_NODE:
            node = g.node_by_id.get(vid)
            if node is not None and node.outputs:
                t = g.tensors.get(node.outputs[0])
                text = format_shape(t.shape) if t is not None else ""
                if text == "?" and getattr(g, "shapes_pending", False):
                    text = "…"  # being inferred (ModelGraph.complete), not unknown
        else:
            name = vid.split(":", 1)[1]
            t = g.tensors.get(name)
            if t is not None:
                text = f"{t.dtype or '?'} {format_shape(t.shape)}"
        self._sub_cache[vertex] = text
        return text


def format_shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if not shape:
        return "scalar"
    return "×".join("?" if d is None else str(d) for d in shape)


def build_bands(layout: lay.Layout) -> list[Band]:
    """Cut the layout into bands of BAND_SIZE vertices sorted by height, with their edges."""
    bands: list[Band] = []
    n = layout.size
    if n == 0:
        return bands
    boxes = layout.boxes
    order = np.argsort(boxes[:, 1] + boxes[:, 3] / 2, kind="stable")
    band_of = np.empty(n, dtype=np.int64)
    chunks = [order[i : i + BAND_SIZE] for i in range(0, n, BAND_SIZE)]
    for b, chunk in enumerate(chunks):
        band_of[chunk] = b
    e = len(layout.edges)
    if e:
        off = layout.edge_offsets
        px, py = layout.edge_points[:, 0], layout.edge_points[:, 1]
        starts = off[:-1]
        ex0, ex1 = np.minimum.reduceat(px, starts), np.maximum.reduceat(px, starts)
        ey0, ey1 = np.minimum.reduceat(py, starts), np.maximum.reduceat(py, starts)
        edge_band = band_of[layout.edges[:, 0]]
        # an edge crossing many bands would make its band's bounds the whole graph (and
        # the band painted on every frame): such edges get a band of their own
        long_edges = np.nonzero(ey1 - ey0 > LONG_EDGE)[0]
        edge_band[long_edges] = len(chunks)
        edge_order = np.argsort(edge_band, kind="stable")
        split = np.searchsorted(edge_band[edge_order], np.arange(len(chunks) + 2))
    for b, chunk in enumerate(chunks):
        bx = boxes[chunk]
        x0, y0 = bx[:, 0].min(), bx[:, 1].min()
        x1, y1 = (bx[:, 0] + bx[:, 2]).max(), (bx[:, 1] + bx[:, 3]).max()
        edges = edge_order[split[b] : split[b + 1]] if e else np.zeros(0, dtype=np.int64)
        if len(edges):
            x0, x1 = min(x0, ex0[edges].min()), max(x1, ex1[edges].max())
            y0, y1 = min(y0, ey0[edges].min()), max(y1, ey1[edges].max())
        rect = QRectF(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
        bands.append(Band(np.sort(chunk), edges, rect.adjusted(-30, -30, 30, 30)))
    if e and len(long_edges):
        edges = edge_order[split[len(chunks)] : split[len(chunks) + 1]]
        x0, x1 = ex0[edges].min(), ex1[edges].max()
        y0, y1 = ey0[edges].min(), ey1[edges].max()
        rect = QRectF(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
        bands.append(Band(np.zeros(0, np.int64), edges, rect.adjusted(-30, -30, 30, 30)))
    return bands


def base_index_of(layout: lay.Layout) -> np.ndarray:
    """Per-vertex palette index of the op-type category colour (groups and I/O their own)."""
    index_of = {n: i for i, n in enumerate(styles.CATEGORY_COLORS)}
    categories = {label: index_of[styles.category(label)] for label in set(layout.labels)}
    base = np.fromiter(
        (categories[label] for label in layout.labels), dtype=np.int32, count=layout.size
    )
    base[layout.kinds == lay.KIND_GROUP] = index_of["group"]
    base[(layout.kinds == lay.KIND_INPUT) | (layout.kinds == lay.KIND_OUTPUT)] = index_of["io"]
    return base


@dataclass
class ScenePrep:
    """What the scene needs for a layout, built off the UI thread with the layout itself."""

    layout: lay.Layout
    base_index: np.ndarray
    bands: list[Band]


def prepare_scene(layout: lay.Layout, build_paths: bool = True) -> ScenePrep:
    """Bands, colours and (``build_paths``) every band's edge and fill paths: pure data, safe
    on a worker thread (QPainterPath is a value type). The first paint of a 20k-node graph then
    only draws, where it used to build ~100 paths on the UI thread."""
    base = base_index_of(layout)
    bands = build_bands(layout)
    if build_paths:
        for band in bands:
            build_band_edges(layout, band)
            build_band_fills(layout, base, band)
    return ScenePrep(layout, base, bands)
