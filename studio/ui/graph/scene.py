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

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFontMetricsF,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QTransform,
)
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QStyleOptionGraphicsItem

from studio.core import layout as lay
from studio.ui.graph import styles
from studio.ui.graph.paths import arrows_path, curves_path, polylines_path, rects_path

BAND_SIZE = 512
CACHE_MAX_PIXELS = 6_000_000  # largest zoomed-out picture kept (about 24 MB)
CACHE_SLOTS = 3  # zoom levels kept: the view's, the minimap's, one more while zooming
OVERLAY_BINS = 64


@dataclass
class Band:
    """A horizontal slice of the layout: its vertices, the edges leaving them, and its bounds."""

    vertices: np.ndarray
    edges: np.ndarray
    rect: QRectF
    edge_path: QPainterPath | None = None
    curve_path: QPainterPath | None = None
    arrow_path: QPainterPath | None = None
    fills: dict[int, QPainterPath] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _gather_polylines(layout: lay.Layout, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and offsets of a subset of the layout's polylines, without a Python loop."""
    off = layout.edge_offsets
    starts = off[edges]
    lengths = off[edges + 1] - starts
    total = int(lengths.sum())
    new_off = np.zeros(len(edges) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_off[1:])
    idx = np.repeat(starts - new_off[:-1], lengths) + np.arange(total)
    return layout.edge_points[idx], new_off


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
        self._label_cache: dict[int, str] = {}
        self._overlay_base = 0
        self._no_data = 0
        self.item = GraphItem(self)
        self.marks = MarkItem(self)
        self.addItem(self.item)
        self.addItem(self.marks)

    # ----- building ---------------------------------------------------------------------
    def set_graph(self, graph: Any, layout: lay.Layout) -> None:
        """Show ``layout`` of ``graph``; cheap (no per-node Python objects are created)."""
        self.item.prepareGeometryChange()
        self.marks.prepareGeometryChange()
        self.graph = graph
        self.layout = layout
        self.badges = {}
        self.selected = -1
        self.hits = []
        self.current_hit = -1
        self._sub_cache = {}
        self._label_cache = {}
        self._build_palette(layout)
        self._build_bands(layout)
        x, y, w, h = layout.bounds()
        self._bounds = QRectF(x - 20, y - 40, w + 40, h + 80)
        margin = max(w, h, 800.0) * 0.25
        self.setSceneRect(self._bounds.adjusted(-margin, -margin, margin, margin))
        self._changed()
        self.marks.update()

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

    def _build_palette(self, layout: lay.Layout) -> None:
        names = list(styles.CATEGORY_COLORS)
        colours = [QColor(styles.CATEGORY_COLORS[n]) for n in names]
        index_of = {n: i for i, n in enumerate(names)}
        self._overlay_base = len(colours)
        self._no_data = self._overlay_base + OVERLAY_BINS
        self.palette = colours + [QColor(0, 0, 0)] * OVERLAY_BINS + [styles.NO_DATA]
        self._refresh_text_colors()
        categories = {label: index_of[styles.category(label)] for label in set(layout.labels)}
        base = np.fromiter(
            (categories[label] for label in layout.labels), dtype=np.int32, count=layout.size
        )
        base[layout.kinds == lay.KIND_GROUP] = index_of["group"]
        base[(layout.kinds == lay.KIND_INPUT) | (layout.kinds == lay.KIND_OUTPUT)] = index_of["io"]
        self.base_index = base
        self.fill_index = base.copy()

    def _refresh_text_colors(self) -> None:
        self.text_colors = [
            QColor("#101216") if c.lightnessF() > 0.62 else styles.NODE_TEXT for c in self.palette
        ]

    def _build_bands(self, layout: lay.Layout) -> None:
        self.bands = []
        n = layout.size
        if n == 0:
            return
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
            edge_order = np.argsort(edge_band, kind="stable")
            split = np.searchsorted(edge_band[edge_order], np.arange(len(chunks) + 1))
        for b, chunk in enumerate(chunks):
            bx = boxes[chunk]
            x0, y0 = bx[:, 0].min(), bx[:, 1].min()
            x1, y1 = (bx[:, 0] + bx[:, 2]).max(), (bx[:, 1] + bx[:, 3]).max()
            edges = edge_order[split[b] : split[b + 1]] if e else np.zeros(0, dtype=np.int64)
            if len(edges):
                x0, x1 = min(x0, ex0[edges].min()), max(x1, ex1[edges].max())
                y0, y1 = min(y0, ey0[edges].min()), max(y1, ey1[edges].max())
            rect = QRectF(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            self.bands.append(Band(np.sort(chunk), edges, rect.adjusted(-30, -30, 30, 30)))

    # ----- per-vertex state -------------------------------------------------------------
    def set_overlay_values(self, t: np.ndarray | None, table: np.ndarray | None = None) -> None:
        """Colour vertices by ``t`` (0..1, NaN = no data) through ``table``; None restores."""
        if self.layout is None:
            return
        if t is None or table is None:
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

    def set_badges(self, badges: dict[int, list[str]]) -> None:
        self.badges = {k: list(v) for k, v in badges.items() if v}
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


class GraphItem(QGraphicsItem):
    """Paints every band that crosses the exposed rectangle: edges first, then boxes."""

    def __init__(self, scene: GraphScene) -> None:
        super().__init__()
        self._scene = scene
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._edge_pen = QPen(styles.EDGE, 0)
        self._edge_pen.setCosmetic(True)
        self._border = QPen(styles.NODE_BORDER, 1.0)
        self._group_pen = QPen(styles.GROUP_BORDER, 1.2, Qt.PenStyle.DashLine)
        self._font = styles.scene_font(14, bold=True)
        self._sub_font = styles.scene_font(11)
        self._badge_font = styles.scene_font(10, bold=True)
        self._metrics = QFontMetricsF(self._font)
        self._cache: dict[Any, tuple[QImage, QPointF]] = {}  # a few zoom levels (view, minimap)
        self._badge_metrics = QFontMetricsF(self._badge_font)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._scene.bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: Any = None
    ) -> None:
        sc = self._scene
        if sc.layout is None or not sc.bands:
            return
        transform = painter.worldTransform()
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(transform)
        if lod < styles.LOD_DETAIL and self._paint_cached(painter, transform, lod):
            return
        self._paint_content(painter, option.exposedRect, lod)

    def invalidate_cache(self) -> None:
        self._cache.clear()
        self.update()

    def _paint_cached(self, painter: QPainter, transform: QTransform, lod: float) -> bool:
        """Zoomed out, draw one cached picture of the whole graph instead of every band.

        When the whole graph takes at most a few screens of pixels (zoom-to-fit, the usual
        overview), it is rendered once per zoom level and colour change; repaints and pans are
        then a single blit. Zoomed further in, bands are painted directly (False is returned).
        """
        device = transform.mapRect(self._scene.bounds)
        if device.width() * device.height() > CACHE_MAX_PIXELS or not transform.isScaling():
            return False
        origin = QPointF(math.floor(device.left()), math.floor(device.top()))
        key = (round(transform.m11(), 9), round(transform.m22(), 9), self._scene.generation)
        if key not in self._cache:
            w, h = (
                int(math.ceil(device.right() - origin.x())) + 1,
                int(math.ceil(device.bottom() - origin.y())) + 1,
            )
            image = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            local = QPainter(image)
            shift = QTransform.fromTranslate(-origin.x(), -origin.y())
            local.setTransform(transform * shift)
            self._paint_content(local, self._scene.bounds, lod)
            local.end()
            if len(self._cache) >= CACHE_SLOTS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (image, transform.map(QPointF(0, 0)) - origin)
        image, anchor = self._cache[key]
        painter.save()
        painter.resetTransform()
        painter.drawImage(transform.map(QPointF(0, 0)) - anchor, image)
        painter.restore()
        return True

    def _paint_content(self, painter: QPainter, exposed: QRectF, lod: float) -> None:
        sc = self._scene
        bands = [b for b in sc.bands if b.rect.intersects(exposed)]
        if not bands:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, lod >= styles.LOD_ANTIALIAS)
        painter.setPen(self._edge_pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        curved = lod >= styles.LOD_CURVES
        for band in bands:
            if band.edge_path is None:
                self._build_edges(band)
            if curved and band.curve_path is None:
                band.curve_path = curves_path(*_gather_polylines(sc.layout, band.edges))
            painter.drawPath(band.curve_path if curved else band.edge_path)
        if lod >= styles.LOD_DETAIL:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(styles.EDGE)
            for band in bands:
                painter.drawPath(band.arrow_path)
            for band in bands:
                self._paint_detail(painter, sc.visible_vertices(exposed, band.vertices), lod)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            for band in bands:
                if band.fills is None:
                    self._build_fills(band)
                for index, path in band.fills.items():
                    painter.fillPath(path, sc.palette[index])
            if lod >= styles.LOD_BADGES and sc.badges:
                self._paint_badges_small(painter, bands, exposed)

    # ----- lazily built band paths --------------------------------------------------------
    def _build_edges(self, band: Band) -> None:
        layout = self._scene.layout
        if len(band.edges) == 0:
            band.edge_path, band.arrow_path = QPainterPath(), QPainterPath()
            band.curve_path = QPainterPath()
            return
        points, offsets = _gather_polylines(layout, band.edges)
        band.edge_path = polylines_path(points, offsets)
        band.arrow_path = arrows_path(points[offsets[1:] - 1])

    def _build_fills(self, band: Band) -> None:
        sc = self._scene
        idx = sc.fill_index[band.vertices]
        fills: dict[int, QPainterPath] = {}
        for value in np.unique(idx).tolist():
            fills[value] = rects_path(sc.layout.boxes[band.vertices[idx == value]])
        band.fills = fills

    # ----- detailed painting ----------------------------------------------------------------
    def _paint_detail(self, painter: QPainter, vertices: np.ndarray, lod: float) -> None:
        sc = self._scene
        layout = sc.layout
        kinds = layout.kinds
        show_sub = lod >= styles.LOD_SUBTEXT
        for v, (x, y, w, h) in zip(vertices.tolist(), layout.boxes[vertices].tolist(), strict=True):
            rect = QRectF(x, y, w, h)
            kind = kinds[v]
            fill = sc.palette[sc.fill_index[v]]
            if kind == lay.KIND_GROUP:
                painter.setPen(self._group_pen)
                painter.setBrush(fill.darker(130))
                painter.drawRoundedRect(rect.translated(6, -6), 7, 7)
                painter.setBrush(fill)
                painter.drawRoundedRect(rect, 7, 7)
            else:
                painter.setPen(self._border)
                painter.setBrush(fill)
                radius = h / 2 if kind != lay.KIND_NODE else 6
                painter.drawRoundedRect(rect, radius, radius)
            painter.setPen(sc.text_colors[sc.fill_index[v]])
            painter.setFont(self._font)
            label = sc._label_cache.get(v)
            if label is None:
                text = ("▸ " if kind == lay.KIND_GROUP else "") + layout.labels[v]
                label = self._metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, w - 14)
                sc._label_cache[v] = label
            sub = sc.subtext(v) if show_sub else ""
            if sub:
                top = QRectF(x + 7, y + 2, w - 14, h * 0.56)
                painter.drawText(top, Qt.AlignmentFlag.AlignCenter, label)
                painter.setFont(self._sub_font)
                colour = QColor(sc.text_colors[sc.fill_index[v]])
                colour.setAlpha(175)
                painter.setPen(colour)
                bottom = QRectF(x + 7, y + h * 0.52, w - 14, h * 0.44)
                painter.drawText(bottom, Qt.AlignmentFlag.AlignCenter, sub)
            else:
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
            badges = sc.badges.get(v)
            if badges:
                self._paint_badges(painter, x + w, y, badges)

    def _paint_badges(self, painter: QPainter, right: float, top: float, badges: list[str]) -> None:
        painter.setFont(self._badge_font)
        x = right + 4
        for text in reversed(badges):
            width = self._badge_metrics.horizontalAdvance(text) + 10
            x -= width + 3
            pill = QRectF(x, top - 9, width, 16)
            painter.setPen(QPen(QColor(0, 0, 0, 140), 1))
            painter.setBrush(styles.badge_color(text))
            painter.drawRoundedRect(pill, 8, 8)
            painter.setPen(QColor("#ffffff"))
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_badges_small(self, painter: QPainter, bands: list[Band], exposed: QRectF) -> None:
        """Zoomed out: a coloured tab per badge at the box's top-right corner, no text."""
        sc = self._scene
        painter.setPen(Qt.PenStyle.NoPen)
        for band in bands:
            for v in sc.visible_vertices(exposed, band.vertices).tolist():
                badges = sc.badges.get(v)
                if not badges:
                    continue
                x, y, w, _h = sc.layout.boxes[v].tolist()
                for k, text in enumerate(badges):
                    painter.setBrush(styles.badge_color(text))
                    painter.drawRect(QRectF(x + w - 26 * (k + 1), y - 8, 24, 12))


