"""The pieces that keep result handling from freezing the window (issue 15: no stall > 50 ms).

TurnSteps spreads work over event-loop turns, Throttle bounds progress updates, set_value keeps
QProgressBar from painting the whole window synchronously, and FastGridAxis fills the same
grid pixels pyqtgraph strokes, without the raster engine's slow translucent-line path.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QProgressBar

from studio.ui.widgets import progress
from studio.ui.widgets.plot_axis import FastGridAxis, fast_axes, line_rect
from studio.ui.widgets.turns import TurnSteps


def test_steps_run_one_per_turn_with_queued_events_in_between(qtbot):
    steps = TurnSteps()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        QTimer.singleShot(0, lambda: order.append("queued by first"))

    with qtbot.waitSignal(steps.done, timeout=2000):
        steps.run([first, lambda: order.append("second"), lambda: order.append("third")])
        assert order == [] and steps.busy  # nothing runs inside the caller's turn
    assert order == ["first", "queued by first", "second", "third"] and not steps.busy


def test_a_new_run_drops_the_old_steps_and_finish_runs_the_rest_now(qtbot):
    steps = TurnSteps()
    order: list[str] = []
    done: list[bool] = []
    steps.done.connect(lambda: done.append(True))
    steps.run([lambda: order.append("old 1"), lambda: order.append("old 2")])
    steps.run([lambda: order.append("new 1"), lambda: order.append("new 2")])
    steps.finish()
    assert order == ["new 1", "new 2"] and done == [True]
    qtbot.wait(20)
    assert order == ["new 1", "new 2"] and done == [True]  # nothing left to run later
    steps.run([lambda: order.append("cancelled")])
    steps.cancel()
    qtbot.wait(20)
    assert order == ["new 1", "new 2"] and done == [True]


def test_throttle_shows_the_first_and_the_latest_message(qtbot):
    shown: list[tuple] = []
    throttle = progress.Throttle(lambda *a: shown.append(a), interval_ms=80)
    throttle(0.1, "a")
    throttle(0.2, "b")
    throttle(0.3, "c")
    assert shown == [(0.1, "a")]  # the first at once, the rest wait for the interval
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=2000)
    assert shown[-1] == (0.3, "c")  # only the latest of the waiting ones
    throttle(0.9, "late")
    throttle.drop()  # a final state was shown directly: the pending message is dropped
    qtbot.wait(150)
    assert shown == [(0.1, "a"), (0.3, "c")]


class _CountingBar(QProgressBar):
    paints = 0

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        type(self).paints += 1
        super().paintEvent(event)


def test_progress_value_repaints_later_not_inside_the_call(qtbot):
    bar = _CountingBar()
    bar.setRange(0, 100)
    qtbot.addWidget(bar)
    bar.show()
    qtbot.waitExposed(bar)
    qtbot.wait(20)
    before = _CountingBar.paints
    bar.setValue(40)
    assert _CountingBar.paints > before  # Qt's own setValue paints synchronously
    before = _CountingBar.paints
    progress.set_value(bar, 70)
    assert bar.value() == 70 and _CountingBar.paints == before
    qtbot.waitUntil(lambda: _CountingBar.paints > before, timeout=2000)


def _plot(qtbot, fast: bool) -> pg.PlotWidget:
    kwargs = {"axisItems": fast_axes()} if fast else {}
    plot = pg.PlotWidget(background="#17191c", **kwargs)
    plot.hideButtons()
    plot.showGrid(x=True, y=True, alpha=0.3)
    for side in ("left", "bottom"):
        plot.getAxis(side).setPen("#d8dbe0")
    plot.setXRange(0, 10, padding=0)
    plot.setYRange(0, 5, padding=0)
    plot.resize(400, 240)
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    qtbot.wait(30)
    return plot


def _pixels(plot: pg.PlotWidget) -> np.ndarray:
    image = plot.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), -1)
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4)[:, :, :3]


def test_the_filled_grid_paints_what_the_stroked_grid_paints(qtbot):
    stroked, filled = _plot(qtbot, False), _plot(qtbot, True)
    assert isinstance(filled.getAxis("left"), FastGridAxis)

    def settled() -> bool:  # an axis fits its width to its labels after its first paint
        stroked.grab(), filled.grab()
        qtbot.wait(20)
        return all(
            stroked.getAxis(side).geometry() == filled.getAxis(side).geometry()
            for side in ("left", "bottom")
        )

    qtbot.waitUntil(settled, timeout=5000)
    a, b = _pixels(stroked).astype(int), _pixels(filled).astype(int)
    assert a.shape == b.shape
    lit = np.abs(a - a[5, 200]).max(axis=2) > 4  # grid pixels: not the plain background
    assert lit.sum() > 2000, "the stroked grid drew (almost) nothing: nothing to compare"
    differ = np.abs(a - b).max(axis=2) > 2
    assert differ.sum() <= 0.002 * differ.size, f"{differ.sum()} pixels differ"


def test_line_rect_covers_the_pixels_of_an_aliased_line():
    assert line_rect(QPointF(10.2, 5.7), QPointF(3.0, 5.7)) == QRectF(3, 5, 8, 1)
    assert line_rect(QPointF(4.4, 0.0), QPointF(4.4, 9.0)) == QRectF(4, 0, 1, 10)
    assert line_rect(QPointF(0, 0), QPointF(3, 4)) is None  # slanted: stroked as before
