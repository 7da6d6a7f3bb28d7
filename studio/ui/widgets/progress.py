"""Progress display that never repaints the window synchronously, and at a bounded rate.

``QProgressBar.setValue`` calls ``repaint()``: Qt then paints every dirty widget of the window at
once, inside the caller's turn. A progress message that arrives just after a tab switch or a
result so paid for the whole window's paint (measured: 200+ ms in one turn on the Profiling
dashboard). :func:`set_value` lets the bar repaint with the next ordinary update instead, and
:class:`Throttle` keeps a stream of progress messages to a few updates a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QProgressBar

MIN_INTERVAL_MS = 100  # progress shown at most ten times a second


def set_value(bar: QProgressBar, value: int) -> None:
    """``bar.setValue(value)`` with the repaint posted (``update``), not done on the spot."""
    if bar.value() == value:
        return
    bar.setUpdatesEnabled(False)
    try:
        bar.setValue(value)
    finally:
        bar.setUpdatesEnabled(True)  # schedules an ordinary update of the bar


class Throttle(QObject):
    """Calls ``show(*args)`` at most every ``interval_ms``, always with the latest arguments.

    The first call runs at once; calls within the interval only replace the pending arguments,
    which are shown when the interval has passed, so the last message is never lost.
    """

    def __init__(
        self, show: Callable[..., object], parent: QObject | None = None, interval_ms: int = 0
    ) -> None:
        super().__init__(parent)
        self._show = show
        self._interval = interval_ms or MIN_INTERVAL_MS
        self._pending: tuple | None = None
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    def __call__(self, *args: object) -> None:
        self._pending = args
        wait = self._interval - (time.monotonic() - self._last) * 1000
        if wait <= 0:
            self.flush()
        elif not self._timer.isActive():
            self._timer.start(int(wait) + 1)

    def flush(self) -> None:
        """Show the pending arguments now (a final state must not wait for the timer)."""
        self._timer.stop()
        if self._pending is None:
            return
        args, self._pending = self._pending, None
        self._last = time.monotonic()
        self._show(*args)

    def drop(self) -> None:
        """Forget a pending update (a newer, direct update replaces it)."""
        self._timer.stop()
        self._pending = None
