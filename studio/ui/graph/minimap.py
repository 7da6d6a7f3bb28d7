"""The minimap: the whole graph in a corner, the visible area outlined; click or drag to go there.

The picture is rendered once per layout or colour change (the scene paints itself zoomed out, which
is the cheap band-path mode) and cached; moving the view only redraws the outline. Very tall or
wide graphs (a transformer is a long chain) are stretched to fill the card: the minimap is a
navigation aid, and a 1:2000 sliver would be useless.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

from studio.ui.graph import styles
from studio.ui.graph.view import GraphView
from studio.ui.widgets.theme import COLORS

MAX_STRETCH = 3.0


class Minimap(QWidget):
    """Overview of ``view``'s scene; emits nothing, it moves the view directly."""

    def __init__(self, view: GraphView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("graphMinimap")
        self.view = view
        self._image: QImage | None = None
        self._target = QRectF()
        self.setFixedSize(QSize(180, 180))
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Minimap: click or drag to move the view")
        view.view_changed.connect(self.update)

    def invalidate(self) -> None:
        self._image = None
        self.update()

    def _mapping(self) -> tuple[QRectF, QRectF]:
        """(scene bounds, target rect in widget coordinates) with bounded stretching."""
        bounds = self.view.graph_scene.bounds
        area = QRectF(self.rect()).adjusted(8, 8, -8, -8)
        if bounds.isEmpty():
            return bounds, area
        sx = area.width() / bounds.width()
        sy = area.height() / bounds.height()
        if max(sx, sy) <= min(sx, sy) * MAX_STRETCH:  # near-square: keep the aspect ratio
            sx = sy = min(sx, sy)
        else:  # a long chain: fill the card, a sliver would be useless
            sx = min(sx, sy * 400)
            sy = min(sy, sx * 400)
        w, h = bounds.width() * sx, bounds.height() * sy
        target = QRectF(area.center().x() - w / 2, area.center().y() - h / 2, w, h)
        return bounds, target

    def _render(self) -> None:
        bounds, target = self._mapping()
        image = QImage(self.size(), QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        if not bounds.isEmpty():
            painter = QPainter(image)
            self.view.graph_scene.render(
                painter, target, bounds, Qt.AspectRatioMode.IgnoreAspectRatio
            )
            painter.end()
        self._image = image
        self._target = target

    def to_scene(self, pos: QPointF) -> QPointF:
        bounds, target = self._mapping()
        if target.isEmpty():
            return bounds.center()
        fx = (pos.x() - target.left()) / target.width()
        fy = (pos.y() - target.top()) / target.height()
        return QPointF(bounds.left() + fx * bounds.width(), bounds.top() + fy * bounds.height())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        bg = QColor(COLORS["base"])
        bg.setAlpha(230)
        p.setPen(QPen(QColor(COLORS["border"]), 1))
        p.setBrush(bg)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
        if self.view.graph_scene.layout is None:
            p.end()
            return
        if self._image is None or self._image.size() != self.size():
            self._render()
        p.drawImage(0, 0, self._image)
        bounds, target = self._mapping()
        if not bounds.isEmpty():
            visible = self.view.visible_scene_rect()
            sx = target.width() / bounds.width()
            sy = target.height() / bounds.height()
            frame = QRectF(
                target.left() + (visible.left() - bounds.left()) * sx,
                target.top() + (visible.top() - bounds.top()) * sy,
                max(4.0, visible.width() * sx),
                max(4.0, visible.height() * sy),
            ).intersected(QRectF(self.rect()).adjusted(2, 2, -2, -2))
            fill = QColor(styles.SELECTION)
            fill.setAlpha(40)
            p.setBrush(fill)
            p.setPen(QPen(styles.SELECTION, 1.5))
            p.drawRect(frame)
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self.view.centerOn(self.to_scene(event.position()))
        self.view.view_changed.emit()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.view.centerOn(self.to_scene(event.position()))
            self.view.view_changed.emit()
