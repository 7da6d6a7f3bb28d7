"""The dashboard's pyqtgraph plots: latency per run / over time, histogram, slowest layers, op types.

Every plot creates its items once and updates them in place (``setData`` / ``setOpts``), so a new
run, a live progress update or a run picked from the history never rebuilds the scene. Plots show
only what a record measured: an empty record leaves a plot empty with a title saying why.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics

from studio.core.profiling.records import MEASURE_CYCLES, ProfileRun
from studio.ui.profiling import view_data as vd
from studio.ui.widgets.plot_axis import fast_axes
from studio.ui.widgets.theme import COLORS

PLOT_BG = COLORS["base"]
PLOT_FG = COLORS["text"]
MUTED = COLORS["muted"]
ACCENT = COLORS["accent"]
# Percentile markers: p50 calm, p95 warm, p99 hot.
PCT_COLORS = {"p50": "#7ec699", "p95": "#e5b567", "p99": "#f07178"}
# Distinct, dark-background friendly series colours for overlays (comparison).
SERIES = ["#4c9bff", "#e5b567", "#7ec699", "#c792ea", "#f07178", "#89ddff", "#ffcb6b", "#a3be8c"]
BAR = QColor(76, 155, 255, 200)
BAR_CPU = QColor(229, 181, 103, 200)
BAR_INSERTED = QColor(139, 145, 154, 170)
BAR_SELECTED = QColor("#ffcb6b")


def time_scale(typical_ms: float) -> tuple[float, str]:
    """(factor from ms, unit) so sub-millisecond latencies read in µs, not "ms (x0.001)"."""
    return (1000.0, "µs") if 0 < typical_ms < 1.0 else (1.0, "ms")


class StudioPlot(pg.PlotWidget):
    """A PlotWidget dressed for the dark theme, with a title and a scalable font.

    Its axes fill the translucent grid lines instead of stroking them (``widgets/plot_axis``):
    stroked, they made each plot's repaint cost ~15 ms of UI-thread time on a software rasteriser.
    """

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent, background=PLOT_BG, axisItems=fast_axes())
        self.setMenuEnabled(False)
        self.hideButtons()
        self.showGrid(x=True, y=True, alpha=0.12)
        self._title = title
        self._font_pt = 9.0
        for axis in ("left", "bottom"):
            ax = self.getAxis(axis)
            ax.setTextPen(PLOT_FG)
            ax.setPen(COLORS["border"])
            ax.enableAutoSIPrefix(False)
        self.set_title(title)
        self.setMinimumHeight(170)

    def set_title(self, text: str, sub: str = "") -> None:
        size = f"{self._font_pt + 2:.0f}pt"
        html = f"<span style='color:{PLOT_FG}; font-size:{size}; font-weight:600'>{text}</span>"
        if sub:
            html += f"<span style='color:{MUTED}; font-size:{self._font_pt:.0f}pt'>  {sub}</span>"
        self.setTitle(html)

    def set_font_size(self, pt: float) -> None:
        """Presentation mode enlarges axis text; the title follows on its next update."""
        self._font_pt = pt
        font = QFont()
        font.setPointSizeF(pt)
        for axis in ("left", "bottom"):
            self.getAxis(axis).setStyle(tickFont=font)
            self.getAxis(axis).label.setFont(font)

    def axis_label(self, axis: str, text: str) -> None:
        self.setLabel(axis, text, color=MUTED)


class LatencyPlot(StudioPlot):
    """Latency of every measured run; in sustained mode, mean and p95 per time bin as well."""

    def __init__(self, parent=None) -> None:
        super().__init__("Latency per run", parent)
        self.per_run = pg.PlotDataItem(
            pen=pg.mkPen(ACCENT, width=1),
            symbol="o",
            symbolSize=3,
            symbolPen=None,
            symbolBrush=pg.mkBrush(ACCENT),
        )
        self.mean_line = pg.InfiniteLine(
            angle=0, movable=False, pen=pg.mkPen(PCT_COLORS["p50"], style=Qt.PenStyle.DashLine)
        )
        self.tl_mean = pg.PlotDataItem(pen=pg.mkPen(ACCENT, width=2), name="mean")
        self.tl_p95 = pg.PlotDataItem(pen=pg.mkPen(PCT_COLORS["p95"], width=2), name="p95")
        self.tl_max = pg.PlotDataItem(
            pen=pg.mkPen(PCT_COLORS["p99"], width=1, style=Qt.PenStyle.DotLine), name="max"
        )
        for item in (self.per_run, self.mean_line, self.tl_mean, self.tl_p95, self.tl_max):
            self.addItem(item)
        self.axis_label("left", "ms")
        self.axis_label("bottom", "run")
        self.clear_data()

    def clear_data(self) -> None:
        for item in (self.per_run, self.tl_mean, self.tl_p95, self.tl_max):
            item.setData([], [])
        self.mean_line.hide()

    def show_run(self, run: ProfileRun) -> None:
        sustained = vd.is_sustained(run)
        k, unit = time_scale(run.stats.p50_ms)
        self.axis_label("left", unit)
        for item in (self.tl_mean, self.tl_p95, self.tl_max):
            item.setVisible(sustained)
        self.per_run.setVisible(not sustained)
        if sustained:
            t = [b["t_s"] for b in run.timeline]
            self.tl_mean.setData(t, [b["mean_ms"] * k for b in run.timeline])
            self.tl_p95.setData(t, [b["p95_ms"] * k for b in run.timeline])
            self.tl_max.setData(t, [b["max_ms"] * k for b in run.timeline])
            self.per_run.setData([], [])
            self.axis_label("bottom", "time (s)")
            self.set_title("Latency over time", f"{len(run.timeline)} bins: mean, p95, max")
        else:
            self.per_run.setData(vd.run_indices(run), [v * k for v in run.latencies_ms])
            for item in (self.tl_mean, self.tl_p95, self.tl_max):
                item.setData([], [])
            self.axis_label("bottom", "run")
            stride = f", every {run.latency_stride}th saved" if run.latency_stride > 1 else ""
            self.set_title("Latency per run", f"{run.stats.count} runs{stride}")
        self.mean_line.setPos(run.stats.mean_ms * k)
        self.mean_line.show()
        self.enableAutoRange()

    def show_live(self, live: vd.LiveLatencies) -> None:
        """Runs measured so far, while the job is still running (the same per-run item)."""
        values = np.asarray(live.values, dtype=float)
        k, unit = time_scale(float(np.median(values)) if values.size else 0.0)
        self.axis_label("left", unit)
        for item in (self.tl_mean, self.tl_p95, self.tl_max):
            item.setData([], [])
            item.setVisible(False)
        self.per_run.setVisible(True)
        self.per_run.setData(np.asarray(live.x, dtype=float), values * k)
        self.axis_label("bottom", "time (s)" if live.sustained else "run")
        if values.size:
            self.mean_line.setPos(float(values.mean()) * k)
            self.mean_line.show()
        self.set_title("Latency per run", f"measuring… {live.count} runs so far")
        self.enableAutoRange()


class HistogramPlot(StudioPlot):
    """Distribution of per-run latency with p50/p95/p99 marked and labelled."""

    def __init__(self, parent=None) -> None:
        super().__init__("Latency distribution", parent)
        self.curve = pg.PlotDataItem(
            stepMode="center",
            fillLevel=0,
            brush=pg.mkBrush(76, 155, 255, 110),
            pen=pg.mkPen(ACCENT, width=1),
        )
        self.addItem(self.curve)
        self.markers: dict[str, pg.InfiniteLine] = {}
        for i, (name, col) in enumerate(PCT_COLORS.items()):
            line = pg.InfiniteLine(
                angle=90,
                movable=False,
                pen=pg.mkPen(col, width=2, style=Qt.PenStyle.DashLine),
                label=name,
                labelOpts={
                    "position": 0.92 - 0.1 * i,
                    "color": col,
                    "fill": pg.mkBrush(23, 25, 28, 220),
                    "movable": False,
                },
            )
            line.hide()
            self.addItem(line)
            self.markers[name] = line
        self.axis_label("left", "runs")
        self.axis_label("bottom", "latency (ms)")
        self.counts: list[int] = []
        self.edges: list[float] = []
        self.scale = 1.0  # plotted value = latency in ms * scale

    def clear_data(self) -> None:
        self.counts, self.edges = [], []
        self.curve.setData([], [])
        for line in self.markers.values():
            line.hide()

    def show_run(self, run: ProfileRun) -> None:
        k, unit = time_scale(run.stats.p50_ms)
        self.scale = k
        self.axis_label("bottom", f"latency ({unit})")
        self.edges, self.counts = vd.histogram([v * k for v in run.latencies_ms])
        if self.counts:
            self.curve.setData(self.edges, self.counts)
        else:
            self.curve.setData([], [])
        figures = {"p50": run.stats.p50_ms, "p95": run.stats.p95_ms, "p99": run.stats.p99_ms}
        for name, value in figures.items():
            line = self.markers[name]
            line.label.setFormat(f"{name} {vd.fmt_ms(value)}")
            line.setPos(value * k)
            line.label.valueChanged()
            line.show()
        font = QFont()
        font.setPointSizeF(self._font_pt)
        for line in self.markers.values():
            line.label.setFont(font)
        self.set_title("Latency distribution", f"{sum(self.counts)} runs")
        self.enableAutoRange()

    def show_live(self, live: vd.LiveLatencies) -> None:
        """Distribution of the runs measured so far; percentile markers wait for the record."""
        values = np.asarray(live.values, dtype=float)
        k, unit = time_scale(float(np.median(values)) if values.size else 0.0)
        self.scale = k
        self.axis_label("bottom", f"latency ({unit})")
        self.edges, self.counts = vd.histogram((values * k).tolist())
        if self.counts:
            self.curve.setData(self.edges, self.counts)
        else:
            self.curve.setData([], [])
        for line in self.markers.values():
            line.hide()
        kept = f", {values.size} shown" if values.size < live.count else ""
        self.set_title("Latency distribution", f"measuring… {live.count} runs{kept}")
        self.enableAutoRange()


class _HBarPlot(StudioPlot):
    """Horizontal bars with category labels on the left axis, costliest at the top."""

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(title, parent)
        self.bars = pg.BarGraphItem(
            x0=[], y=[], height=0.7, width=[], brush=BAR, pen=pg.mkPen(None)
        )
        self.addItem(self.bars)
        self.showGrid(x=True, y=False, alpha=0.12)
        self.getViewBox().setMouseEnabled(x=False, y=False)
        # Every bar needs its label: never let the axis drop "crowded" category names.
        self.getAxis("left").setStyle(textFillLimits=[(0, 1.0)], hideOverlappingLabels=False)
        self.labels: list[str] = []
        self.values: list[float] = []
        self.run: ProfileRun | None = None
        self.top_n = 12
        self._fit = self.top_n

    def fitting_bars(self) -> int:
        """How many labelled bars fit the plot's height (at least 3, at most ``top_n``)."""
        font = self.getAxis("left").style.get("tickFont") or QFont()
        row = QFontMetrics(font).height() + 3
        height = self.getViewBox().height() or self.height() * 0.7
        return max(3, min(self.top_n, int(height // row)))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        run = self.__dict__.get("run")  # resize events arrive during PlotWidget's own __init__
        if run is not None and self.fitting_bars() != self._fit:
            self.show_run(run)

    def show_run(self, run: ProfileRun) -> None:
        raise NotImplementedError

    def _set_bars(self, labels: list[str], values: list[float], brushes: list[QColor]) -> None:
        self.labels, self.values = labels, values
        n = len(values)
        ys = [float(n - 1 - i) for i in range(n)]  # first item on top
        self.bars.setOpts(
            x0=[0.0] * n,
            y=ys,
            height=0.7,
            width=values,
            brushes=[pg.mkBrush(b) for b in brushes],
        )
        ticks = [(y, _short(label)) for y, label in zip(ys, labels, strict=True)]
        axis = self.getAxis("left")
        axis.setTicks([ticks, []])
        font = axis.style.get("tickFont") or QFont()
        widest = max((QFontMetrics(font).horizontalAdvance(t) for _, t in ticks), default=40)
        axis.setWidth(min(320, widest + 18))
        self.setYRange(-0.6, max(n, 1) - 0.4, padding=0)
        self.setXRange(0, max(values) * 1.05 if values else 1.0, padding=0)


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else "…" + label[-(limit - 1) :]


class SlowestLayersPlot(_HBarPlot):
    """The N costliest layers; clicking a bar emits its ONNX node id (inserted ops emit nothing)."""

    node_clicked = Signal(str)

    def __init__(self, parent=None, top_n: int = 12) -> None:
        super().__init__("Slowest layers", parent)
        self.top_n = self._fit = top_n
        self.node_ids: list[str] = []
        self.inserted: list[bool] = []
        self._base: list[QColor] = []
        self.selected = ""
        self.scene().sigMouseClicked.connect(self._on_click)
        self.setToolTip(
            "Blue: ran on the target backend · amber: timed on the CPU EP · "
            "grey: op inserted by the backend (no ONNX node)"
        )
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def clear_data(self) -> None:
        self.run = None
        self.node_ids, self.inserted, self._base = [], [], []
        self._set_bars([], [], [])
        self.set_title("Slowest layers", "no per-layer figures")

    def show_run(self, run: ProfileRun) -> None:
        self.run = run
        self._fit = self.fitting_bars()
        rows = vd.slowest(run, self._fit)
        measure = vd.primary_measure(run)
        self.node_ids = [r.node_id for r in rows]
        self.inserted = [r.inserted for r in rows]
        self._base = [
            BAR_INSERTED if r.inserted else (BAR_CPU if r.backend == "cpu" else BAR) for r in rows
        ]
        self._set_bars(self.node_ids, [float(r.value or 0.0) for r in rows], self._base)
        unit = vd.MEASURE_LABEL.get(measure or "", "")
        self.axis_label("bottom", unit)
        if not rows:
            self.set_title("Slowest layers", "no per-layer figures in this run")
        else:
            sub = "simulator cycles" if measure == MEASURE_CYCLES else "kernel time, µs"
            self.set_title(f"Slowest {len(rows)} layers", f"{sub} · click to select")
        self.highlight(self.selected)

    def highlight(self, node_id: str) -> None:
        self.selected = node_id
        if not self.node_ids:
            return
        brushes = [
            pg.mkBrush(BAR_SELECTED if nid == node_id else base)
            for nid, base in zip(self.node_ids, self._base, strict=True)
        ]
        self.bars.setOpts(brushes=brushes)

    def bar_center(self, index: int) -> QPointF:
        """Scene position of bar ``index``'s middle (tests click there like a user would)."""
        n = len(self.values)
        point = QPointF(self.values[index] / 2.0, float(n - 1 - index))
        return self.getViewBox().mapViewToScene(point)

    def index_at(self, view_x: float, view_y: float) -> int | None:
        n = len(self.values)
        i = n - 1 - int(round(view_y))
        if 0 <= i < n and abs(view_y - (n - 1 - i)) <= 0.35 and 0 <= view_x <= self.values[i]:
            return i
        return None

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.getViewBox()
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        i = self.index_at(point.x(), point.y())
        if i is not None and not self.inserted[i]:
            self.node_clicked.emit(self.node_ids[i])


class OpTypePlot(_HBarPlot):
    """Share of the total per op type (what kind of work the time or cycles go to)."""

    def __init__(self, parent=None, top_n: int = 10) -> None:
        super().__init__("Cost by op type", parent)
        self.top_n = self._fit = top_n
        self.axis_label("bottom", "share of total (%)")

    def clear_data(self) -> None:
        self.run = None
        self._set_bars([], [], [])
        self.set_title("Cost by op type", "no per-layer figures")

    def show_run(self, run: ProfileRun) -> None:
        self.run = run
        self._fit = self.fitting_bars()
        items = vd.op_type_breakdown(run)[: self._fit]
        labels = [f"{op}  {share * 100:.1f}%" for op, _, share in items]
        values = [share * 100.0 for _, _, share in items]
        colours = [QColor(SERIES[i % len(SERIES)]) for i in range(len(items))]
        self._set_bars(labels, values, colours)
        if items:
            self.set_title("Cost by op type", f"{len(items)} op types")
        else:
            self.set_title("Cost by op type", "no per-layer figures in this run")


def _log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """1-2-5 ticks for a log10 axis (pyqtgraph labels every minor tick otherwise)."""
    ticks = []
    for exp in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**exp
            if lo / 1.5 <= v <= hi * 1.5:
                ticks.append((float(np.log10(v)), f"{v:g}"))
    return ticks


class OverlaidHistograms(StudioPlot):
    """Histograms of several runs on one axis (shared bins) for the comparison view."""

    def __init__(self, parent=None) -> None:
        super().__init__("Latency distributions", parent)
        self.legend = self.addLegend(offset=(-10, 10), labelTextColor=PLOT_FG)
        self.curves: list[pg.PlotDataItem] = []
        self.axis_label("left", "runs")
        self.axis_label("bottom", "latency (ms)")

    def show_runs(self, runs: list[ProfileRun]) -> None:
        while len(self.curves) < len(runs):
            col = QColor(SERIES[len(self.curves) % len(SERIES)])
            fill = QColor(col)
            fill.setAlpha(60)
            curve = pg.PlotDataItem(
                stepMode="center", fillLevel=0, brush=pg.mkBrush(fill), pen=pg.mkPen(col, width=2)
            )
            self.addItem(curve)
            self.curves.append(curve)
        self.legend.clear()
        all_values = np.concatenate([np.asarray(r.latencies_ms, float) for r in runs] or [[]])
        all_values = all_values[all_values > 0]
        k, unit = time_scale(float(np.median(all_values)) if all_values.size else 1.0)
        # Runs on different backends can differ 100-fold: then bins and axis go logarithmic,
        # so each distribution keeps its shape instead of collapsing into one bar.
        spread = all_values.max() / all_values.min() if all_values.size else 1.0
        log_x = bool(spread > 20.0)
        self.setLogMode(x=log_x, y=False)
        self.axis_label("bottom", f"latency ({unit})" + (", log scale" if log_x else ""))
        edges: list[float] = []
        self.getAxis("bottom").setTicks(None)
        if all_values.size and log_x:
            lo, hi = float(all_values.min() * k), float(all_values.max() * k)
            edges = np.geomspace(lo, hi * 1.0001, 61).tolist()
            self.getAxis("bottom").setTicks([_log_ticks(lo, hi), []])
        elif all_values.size:
            edges, _ = vd.histogram((all_values * k).tolist())
        for i, curve in enumerate(self.curves):
            if i < len(runs) and edges:
                counts, _ = np.histogram(np.asarray(runs[i].latencies_ms) * k, bins=edges)
                curve.setData(edges, counts.tolist())
                curve.show()
                self.legend.addItem(curve, f"{vd.run_tag(i)}  {runs[i].label or runs[i].id}")
            else:
                curve.setData([], [])
                curve.hide()
        self.enableAutoRange()
