"""Per-layer SQNR bars and the auto mixed precision curve (pyqtgraph, items updated in place).

Both charts only show what the core measured: the bars are ``accuracy`` results per tensor, the
curve is the list of configurations the auto-mix search evaluated. Clicking a bar selects that
tensor; clicking a curve point asks the workspace to apply that configuration (undoable).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from studio.ui.quant.style import PLOT_BG, PLOT_FG, color, sqnr_brushes, themed_plot


def _placeholder(plot: pg.PlotWidget, text: str) -> pg.TextItem:
    """A centred note in an empty plot (removed from view once data arrives)."""
    item = pg.TextItem(text, color=color("muted"), anchor=(0.5, 0.5))
    item.setPos(0.5, 0.5)
    plot.addItem(item, ignoreBounds=True)
    return item


def _limit_line(
    plot: pg.PlotWidget, angle: float, colour: str, label: str, position: float
) -> pg.InfiniteLine:
    """A dashed, labelled line (hidden until a limit is set) across ``plot``: horizontal
    (``angle`` 0) or vertical (90); ``position`` places the label along it."""
    line = pg.InfiniteLine(
        angle=angle,
        movable=False,
        pen=pg.mkPen(color(colour), style=Qt.PenStyle.DashLine),
        label=label,
        labelOpts={"color": color(colour), "position": position},
    )
    line.hide()
    plot.addItem(line)
    return line


class SqnrChart(QWidget):
    """One bar per analysed tensor, coloured red (bad) to green (good)."""

    tensor_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.names: list[str] = []
        self.values = np.zeros(0)
        self.caption = QLabel("Run Analyse to measure per-layer SQNR", self)
        self.caption.setObjectName("quantChartCaption")
        self.plot = themed_plot(self, x_grid=False)
        self.plot.setLabel("left", "SQNR", units="dB", color=PLOT_FG)
        self.plot.setLabel("bottom", "tensor (graph order)", color=PLOT_FG)
        self.plot.setMouseEnabled(x=True, y=False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=color("accent"), pen=None)
        self.plot.addItem(self.bars)
        self.marker = pg.BarGraphItem(
            x=[],
            height=[],
            width=0.8,
            brush=pg.mkBrush(0, 0, 0, 0),
            pen=pg.mkPen(color("accent"), width=2),
        )
        self.plot.addItem(self.marker)
        self.placeholder = _placeholder(self.plot, "No SQNR yet: run Analyse")
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 1)

    def set_values(
        self, names: Sequence[str], values: Sequence[float], caption: str = "", stale: bool = False
    ) -> None:
        """Bars for ``values``; ``stale`` greys them (the plan changed since they were measured)."""
        self.names = list(names)
        self.values = np.asarray(values, dtype=np.float64)
        x = np.arange(len(self.names))
        if stale:
            brushes = [pg.mkBrush(color("border")) for _ in self.values]
        else:
            brushes = sqnr_brushes(self.values)
        # (an explicit empty ``pens`` list trips pyqtgraph 0.14; one shared pen is used instead)
        self.bars.setOpts(
            x=x, height=self.values, width=0.8, brushes=brushes or None, pen=pg.mkPen(None)
        )
        self.marker.setOpts(x=[], height=[])
        self.placeholder.setVisible(not self.names)
        if self.names:
            worst = int(np.argmin(self.values))
            self.caption.setText(
                caption
                or f"{len(self.names)} tensors; median {np.median(self.values):.1f} dB; "
                f"worst {self.values[worst]:.1f} dB at {self.names[worst]}"
            )
        else:
            self.caption.setText(caption or "Run Analyse to measure per-layer SQNR")
        self.plot.enableAutoRange()

    def highlight(self, name: str) -> None:
        if name in self.names:
            i = self.names.index(name)
            self.marker.setOpts(x=[i], height=[self.values[i]], width=0.8)
        else:
            self.marker.setOpts(x=[], height=[])

    def _bar_at(self, scene_pos) -> int | None:
        pos = self.plot.plotItem.vb.mapSceneToView(scene_pos)
        i = int(round(pos.x()))
        return i if 0 <= i < len(self.names) else None

    def _hover(self, scene_pos) -> None:
        i = self._bar_at(scene_pos) if self.names else None
        text = "" if i is None else f"{self.names[i]}\n{self.values[i]:.1f} dB"
        self.plot.setToolTip(text)

    def _clicked(self, event) -> None:
        if not self.names or event.button() != Qt.MouseButton.LeftButton:
            return
        i = self._bar_at(event.scenePos())
        if i is not None:
            self.tensor_clicked.emit(self.names[i])


class MixCurve(QWidget):
    """Model SQNR against the target device's estimated ms (or the number of tensors raised to
    16 bits); Pareto points (no other point has more SQNR for fewer estimated ms) are ringed.
    Points are clickable."""

    point_clicked = Signal(int)

    _budget: float | None = None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel(
            "Run Auto-mix to see how output SQNR grows, per estimated millisecond on the target "
            "device, as layers get 16 bits or a technique",
            self,
        )
        self.caption.setObjectName("quantChartCaption")
        self.caption.setWordWrap(True)
        self.x_axis = QComboBox(self)
        self.x_axis.addItem("x: estimated ms", "ms")
        self.x_axis.addItem("x: tensors at 16 bits", "count")
        self.x_axis.setToolTip("What the horizontal axis shows")
        self.x_axis.currentIndexChanged.connect(lambda _i: self._replot())
        self.plot = themed_plot(self, x_grid=False)
        self.plot.setLabel("left", "output SQNR", units="dB", color=PLOT_FG)
        self.plot.setLabel("bottom", "tensors at 16 bits", color=PLOT_FG)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)  # ms stay ms, not "x0.001"
        self.curve = pg.PlotDataItem(
            pen=pg.mkPen(color("accent"), width=2),
            symbol="o",
            symbolSize=9,
            symbolBrush=pg.mkBrush(color("accent")),
            symbolPen=pg.mkPen(color("base")),
        )
        self.curve.sigPointsClicked.connect(self._points_clicked)
        self.plot.addItem(self.curve)
        self.pareto_item = pg.ScatterPlotItem(
            size=13,
            symbol="o",
            brush=pg.mkBrush(0, 0, 0, 0),
            pen=pg.mkPen(color("warning"), width=2),
        )
        self.plot.addItem(self.pareto_item)
        self.target = _limit_line(self.plot, 0, "warning", "target", 0.08)  # the SQNR target
        self.budget = _limit_line(self.plot, 90, "error", "budget", 0.92)  # the latency budget
        self.chosen = pg.ScatterPlotItem(
            size=15, brush=pg.mkBrush(0, 0, 0, 0), pen=pg.mkPen(color("ok"), width=2)
        )
        self.plot.addItem(self.chosen)
        self.placeholder = _placeholder(self.plot, "No configurations yet: run Auto-mix")
        # HTP cycles of each configuration, when the search measured them: a right-hand axis
        item = self.plot.plotItem
        self.cycles_vb = pg.ViewBox()
        item.scene().addItem(self.cycles_vb)
        item.getAxis("right").linkToView(self.cycles_vb)
        item.getAxis("right").setTextPen(PLOT_FG)
        item.getAxis("right").setPen(color("border"))
        self.cycles_vb.setXLink(item)
        item.vb.sigResized.connect(lambda: self.cycles_vb.setGeometry(item.vb.sceneBoundingRect()))
        self.cycles_curve = pg.PlotDataItem(
            pen=pg.mkPen(color("ok"), width=1, style=Qt.PenStyle.DashLine),
            symbol="s",
            symbolSize=6,
            symbolBrush=pg.mkBrush(color("ok")),
        )
        self.cycles_vb.addItem(self.cycles_curve)
        top = QHBoxLayout()
        top.addWidget(self.caption, 1)
        top.addWidget(self.x_axis)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.counts: list[float] = []
        self.estimated: list[float | None] = []
        self.cycles: list[float | None] = []
        self.pareto: list[int] = []
        self.kept: list[bool] = []
        self.estimated_for = ""
        self._chosen: int | None = None

    def set_curve(
        self,
        counts: Sequence[float],
        sqnr: Sequence[float],
        target: float | None = None,
        caption: str = "",
        chosen: int | None = None,
        cycles: Sequence[float | None] | None = None,
        estimated_ms: Sequence[float | None] | None = None,
        pareto: Sequence[int] | None = None,
        estimated_for: str = "",
        budget_ms: float | None = None,
        kept: Sequence[bool] | None = None,
    ) -> None:
        """The search's points; ``cycles`` (one per point, None where unmeasured) adds the
        right-hand HTP cycles axis, shown only when at least one point has a figure;
        ``estimated_ms`` (the target device's estimate per point) becomes the x axis when every
        point has one, with the ``pareto`` points (indices) ringed and ``budget_ms`` drawn;
        points the search undid (``kept`` False) are hollow."""
        self.counts = [float(c) for c in counts]
        self.ys = [float(s) for s in sqnr]
        self.cycles = list(cycles or [])
        self.estimated = list(estimated_ms or [])
        self.pareto = list(pareto or [])
        self.estimated_for = estimated_for
        self.kept = list(kept) if kept is not None else [True] * len(self.ys)
        if target is None:
            self.target.hide()
        else:
            self.target.setValue(target)
            self.target.label.setFormat(f"target {target:.1f} dB")
            self.target.show()
        self._budget = budget_ms
        self._chosen = chosen
        if caption:
            self.caption.setText(caption)
        self._replot()

    @property
    def by_ms(self) -> bool:
        """True when the x axis shows estimated ms (every point has an estimate)."""
        have = bool(self.estimated) and all(e is not None for e in self.estimated)
        self.x_axis.setEnabled(have)
        return have and self.x_axis.currentData() == "ms"

    def _replot(self) -> None:
        by_ms = self.by_ms
        self.xs = [float(e) for e in self.estimated] if by_ms else list(self.counts)  # type: ignore[arg-type]
        fill, hollow = pg.mkBrush(color("accent")), pg.mkBrush(PLOT_BG)
        brushes = (
            [fill if k else hollow for k in self.kept] if len(self.kept) == len(self.ys) else None
        )
        outline = pg.mkPen(color("accent"), width=1.5)
        self.curve.setData(self.xs, self.ys, symbolBrush=brushes or fill, symbolPen=outline)
        if by_ms:
            where = f" on {self.estimated_for}" if self.estimated_for else ""
            self.plot.setLabel("bottom", f"estimated ms{where} (device estimate)", color=PLOT_FG)
            pts = [(self.xs[i], self.ys[i]) for i in self.pareto if 0 <= i < len(self.xs)]
            self.pareto_item.setData([p[0] for p in pts], [p[1] for p in pts])
        else:
            self.plot.setLabel("bottom", "tensors at 16 bits", color=PLOT_FG)
            self.pareto_item.setData([], [])
        if by_ms and self._budget is not None:
            self.budget.setValue(self._budget)
            self.budget.label.setFormat(f"budget {self._budget:.3g} ms")
            self.budget.show()
        else:
            self.budget.hide()
        measured = [(x, c) for x, c in zip(self.xs, self.cycles, strict=False) if c is not None]
        item = self.plot.plotItem
        if measured:
            self.cycles_curve.setData([m[0] for m in measured], [m[1] for m in measured])
            item.showAxis("right")
            item.setLabel("right", "HTP cycles", units="cycles", color=color("ok"))
            # from zero: a 10 % difference must not fill the axis (the simulator's counts
            # vary by about that with host load)
            top = max(m[1] for m in measured)
            self.cycles_vb.setYRange(0.0, top * 1.1, padding=0)
        else:
            self.cycles_curve.setData([], [])
            item.hideAxis("right")
        self.placeholder.setVisible(not self.xs)
        self.mark(self._chosen)
        self.plot.enableAutoRange()

    def mark(self, index: int | None) -> None:
        self._chosen = index
        if index is None or not 0 <= index < len(self.xs):
            self.chosen.setData([], [])
        else:
            self.chosen.setData([self.xs[index]], [self.ys[index]])

    def _points_clicked(self, _item, points, _event=None) -> None:
        if len(points):
            self.point_clicked.emit(int(points[0].index()))
