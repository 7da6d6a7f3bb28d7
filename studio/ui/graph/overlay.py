"""Overlays on the graph: per-node values -> colours, badges, and the legend that explains them.

An overlay is plain data keyed by node id (DESIGN.md: "per-node data is a separate overlay keyed by
node id, loadable onto any graph"): a ``studio.core.overlay.NodeOverlay`` (values by node id,
unit, kind, source, colour map), the one type the project, the report and the CLI use too. Turning it
into colours is numpy work over the layout's vertices, so applying one never re-lays the graph.
A collapsed group shows the sum of its members (for built-ins, whose figures add up) or the
maximum (for overlays from other workspaces, where a sum means nothing: the worst SQNR is still
visible because the colour map is chosen by the sender).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QWidget

from studio.core.model import layout as lay
from studio.core.overlay import NodeOverlay
from studio.ui.graph import colormaps
from studio.ui.widgets.theme import COLORS

BUILTIN = {
    "MACs per node": ("macs", "MACs", "magma"),
    "Parameters per node": ("params", "params", "viridis"),
    "Activation bytes": ("activation_bytes", "bytes", "plasma"),
}


def builtin_overlay(graph: Any, title: str) -> NodeOverlay:
    """One of the built-in overlays (MACs, parameters, activation bytes) computed from NodeInfo."""
    attr, unit, cmap = BUILTIN[title]
    values = {n.id: float(getattr(n, attr)) for n in graph.nodes}
    return NodeOverlay(title, values, unit, "counted", "the model", cmap, aggregate="sum")


def vertex_values(layout: lay.Layout, overlay: NodeOverlay) -> np.ndarray:
    """The overlay's value for each layout vertex (NaN where it has none)."""
    out = np.full(layout.size, np.nan)
    vals = overlay.values
    for i, vid in enumerate(layout.ids):
        if vid in vals:
            out[i] = _float(vals[vid])
    for gid, members in layout.members.items():
        found = [_float(vals[m]) for m in members if m in vals]
        found = [v for v in found if math.isfinite(v)]
        if found:
            out[layout.vertex_of[gid]] = sum(found) if overlay.aggregate == "sum" else max(found)
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def format_value(value: float, unit: str = "") -> str:
    """Compact engineering notation: 1.2 G, 345 k, 0.012."""
    if not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= threshold:
            text = f"{value / threshold:.3g} {suffix}"
            break
    else:
        text = f"{value:.3g}"
    return f"{text}{unit}" if not unit else f"{text} {unit}".replace("  ", " ")


class LegendWidget(QWidget):
    """A floating card: overlay title and what its numbers are (measured, emulated, estimated...),
    colour bar with min and max (and unit), no-data swatch."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("graphLegend")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.title = ""
        self.kind = ""  # NodeOverlay.kind, shown beside the title
        self.unit = ""
        self.vmin = 0.0
        self.vmax = 0.0
        self.log = False
        self.table = colormaps.lut(colormaps.DEFAULT)
        self.has_missing = False
        self.resize(260, 86)
        self.hide()

    def set_overlay(
        self,
        title: str,
        table: np.ndarray,
        vmin: float,
        vmax: float,
        unit: str,
        log: bool,
        has_missing: bool,
        kind: str = "",
    ) -> None:
        self.title, self.table, self.vmin, self.vmax = title, table, vmin, vmax
        self.kind = kind
        self.unit, self.log, self.has_missing = unit, log, has_missing
        self.show()
        self.raise_()
        self.update()

    def min_text(self) -> str:
        return format_value(self.vmin, self.unit)

    def max_text(self) -> str:
        return format_value(self.vmax, self.unit)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        card = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        bg = QColor(COLORS["panel"])
        bg.setAlpha(235)
        p.setPen(QPen(QColor(COLORS["border"]), 1))
        p.setBrush(bg)
        p.drawRoundedRect(card, 8, 8)
        font = p.font()
        font.setBold(True)
        p.setFont(font)
        p.setPen(QColor(COLORS["text"]))
        title = self.title + ("  (log scale)" if self.log else "")
        head = QRectF(12, 8, self.width() - 24, 18)
        plain = QFont(font)
        plain.setBold(False)
        kind_width = QFontMetrics(plain).horizontalAdvance(self.kind) + 10 if self.kind else 0
        title = QFontMetrics(font).elidedText(
            title, Qt.TextElideMode.ElideRight, int(head.width() - kind_width)
        )
        p.drawText(head, Qt.AlignmentFlag.AlignLeft, title)
        font.setBold(False)
        p.setFont(font)
        if self.kind:
            p.setPen(QColor(COLORS["muted"]))
            p.drawText(head, Qt.AlignmentFlag.AlignRight, self.kind)
        bar = QRectF(12, 32, self.width() - 24, 14)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for k in range(0, len(self.table), max(1, len(self.table) // 16)):
            r, g, b = (int(c) for c in self.table[k])
            gradient.setColorAt(k / (len(self.table) - 1), QColor(r, g, b))
        r, g, b = (int(c) for c in self.table[-1])
        gradient.setColorAt(1.0, QColor(r, g, b))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(gradient)
        p.drawRoundedRect(bar, 3, 3)
        p.setPen(QColor(COLORS["muted"]))
        metrics = QFontMetrics(font)
        row = QRectF(12, 50, self.width() - 24, metrics.height())
        p.drawText(row, Qt.AlignmentFlag.AlignLeft, self.min_text())
        p.drawText(row, Qt.AlignmentFlag.AlignRight, self.max_text())
        if self.has_missing:
            swatch = QRectF(12, 68, 10, 10)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#3a3f47"))
            p.drawRect(swatch)
            p.setPen(QColor(COLORS["muted"]))
            p.drawText(QRectF(28, 65, self.width() - 40, 16), Qt.AlignmentFlag.AlignLeft, "no data")
        p.end()