class MarkItem(QGraphicsItem):
    """Selection (outline and its edges in the accent colour) and search hits, above the graph."""

    def __init__(self, scene: GraphScene) -> None:
        super().__init__()
        self._scene = scene
        self.setZValue(10)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._scene.bounds.adjusted(-12, -12, 12, 12)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: Any = None
    ) -> None:
        sc = self._scene
        if sc.layout is None:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        exposed = option.exposedRect
        if sc.hits:
            pen = QPen(styles.SEARCH_HIT, 2)
            pen.setCosmetic(True)
            painter.setPen(pen)
            for v in sc.hits:
                rect = sc.vertex_rect(v)
                if rect.intersects(exposed) and v != sc.current_hit:
                    painter.drawRoundedRect(rect.adjusted(-3, -3, 3, 3), 8, 8)
            if sc.current_hit >= 0:
                pen = QPen(styles.SEARCH_HIT, 3.5)
                pen.setCosmetic(True)
                painter.setPen(pen)
                painter.drawRoundedRect(sc.vertex_rect(sc.current_hit).adjusted(-5, -5, 5, 5), 9, 9)
        v = sc.selected
        if v < 0 or v >= sc.layout.size:
            return
        layout = sc.layout
        touching = np.nonzero((layout.edges[:, 0] == v) | (layout.edges[:, 1] == v))[0]
        if len(touching):
            points, offsets = _gather_polylines(layout, touching)
            pen = QPen(styles.EDGE_SELECTED, 2)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawPath(curves_path(points, offsets))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(styles.EDGE_SELECTED)
            painter.drawPath(arrows_path(points[offsets[1:] - 1], 9.0))
            painter.setBrush(Qt.BrushStyle.NoBrush)
        rect = sc.vertex_rect(v)
        glow = QColor(styles.SELECTION)
        glow.setAlpha(70)
        pen = QPen(glow, 7)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.drawRoundedRect(rect.adjusted(-3, -3, 3, 3), 8, 8)
        pen = QPen(QBrush(styles.SELECTION), 2.5)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.drawRoundedRect(rect.adjusted(-3, -3, 3, 3), 8, 8)
