"""The Pareto plot: output SQNR against on-device latency, one colour per device.

Only points with a device figure (measured, else estimated) are drawn; the emulator's time is
never an axis. Filled, larger points are on their device's front, which is joined by a line.
Clicking a point emits its key. Items are made once per device and updated with ``setData``.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.core.sweeps import latency_of
from studio.ui.quant.style import PLOT_BG, PLOT_FG, color, themed_plot

PALETTE = ("#4e9af1", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2")


class ParetoPlot(QWidget):
    point_clicked = Signal(str)  # the point's key

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel("Run a sweep: each finished point appears here", self)
        self.caption.setObjectName("quantChartCaption")
        self.caption.setWordWrap(True)
        self.plot = themed_plot(self)
        # plain labels: pyqtgraph's SI prefixes would turn 0.14 ms into "140 mms"
        self.plot.setLabel("left", "output SQNR, dB", color=PLOT_FG)
        self.plot.setLabel("bottom", "on-device latency, ms (estimated)", color=PLOT_FG)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.chosen = pg.ScatterPlotItem(
            size=16, brush=pg.mkBrush(0, 0, 0, 0), pen=pg.mkPen(color("ok"), width=2)
        )
        self.plot.addItem(self.chosen)
        self._items: dict[str, tuple[pg.ScatterPlotItem, pg.PlotDataItem]] = {}
        self._keys: dict[str, list[str]] = {}
        self._xy: dict[str, tuple[float, float]] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 1)

    def _device_items(self, device: str) -> tuple[pg.ScatterPlotItem, pg.PlotDataItem]:
        if device not in self._items:
            colour = PALETTE[len(self._items) % len(PALETTE)]
            front = pg.PlotDataItem(pen=pg.mkPen(colour, width=1.5))
            scatter = pg.ScatterPlotItem(pen=pg.mkPen(colour), name=device)
            scatter.sigClicked.connect(lambda _item, pts, _ev=None, d=device: self._clicked(d, pts))
            self.plot.addItem(front)
            self.plot.addItem(scatter)
            self._items[device] = (scatter, front)
        return self._items[device]

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        groups: dict[str, list[tuple[float, float, dict[str, Any]]]] = {}
        kinds: set[str] = set()
        for row in rows:
            lat, kind = latency_of(row)
            db = row.get("sqnr_db")
            if row.get("status") == "done" and lat is not None and isinstance(db, int | float):
                groups.setdefault(str(row.get("device")), []).append((lat, float(db), row))
                kinds.add(kind or "")
        self._xy = {}
        for device in set(self._items) | set(groups):
            scatter, front = self._device_items(device)
            mine = sorted(groups.get(device, []), key=lambda p: p[0])
            colour = scatter.opts["pen"].color()
            spots = [
                {
                    "pos": (x, y),
                    "size": 12 if r.get("pareto") else 8,
                    "brush": pg.mkBrush(colour) if r.get("pareto") else pg.mkBrush(PLOT_BG),
                    "data": r["key"],
                }
                for x, y, r in mine
            ]
            scatter.setData(spots)
            edge = [(x, y) for x, y, r in mine if r.get("pareto")]
            front.setData([p[0] for p in edge], [p[1] for p in edge])
            self._keys[device] = [r["key"] for _, _, r in mine]
            self._xy.update({r["key"]: (x, y) for x, y, r in mine})
        n = sum(len(g) for g in groups.values())
        if n:
            self.caption.setText(
                f"{n} point(s) with a device figure ({', '.join(sorted(kinds))}; never the "
                "emulator's time). Filled: on the Pareto front of its device. Click to use a point."
            )
        self.plot.enableAutoRange()

    def mark(self, key: str | None) -> None:
        xy = self._xy.get(key or "")
        self.chosen.setData([xy[0]] if xy else [], [xy[1]] if xy else [])

    def _clicked(self, device: str, points: Any) -> None:
        if len(points):
            self.point_clicked.emit(str(points[0].data()))

    def png(self) -> bytes:
        """The plot as PNG bytes (for the report)."""
        image = self.plot.grab().toImage()
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buf, "PNG")
        buf.close()
        return bytes(data.data())
