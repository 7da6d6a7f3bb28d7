"""The painters of the graph scene: every node and edge (GraphItem), selection and hits (MarkItem).

GraphItem visits only the bands crossing the exposed rectangle. Zoomed out it fills one path per
colour per band, and when the whole graph fits in a few screens of pixels it paints one cached
picture instead (rendered once per zoom level and colour change). Zoomed in it draws the visible
boxes one by one with their op type, second line and badges.

The painters know the scene only through :class:`PaintState`, the few fields and queries they
read; ``scene.py`` builds that state and owns these items, so the dependency runs one way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

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
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from studio.core.model import layout as lay
from studio.ui.graph import styles
from studio.ui.graph.paths import arrows_path, curves_path, polylines_path, rects_path

CACHE_MAX_PIXELS = 6_000_000  # largest zoomed-out picture kept (about 24 MB)
CACHE_SLOTS = 3  # zoom levels kept: the view's, the minimap's, one more while zooming


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


class PaintState(Protocol):
    """What GraphItem and MarkItem read to paint: the layout and its per-vertex state."""

    layout: lay.Layout | None
    bands: list[Band]
    palette: list[QColor]  # fill colours, indexed by fill_index
    text_colors: list[QColor]  # label colour for each palette entry
    fill_index: np.ndarray  # per vertex: index into palette
    badges: dict[int, list[str]]
    selected: int
    hits: list[int]
    current_hit: int
    generation: int  # changes whenever what GraphItem draws changes

    @property
    def bounds(self) -> QRectF: ...

    def subtext(self, vertex: int) -> str: ...

    def vertex_rect(self, vertex: int) -> QRectF: ...

    def visible_vertices(self, rect: QRectF, within: np.ndarray | None = None) -> np.ndarray: ...


def gather_polylines(layout: lay.Layout, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and offsets of a subset of the layout's polylines, without a Python loop."""
    off = layout.edge_offsets
    starts = off[edges]
    lengths = off[edges + 1] - starts
    total = int(lengths.sum())
    new_off = np.zeros(len(edges) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_off[1:])
    idx = np.repeat(starts - new_off[:-1], lengths) + np.arange(total)
    return layout.edge_points[idx], new_off


def build_band_edges(layout: lay.Layout, band: Band) -> None:
    """The band's straight edge polylines and arrowheads, as one path each."""
    if len(band.edges) == 0:
        band.edge_path, band.arrow_path = QPainterPath(), QPainterPath()
        band.curve_path = QPainterPath()
        return
    points, offsets = gather_polylines(layout, band.edges)
    band.edge_path = polylines_path(points, offsets)
    band.arrow_path = arrows_path(points[offsets[1:] - 1])


def build_band_fills(layout: lay.Layout, fill_index: np.ndarray, band: Band) -> None:
    """One fill path per colour of the band's boxes."""
    idx = fill_index[band.vertices]
    fills: dict[int, QPainterPath] = {}
    for value in np.unique(idx).tolist():
        fills[value] = rects_path(layout.boxes[band.vertices[idx == value]])
    band.fills = fills


class GraphItem(QGraphicsItem):
    """Paints every band that crosses the exposed rectangle: edges first, then boxes."""

    def __init__(self, scene: PaintState) -> None:
        super().__init__()
        self._scene = scene
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        # elided op-type labels by vertex, for the layout they were measured on
        self.label_cache: dict[int, str] = {}
        self._labels_of: Any = None
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
            # the band of very long edges (no boxes) stays straight: a cubic thousands of
            # screens tall costs the stroker far more than the lines it stands for
            bend = curved and len(band.vertices) > 0
            if bend and band.curve_path is None:
                band.curve_path = curves_path(*gather_polylines(sc.layout, band.edges))
            painter.drawPath(band.curve_path if bend else band.edge_path)
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
        build_band_edges(self._scene.layout, band)

    def _build_fills(self, band: Band) -> None:
        build_band_fills(self._scene.layout, self._scene.fill_index, band)

    # ----- detailed painting ----------------------------------------------------------------
    def _paint_detail(self, painter: QPainter, vertices: np.ndarray, lod: float) -> None:
        sc = self._scene
        layout = sc.layout
        kinds = layout.kinds
        show_sub = lod >= styles.LOD_SUBTEXT
        if self._labels_of is not layout:
            self.label_cache, self._labels_of = {}, layout
        labels = self.label_cache
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
            label = labels.get(v)
            if label is None:
                text = ("▸ " if kind == lay.KIND_GROUP else "") + layout.labels[v]
                label = self._metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, w - 14)
                labels[v] = label
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

    def __init__(self, scene: PaintState) -> None:
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
            points, offsets = gather_polylines(layout, touching)
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
