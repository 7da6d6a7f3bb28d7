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
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.ui.quant.style import PLOT_FG, color, sqnr_color, themed_plot


def _placeholder(plot: pg.PlotWidget, text: str) -> pg.TextItem:
    """A centred note in an empty plot (removed from view once data arrives)."""
    item = pg.TextItem(text, color=color("muted"), anchor=(0.5, 0.5))
    item.setPos(0.5, 0.5)
    plot.addItem(item, ignoreBounds=True)
    return item


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
            brushes = [pg.mkBrush(sqnr_color(v)) for v in self.values]
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
    """Model SQNR against the number of tensors raised to 16 bits; points are clickable."""

    point_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel(
            "Run Auto-mix to see how output SQNR grows as tensors move to 16 bits", self
        )
        self.caption.setObjectName("quantChartCaption")
        self.caption.setWordWrap(True)
        self.plot = themed_plot(self, x_grid=False)
        self.plot.setLabel("left", "output SQNR", units="dB", color=PLOT_FG)
        self.plot.setLabel("bottom", "tensors at 16 bits", color=PLOT_FG)
        self.curve = pg.PlotDataItem(
            pen=pg.mkPen(color("accent"), width=2),
            symbol="o",
            symbolSize=9,
            symbolBrush=pg.mkBrush(color("accent")),
            symbolPen=pg.mkPen(color("base")),
        )
        self.curve.sigPointsClicked.connect(self._points_clicked)
        self.plot.addItem(self.curve)
        self.target = pg.InfiniteLine(
            angle=0,
            movable=False,
            pen=pg.mkPen(color("warning"), style=Qt.PenStyle.DashLine),
            label="target",
            labelOpts={"color": color("warning"), "position": 0.08},
        )
        self.target.hide()
        self.plot.addItem(self.target)
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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 1)
        self.xs: list[float] = []
        self.ys: list[float] = []

    def set_curve(
        self,
        counts: Sequence[float],
        sqnr: Sequence[float],
        target: float | None = None,
        caption: str = "",
        chosen: int | None = None,
        cycles: Sequence[float | None] | None = None,
    ) -> None:
        """The search's points; ``cycles`` (one per point, None where unmeasured) adds the
        right-hand HTP cycles axis, shown only when at least one point has a figure."""
        self.xs, self.ys = [float(c) for c in counts], [float(s) for s in sqnr]
        self.curve.setData(self.xs, self.ys)
        measured = [(x, c) for x, c in zip(self.xs, cycles or [], strict=False) if c is not None]
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
        if target is None:
            self.target.hide()
        else:
            self.target.setValue(target)
            self.target.label.setFormat(f"target {target:.1f} dB")
            self.target.show()
        self.mark(chosen)
        if caption:
            self.caption.setText(caption)
        self.plot.enableAutoRange()

    def mark(self, index: int | None) -> None:
        if index is None or not 0 <= index < len(self.xs):
            self.chosen.setData([], [])
        else:
            self.chosen.setData([self.xs[index]], [self.ys[index]])

    def _points_clicked(self, _item, points, _event=None) -> None:
        if len(points):
            self.point_clicked.emit(int(points[0].index()))
