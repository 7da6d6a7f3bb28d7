"""The graph view: zoom to the cursor with the wheel, pan by dragging, click to select.

Selection is a hit test on the layout's box arrays (scene.vertex_at), not Qt item selection, so a
click costs the same on 20 or 20,000 nodes. Tooltips are computed when Qt asks for one (the
ToolTip event), never stored on items.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsView, QToolTip, QWidget

from studio.ui.graph import styles
from studio.ui.graph.scene import GraphScene

MIN_SCALE = 1e-4
MAX_SCALE = 6.0
CLICK_SLOP = 5  # pixels a press may move and still count as a click
# below this a fitted graph is shown from its top instead: boxes lose their op-type labels
UNREADABLE_SCALE = styles.LOD_DETAIL
READABLE_SCALE = 1.0  # zoom used when jumping to a node from a search or another workspace


class GraphView(QGraphicsView):
    """A QGraphicsView tuned for one big custom item; emits clicks as vertex indices."""

    vertex_clicked = Signal(int)  # -1 for background
    vertex_double_clicked = Signal(int)
    context_requested = Signal(int, QPoint)  # vertex (-1 background), global position
    view_changed = Signal()

    def __init__(self, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.graph_scene = scene
        self.setObjectName("graphView")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        self.setOptimizationFlags(
            QGraphicsView.OptimizationFlag.DontSavePainterState
            | QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing
        )
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setMouseTracking(False)
        self._press: QPoint | None = None
        self._last: QPoint | None = None
        self._dragging = False
        self.horizontalScrollBar().valueChanged.connect(self.view_changed)
        self.verticalScrollBar().valueChanged.connect(self.view_changed)

    # ----- zoom ---------------------------------------------------------------------------
    @property
    def scale_factor(self) -> float:
        return float(self.transform().m11())

    def set_scale(self, scale: float) -> None:
        scale = max(MIN_SCALE, min(MAX_SCALE, scale))
        current = self.scale_factor
        if current > 0 and abs(scale - current) > 1e-12:
            self.scale(scale / current, scale / current)
            self.view_changed.emit()

    def zoom_by(self, factor: float) -> None:
        self.set_scale(self.scale_factor * factor)

    def zoom_to_fit(self) -> None:
        bounds = self.graph_scene.bounds
        if bounds.isEmpty():
            return
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.fitInView(bounds, Qt.AspectRatioMode.KeepAspectRatio)
        if self.scale_factor > READABLE_SCALE:
            self.set_scale(READABLE_SCALE)
            self.centerOn(bounds.center())
        self.setTransformationAnchor(anchor)
        self.view_changed.emit()

    def initial_view(self) -> None:
        """Fit graphs that stay readable when fitted; otherwise show the top at a readable zoom.

        "Readable" is the zoom at which boxes carry their op type (``styles.LOD_DETAIL``): a
        28-node CNN fitted into the window is already a column of unlabelled bars, and a
        20,000-node transformer a one-pixel line. Their inputs at a readable size, with the
        minimap for navigation, are a better first picture (as in Netron); Fit still fits.
        """
        self.zoom_to_fit()
        bounds = self.graph_scene.bounds
        if bounds.isEmpty() or self.scale_factor >= UNREADABLE_SCALE:
            return
        viewport = self.viewport().rect()
        # 100% when the graph's width fits; a wide graph no smaller than where subtext shows
        fit_width = (viewport.width() - 40) / max(bounds.width(), 1.0)
        scale = min(READABLE_SCALE, max(styles.LOD_SUBTEXT, fit_width))
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.set_scale(scale)
        self.setTransformationAnchor(anchor)
        half = viewport.height() / 2 / scale
        # a graph wider than the window: shift right by half the minimap so the first boxes
        # are not hidden under it; a narrower one is centred
        shift = 0.0 if fit_width >= scale else 100 / scale
        self.centerOn(bounds.center().x() + shift, bounds.top() + half - 10 / scale)
        self.view_changed.emit()

    def center_on_rect(self, rect: QRectF, readable: bool = True) -> None:
        """Bring ``rect`` to the middle, zooming in to a readable scale if needed."""
        if readable and self.scale_factor < READABLE_SCALE * 0.6:
            anchor = self.transformationAnchor()
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
            self.set_scale(READABLE_SCALE)
            self.setTransformationAnchor(anchor)
        self.centerOn(rect.center())
        self.view_changed.emit()

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if not delta:
            return
        self.zoom_at(1.0015**delta, event.position())
        event.accept()

    def zoom_at(self, factor: float, pos: QPointF) -> None:
        """Zoom keeping the scene point under ``pos`` (viewport coordinates) where it is.

        Done by hand rather than with AnchorUnderMouse, which reads the global cursor position
        and so does nothing useful for synthetic events (tests, touchpads sending pixel deltas).
        """
        before = self.mapToScene(pos.toPoint())
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.set_scale(self.scale_factor * factor)
        after = self.mapToScene(pos.toPoint())
        centre = self.mapToScene(self.viewport().rect().center())
        self.centerOn(centre - (after - before))
        self.setTransformationAnchor(anchor)
        self.view_changed.emit()

    # ----- mouse: pan by drag, click to select --------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._press = event.position().toPoint()
            self._last = self._press
            self._dragging = False
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._press is not None and self._last is not None:
            pos = event.position().toPoint()
            if not self._dragging and (pos - self._press).manhattanLength() > CLICK_SLOP:
                self._dragging = True
                self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            if self._dragging:
                delta = pos - self._last
                self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
                self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            self._last = pos
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._press is not None:
            was_drag = self._dragging
            self._press, self._last, self._dragging = None, None, False
            self.viewport().unsetCursor()
            if not was_drag and event.button() == Qt.MouseButton.LeftButton:
                self.vertex_clicked.emit(self.vertex_at_view(event.position().toPoint()))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            self.vertex_double_clicked.emit(self.vertex_at_view(event.position().toPoint()))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.context_requested.emit(self.vertex_at_view(event.pos()), event.globalPos())
        event.accept()

    def vertex_at_view(self, pos: QPoint) -> int:
        return self.graph_scene.vertex_at(self.mapToScene(pos))

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.ToolTip:
            vertex = self.vertex_at_view(event.pos())
            text = self.tooltip_for(vertex) if vertex >= 0 else ""
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def tooltip_for(self, vertex: int) -> str:
        sc = self.graph_scene
        vid = html.escape(sc.layout.ids[vertex])
        label = html.escape(sc.label(vertex))
        sub = html.escape(sc.subtext(vertex))
        lines = [f"<b>{label}</b>"] + ([vid] if vid != label else []) + ([sub] if sub else [])
        return "<br>".join(lines)

    def scene_point(self, pos: QPoint) -> QPointF:
        return self.mapToScene(pos)
