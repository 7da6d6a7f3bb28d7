"""Histogram of one tensor's calibration values, with the encoding's range as a draggable region.

The plot items are created once and updated in place (pyqtgraph's ``setData``), so clicking
through hundreds of tensors does not churn the scene. Dragging the region asks for a new range
(``range_edited``); the workspace turns it into an undoable command, and the region then snaps to
the range the grid really represents (zero always on the grid), which is what the user must see.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from studio.core.encodings import Encoding
from studio.ui.quant.style import PLOT_FG, color, themed_plot

MAX_GRID_LINES = 64


class HistogramView(QWidget):
    """Counts of one tensor, the encoding's [min, max] region and the observed range."""

    range_edited = Signal(str, float, float)  # tensor, new min, new max

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tensor = ""
        self._counts = np.zeros(0)
        self._edges = np.zeros(0)
        self._setting = False

        self.title = QLabel("Select a tensor to see its histogram", self)
        self.title.setObjectName("quantHistTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_box = QCheckBox("log counts", self)
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(self._redraw_counts)
        self.info = QLabel("", self)
        self.info.setObjectName("quantHistInfo")
        self.info.setWordWrap(True)

        self.plot = themed_plot(self)
        self.plot.setLabel("bottom", "value", color=PLOT_FG)
        self.plot.setLabel("left", "log10(1 + count)", color=PLOT_FG)
        self.curve = pg.PlotDataItem(
            stepMode="center",
            fillLevel=0,
            brush=pg.mkBrush(76, 155, 255, 90),
            pen=pg.mkPen(color("accent"), width=1),
        )
        self.plot.addItem(self.curve)
        self.grid_lines = pg.PlotDataItem(pen=pg.mkPen(255, 255, 255, 40, width=1), connect="pairs")
        self.plot.addItem(self.grid_lines)
        self.observed = [
            pg.InfiniteLine(
                angle=90, movable=False, pen=pg.mkPen(color("muted"), style=Qt.PenStyle.DashLine)
            )
            for _ in range(2)
        ]
        for line in self.observed:
            self.plot.addItem(line)
            line.hide()
        self.region = pg.LinearRegionItem(
            values=(0, 1),
            brush=pg.mkBrush(229, 181, 103, 22),
            hoverBrush=pg.mkBrush(229, 181, 103, 45),
            pen=pg.mkPen(color("warning"), width=2),
            swapMode="block",
        )
        self.region.setZValue(10)
        self.region.hide()
        self.region.sigRegionChangeFinished.connect(self._region_moved)
        self.plot.addItem(self.region)

        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.log_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(head)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.info)

    # ------------------------------------------------------------------ public
    def show_tensor(
        self,
        tensor: str,
        counts: np.ndarray | None,
        edges: np.ndarray | None,
        encoding: Encoding | None,
        observed: tuple[float, float] | None = None,
    ) -> None:
        """Show ``tensor``; ``counts``/``edges`` None means no calibration data for it."""
        self.tensor = tensor
        self.title.setText(tensor or "Select a tensor to see its histogram")
        if counts is None or edges is None or len(counts) == 0:
            self._counts, self._edges = np.zeros(0), np.zeros(0)
            self.curve.setData([], [])
        else:
            self._counts = np.asarray(counts, dtype=np.float64)
            self._edges = np.asarray(edges, dtype=np.float64)
            self._redraw_counts()
        for line, value in zip(self.observed, observed or (None, None), strict=False):
            if value is None:
                line.hide()
            else:
                line.setValue(value)
                line.show()
        self.set_encoding(encoding)
        self.plot.enableAutoRange()

    def set_encoding(self, encoding: Encoding | None) -> None:
        """Move the region to the encoding's represented range (no signal)."""
        if encoding is None or encoding.is_float or not encoding.min:
            self.region.hide()
            self.grid_lines.setData([], [])
            if encoding is not None and encoding.is_float:
                self.info.setText(f"float{encoding.bitwidth} fallback: not quantised")
            else:
                self.info.setText("no encoding (calibrate or import encodings)")
            return
        lo, hi = min(encoding.min), max(encoding.max)
        self._setting = True
        try:
            self.region.setRegion((lo, hi))
        finally:
            self._setting = False
        self.region.setMovable(encoding.axis is None)
        self.region.show()
        self._draw_grid(encoding)
        if encoding.axis is None:
            self.info.setText(
                f"{encoding.bitwidth}-bit {'symmetric' if encoding.symmetric else 'asymmetric'}"
                f"  range [{lo:.6g}, {hi:.6g}]  scale {encoding.scale[0]:.6g}"
                f"  offset {encoding.offset[0]}  - drag the edges to change the range"
            )
        else:
            self.info.setText(
                f"{encoding.bitwidth}-bit per-channel ({encoding.channels} channels, axis "
                f"{encoding.axis}): union of channel ranges [{lo:.6g}, {hi:.6g}] (not draggable)"
            )

    def region_values(self) -> tuple[float, float]:
        lo, hi = self.region.getRegion()
        return float(lo), float(hi)

    # ------------------------------------------------------------------ internals
    def _redraw_counts(self) -> None:
        if self._counts.size == 0:
            return
        y = np.log10(1.0 + self._counts) if self.log_box.isChecked() else self._counts
        self.plot.setLabel(
            "left", "log10(1 + count)" if self.log_box.isChecked() else "count", color=PLOT_FG
        )
        self.curve.setData(self._edges, y)

    def _draw_grid(self, enc: Encoding) -> None:
        """Faint lines at each code when there are few enough to see (4-bit: 16)."""
        levels = enc.qmax + 1
        if enc.axis is not None or levels > MAX_GRID_LINES or self._counts.size == 0:
            self.grid_lines.setData([], [])
            return
        xs = enc.scale[0] * (np.arange(levels) + enc.offset[0])
        top = float(self.curve.yData.max()) if self.curve.yData is not None else 1.0
        x = np.repeat(xs, 2)
        y = np.tile([0.0, top], levels)
        self.grid_lines.setData(x, y)

    def _region_moved(self) -> None:
        if self._setting or not self.tensor:
            return
        lo, hi = self.region_values()
        self.range_edited.emit(self.tensor, lo, hi)
