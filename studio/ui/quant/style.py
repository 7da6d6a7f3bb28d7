"""Colours for the quantization plots and table, taken from the studio theme.

The plots paint themselves (pyqtgraph ignores the QSS), so they read the theme's colour table
here; the SQNR colour scale is the same red-yellow-green the graph overlay uses ("RdYlGn").
"""

from __future__ import annotations

import functools
from typing import Any

from PySide6.QtGui import QColor

try:  # the theme module belongs to the main window; fall back to its values if absent
    from studio.ui.widgets.theme import COLORS
except ImportError:  # pragma: no cover - theme ships with the ui package
    COLORS = {
        "window": "#1e2024",
        "base": "#17191c",
        "panel": "#25282d",
        "border": "#33373e",
        "text": "#d8dbe0",
        "muted": "#8b919a",
        "accent": "#4c9bff",
        "error": "#f07178",
        "warning": "#e5b567",
        "ok": "#7ec699",
    }

PLOT_BG = COLORS["base"]
PLOT_FG = COLORS["text"]

# SQNR (dB) below which a tensor is clearly broken / at which it is comfortably fine.
SQNR_BAD_DB = 10.0
SQNR_GOOD_DB = 40.0

_RDYLGN = [(0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80))]


def color(name: str) -> str:
    return COLORS.get(name, "#d8dbe0")


def themed_plot(parent: Any, *, x_grid: bool = True) -> Any:
    """A pyqtgraph plot in the theme's colours, without its context menu and auto-range button
    (the quantization charts and the sweeps' Pareto plot all look alike)."""
    import pyqtgraph as pg

    from studio.ui.widgets.plot_axis import fast_axes

    # grid lines filled, not stroked: translucent strokes are slow to paint (widgets/plot_axis)
    plot = pg.PlotWidget(parent, background=PLOT_BG, axisItems=fast_axes())
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.showGrid(x=x_grid, y=True, alpha=0.15)
    for axis in ("left", "bottom"):
        plot.getAxis(axis).setTextPen(PLOT_FG)
        plot.getAxis(axis).setPen(color("border"))
    return plot


def rdylgn(fraction: float) -> QColor:
    """Red (0) -> yellow (0.5) -> green (1), clamped."""
    f = min(1.0, max(0.0, float(fraction)))
    for (f0, c0), (f1, c1) in zip(_RDYLGN, _RDYLGN[1:], strict=False):
        if f <= f1:
            t = (f - f0) / (f1 - f0) if f1 > f0 else 0.0
            return QColor(*(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=False)))
    return QColor(*_RDYLGN[-1][1])


def sqnr_color(db: float) -> QColor:
    return rdylgn((db - SQNR_BAD_DB) / (SQNR_GOOD_DB - SQNR_BAD_DB))


SQNR_COLOR_STEPS = 64  # colours a chart tells apart; 0.5 dB apart over the 10-40 dB ramp


def sqnr_brushes(values: Any) -> list[Any]:
    """One brush per SQNR value (dB), from :data:`SQNR_COLOR_STEPS` shared brushes.

    Why: a 20,000-layer model's chart made 20,000 colours and brushes one by one on the UI
    thread (a quarter of a second); the ramp is quantised with numpy and each step made once."""
    import numpy as np

    fractions = (np.asarray(values, dtype=np.float64) - SQNR_BAD_DB) / (SQNR_GOOD_DB - SQNR_BAD_DB)
    fractions = np.nan_to_num(fractions, nan=0.0, posinf=1.0, neginf=0.0)
    steps = np.rint(np.clip(fractions, 0.0, 1.0) * (SQNR_COLOR_STEPS - 1)).astype(int)
    palette = _step_brushes()
    return [palette[i] for i in steps.tolist()]


@functools.cache
def _step_brushes() -> tuple[Any, ...]:
    import pyqtgraph as pg

    return tuple(pg.mkBrush(rdylgn(i / (SQNR_COLOR_STEPS - 1))) for i in range(SQNR_COLOR_STEPS))


KIND_COLORS = {"activation": "#4c9bff", "param": "#c792ea", "bias": "#8b919a"}
BITWIDTH_COLORS = {4: "#f07178", 8: "#d8dbe0", 16: "#7ec699", 32: "#8b919a"}
