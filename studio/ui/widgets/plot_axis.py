"""A pyqtgraph axis that paints its translucent grid lines as 1-pixel filled rectangles.

pyqtgraph draws a plot's grid as the axis's tick lines extended across the view, with a pen of
low alpha. Qt's raster engine strokes such lines through its slow blending path: measured on this
host (offscreen, software raster) 43 grid lines took 12 ms with alpha and 0.7 ms opaque, while
the same lines as 1-pixel ``fillRect``s of the same translucent colour took 0.17 ms. Four
dashboard plots so spent ~60 ms of one UI-thread turn on their grids alone (issue 15: no stall
above 50 ms). Grid and tick lines are always horizontal or vertical, so this axis fills them as
rectangles on the pixels Qt's aliased stroke would cover: the same pixels, blended the same way.

pyqtgraph records an axis into a QPicture and replays it; a recording does not know the device
pixels it will land on, so this axis keeps the recorded *specs* instead and draws them with the
live painter (the costly part, generating the specs, is still done once per change).
"""

from __future__ import annotations

from math import floor

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QFont, QPainter, QPicture


def line_rect(p1: QPointF, p2: QPointF) -> QRectF | None:
    """The device pixels an aliased 1-pixel horizontal or vertical line covers (None: slanted).

    Qt's aliased cosmetic stroke lights pixel ``floor(c)`` across the line and every pixel from
    the first end's to the last end's along it.
    """
    if p1.y() == p2.y():
        left, right = sorted((floor(p1.x()), floor(p2.x())))
        return QRectF(left, floor(p1.y()), right - left + 1, 1)
    if p1.x() == p2.x():
        top, bottom = sorted((floor(p1.y()), floor(p2.y())))
        return QRectF(floor(p1.x()), top, 1, bottom - top + 1)
    return None


def _fillable(pen) -> bool:
    return (
        pen.color().alpha() < 255
        and pen.style() == Qt.PenStyle.SolidLine
        and (pen.isCosmetic() or pen.widthF() <= 1.0)
        and pen.widthF() <= 1.0
    )


class FastGridAxis(pg.AxisItem):
    """An AxisItem whose translucent tick and grid lines are filled, not stroked."""

    _specs: tuple | None = None

    def paint(self, p, opt, widget) -> None:
        if self.picture is None:  # pyqtgraph sets it to None whenever the axis must be redrawn
            picture = QPicture()
            painter = QPainter(picture)
            try:
                if self.style["tickFont"]:
                    painter.setFont(self.style["tickFont"])
                self._specs = self.generateDrawSpecs(painter)
            finally:
                painter.end()
            self.picture = picture  # marks the specs current
        if self._specs is not None:
            p.save()
            try:
                self.drawPicture(p, *self._specs)
            finally:
                p.restore()

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs) -> None:  # noqa: N802, N803
        p.setRenderHint(p.RenderHint.Antialiasing, False)
        p.setRenderHint(p.RenderHint.TextAntialiasing, True)
        pen, p1, p2 = axisSpec
        p.setPen(pen)
        p.drawLine(p1, p2)
        # device pixels = item coordinates scaled and shifted (axes are never rotated); the
        # QTransform's own queries crashed inside QWidget.grab, so only its numbers are read
        t = p.transform()
        sx, sy, dx, dy = t.m11(), t.m22(), t.dx(), t.dy()
        simple = t.m12() == 0 and t.m21() == 0 and sx > 0 and sy > 0
        fills = []
        for pen, p1, p2 in tickSpecs:
            rect = None
            if simple and _fillable(pen):
                rect = line_rect(
                    QPointF(p1.x() * sx + dx, p1.y() * sy + dy),
                    QPointF(p2.x() * sx + dx, p2.y() * sy + dy),
                )
            if rect is not None:
                item_rect = QRectF(
                    (rect.x() - dx) / sx,
                    (rect.y() - dy) / sy,
                    rect.width() / sx,
                    rect.height() / sy,
                )
                fills.append((item_rect, pen.color()))
            else:
                p.setPen(pen)
                p.drawLine(p1, p2)
        for rect, colour in fills:
            p.fillRect(rect, colour)
        p.setFont(self.style["tickFont"] or QFont())
        p.setPen(self.textPen())
        p.setClipRect(self.boundingRect().toAlignedRect())
        for rect, flags, text in textSpecs:
            p.drawText(rect, int(flags), text)


def fast_axes() -> dict[str, FastGridAxis]:
    """``axisItems`` for a PlotWidget/PlotItem whose left and bottom axes carry the grid."""
    return {side: FastGridAxis(side) for side in ("left", "bottom")}
