"""Work spread over event-loop turns, so that no single turn keeps the window from repainting.

Showing a finished job's result can take a few hundred milliseconds in one go (a model reset, four
plots to repaint, cards to lay out). Issue 15's goal is no UI-thread stall above 50 ms, so a
workspace hands such work to :class:`TurnSteps` as a list of small steps: each runs on its own
turn, after the events (paints, input, timers) that queued up behind the previous step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, QTimer, Signal

Step = Callable[[], object]


class TurnSteps(QObject):
    """Runs steps one per event-loop turn; a new :meth:`run` drops what is left of the last one.

    The timer has interval 0, which in Qt fires once the events already queued (an update
    request a step posted, a user's click) have been handled, so a step's repaint happens before
    the next step starts rather than piling up into one long paint.
    """

    done = Signal()  # the last step of the latest run() has run

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: deque[Step] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._next)

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def run(self, steps: Iterable[Step]) -> None:
        """Replace any pending steps by ``steps``; the first runs on the next turn."""
        self._queue = deque(steps)
        if self._queue:
            self._timer.start()
        else:
            self._timer.stop()
            self.done.emit()

    def insert_next(self, steps: Iterable[Step]) -> None:
        """Run ``steps`` right after the current one (a step that found more work to spread)."""
        self._queue.extendleft(reversed(list(steps)))
        if self._queue and not self._timer.isActive():
            self._timer.start()

    def cancel(self) -> None:
        """Drop the pending steps (their result is no longer wanted); ``done`` is not emitted."""
        self._queue.clear()
        self._timer.stop()

    def finish(self) -> None:
        """Run every pending step now (a caller needs the finished state at once)."""
        if not self._queue:
            return
        self._timer.stop()
        while self._queue:
            self._queue.popleft()()
        self.done.emit()

    def _next(self) -> None:
        if not self._queue:
            return
        step = self._queue.popleft()
        try:
            step()
        finally:
            if self._queue:
                self._timer.start()
            else:
                self.done.emit()
