"""The Deploy workspace's live monitor: thermal, clock and battery curves of a phone run.

Why a module of its own: the phone's monitor streams samples while a job runs (``data`` events)
and sends the whole series with the result; growing the curves in place, one unit at a time, is
a job apart from compiling and running bundles. pyqtgraph is optional: without it there is no
plot and the workspace works as before.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QSplitter, QVBoxLayout, QWidget

# the monitor plot shows one unit at a time: series names end with their unit
MONITOR_GROUPS = {
    "Temperatures (°C), measured on the phone": "(°C)",
    "CPU / GPU clocks (MHz), measured on the phone": "(MHz)",
    "Battery current (mA), measured on the phone": "(mA)",
}
COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"]


class MonitorPlot:
    """The unit chooser and the plot, added to ``parent``; hidden until a first sample."""

    def __init__(self, parent: QSplitter, pg: Any) -> None:
        self._pg = pg
        self.box = QWidget(parent)
        layout = QVBoxLayout(self.box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.group = QComboBox(self.box)
        self.group.addItems(list(MONITOR_GROUPS))
        self.group.currentIndexChanged.connect(self.redraw)
        layout.addWidget(self.group)
        self.plot = pg.PlotWidget(self.box)
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "time since the run started (s)")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setMinimumHeight(160)
        layout.addWidget(self.plot, 1)
        self.box.hide()
        parent.addWidget(self.box)
        self.curves: dict[str, Any] = {}
        self.points: dict[str, list[float]] = {}

    @classmethod
    def create(cls, parent: QSplitter) -> MonitorPlot | None:
        try:
            import pyqtgraph as pg
        except ImportError:  # the workspace works without the live plot
            return None
        return cls(parent, pg)

    def reset(self) -> None:
        self.points = {}

    def set_series(self, monitor: dict[str, Any]) -> None:
        """The whole series a finished run sends (``t_s`` and one list per series)."""
        self.points = {
            "t": list(monitor["t_s"]),
            **{k: list(v) for k, v in monitor["series"].items()},
        }
        self.redraw()

    def add_sample(self, sample: dict[str, Any]) -> None:
        """One live monitor sample: the curves grow in place while the phone runs."""
        pts = self.points
        pts.setdefault("t", []).append(float(sample.get("t_s", 0)))
        n = len(pts["t"])
        for name, value in sample.get("values", {}).items():
            series = pts.setdefault(name, [])
            series.extend([None] * (n - 1 - len(series)))
            series.append(value)
        self.redraw()

    def redraw(self) -> None:
        self.box.show()
        unit = MONITOR_GROUPS[self.group.currentText()]
        self.plot.setLabel("left", unit.strip("()"))
        t = self.points.get("t", [])
        series = [k for k in self.points.items() if k[0] != "t"]
        for i, (name, values) in enumerate(series):
            xs = [x for x, v in zip(t, values, strict=False) if v is not None]
            ys = [v for v in values if v is not None]
            curve = self.curves.get(name)
            if curve is None:
                pen = self._pg.mkPen(COLOURS[i % len(COLOURS)], width=2)
                curve = self.plot.plot([], [], name=name, pen=pen)
                self.curves[name] = curve
            curve.setData(xs, ys)
            curve.setVisible(name.endswith(unit))
        legend = self.plot.plotItem.legend
        if legend is not None:  # the legend names only the series of the unit shown
            legend.clear()
            for name, curve in self.curves.items():
                if curve.isVisible():
                    legend.addItem(curve, name)
