"""Run one core job off the UI thread, with progress, log, cancel and a result signal.

Why here and not in each button handler: the workspace has one running task at a time (Orange3's
rule: a new request cancels the stale one), and every long action (calibrate, analyse, auto-mix,
build) needs the same progress/cancel plumbing. When the main window provides a JobManager
(``ctx.jobs``, studio.ui.jobs.manager) the job is submitted there, in the "quant" lane, so the Jobs dock
lists it with its log and Cancel; without one (tests, a bare window) a private QThreadPool runs it.
Either way the workspace sees the same signals.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from studio.core.errors import JobCancelledError, StudioError
from studio.core.jobs.protocol import CancelToken, JobContext

log = logging.getLogger(__name__)

JobCallable = Callable[[JobContext], Any]


class _Signals(QObject):
    progress = Signal(float, str)
    log = Signal(str)
    done = Signal(object)
    failed = Signal(str, str)  # message, details
    cancelled = Signal()


class _Task(QRunnable):
    def __init__(self, fn: JobCallable, token: CancelToken, signals: _Signals) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.fn = fn
        self.token = token
        self.signals = signals

    def run(self) -> None:  # runs on a pool thread
        ctx = JobContext(
            on_progress=self.signals.progress.emit, on_log=self.signals.log.emit, token=self.token
        )
        try:
            result = self.fn(ctx)
        except JobCancelledError:
            self.signals.cancelled.emit()
        except StudioError as exc:
            self.signals.failed.emit(str(exc), exc.detail or "")
        except Exception as exc:  # noqa: BLE001 - a bug in a job must reach the user, not kill Qt
            self.signals.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            if self.token.cancelled:
                self.signals.cancelled.emit()
            else:
                self.signals.done.emit(result)


class JobRunner(QObject):
    """One job at a time for a panel. Signals arrive on the UI thread."""

    started = Signal(str)  # title
    progress = Signal(float, str)
    log_line = Signal(str)
    finished = Signal(str, object)  # title, result
    failed = Signal(str, str, str)  # title, message, details
    cancelled = Signal(str)
    busy_changed = Signal(bool)

    def __init__(
        self, parent: QObject | None = None, manager: Callable[[], Any] | None = None
    ) -> None:
        super().__init__(parent)
        self.manager = manager or (lambda: None)  # returns the JobManager, if any, now
        self.handle: Any = None  # the JobManager's JobHandle of the running job
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.title = ""
        self._token: CancelToken | None = None
        self._signals: _Signals | None = None
        self._on_done: Callable[[Any], None] | None = None

    @property
    def busy(self) -> bool:
        return self._token is not None

    def start(
        self, title: str, fn: JobCallable, on_done: Callable[[Any], None] | None = None
    ) -> None:
        """Run ``fn(job_ctx)`` on the pool; ``on_done(result)`` runs on the UI thread.

        A job already running is cancelled first: its late result is ignored.
        """
        self.cancel()
        token = CancelToken()
        signals = _Signals()
        signals.progress.connect(self.progress)
        signals.log.connect(self.log_line)
        signals.done.connect(lambda result, s=signals: self._finish(s, "done", result))
        signals.failed.connect(lambda m, d, s=signals: self._finish(s, "failed", (m, d)))
        signals.cancelled.connect(lambda s=signals: self._finish(s, "cancelled", None))
        self._token, self._signals, self._on_done, self.title = token, signals, on_done, title
        self.started.emit(title)
        self.busy_changed.emit(True)
        manager = self.manager()
        if manager is not None:
            handle = manager.submit_callable(fn, title=title, lane="quant", supersede=True)
            self._token = handle.token
            self.handle = handle
            handle.progress.connect(lambda f, _stage, text: signals.progress.emit(f, text))
            handle.log.connect(signals.log)
            handle.result.connect(signals.done)
            handle.error.connect(
                lambda _t, message, h=handle: signals.failed.emit(message, h.error_detail)
            )
            handle.cancelled.connect(signals.cancelled)
            return
        self.handle = None
        self.pool.start(_Task(fn, token, signals))

    def cancel(self) -> None:
        if self._token is not None:
            if self.handle is not None:
                self.handle.cancel()
            self._token.cancel()
            self._finish(self._signals, "cancelled", None)

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the pool is idle (tests, shutdown)."""
        return self.pool.waitForDone(msecs)

    def _finish(self, signals: _Signals | None, how: str, payload: Any) -> None:
        if signals is None or signals is not self._signals:
            return  # a stale job (already cancelled or replaced)
        on_done, title = self._on_done, self.title
        self._token = self._signals = self._on_done = self.handle = None
        self.busy_changed.emit(False)
        if how == "done":
            try:
                if on_done is not None:
                    on_done(payload)
            except StudioError as exc:
                self.failed.emit(title, str(exc), exc.detail or "")
                return
            self.finished.emit(title, payload)
        elif how == "failed":
            log.warning("%s failed: %s", title, payload[0])
            self.failed.emit(title, payload[0], payload[1])
        else:
            self.cancelled.emit(title)
