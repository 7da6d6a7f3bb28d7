"""Run a core call off the UI thread: through the studio's JobManager when there is one.

With ``ctx.jobs`` (the main window's JobManager) the call appears in the Jobs dock with progress
and cancel; without it (a workspace shown on its own, tests) a QThreadPool runnable drives it.
Either way the workspace sees ``progress``, ``done`` and ``failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from studio.core.errors import JobCancelledError, StudioError
from studio.core.jobs.protocol import CancelToken, JobContext

log = logging.getLogger(__name__)


class BackgroundCall(QObject):
    progress = Signal(float, str)
    done = Signal(object)
    failed = Signal(str, str)  # title, message

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.token: CancelToken | None = None
        self.handle: Any = None

    def start(self, jobs: Any, title: str, fn: Callable[[JobContext], Any]) -> None:
        if jobs is not None:
            self.handle = jobs.submit_callable(fn, title=title, lane="backends", supersede=True)
            self.handle.progress.connect(lambda f, _stage, text: self.progress.emit(f, text))
            self.handle.result.connect(self.done.emit)
            self.handle.error.connect(self.failed.emit)
            return
        self.token = CancelToken()
        QThreadPool.globalInstance().start(_Runnable(self, title, fn, self.token))

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        if self.token is not None:
            self.token.cancel()


class _Runnable(QRunnable):
    def __init__(self, call: BackgroundCall, title: str, fn: Callable, token: CancelToken) -> None:
        super().__init__()
        self.call, self.title, self.fn, self.token = call, title, fn, token

    def run(self) -> None:
        ctx = JobContext(on_progress=self.call.progress.emit, token=self.token)
        try:
            result = self.fn(ctx)
        except JobCancelledError:
            self.call.failed.emit(self.title, "cancelled")
        except StudioError as exc:
            self.call.failed.emit(self.title, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must reach the user, not kill the thread
            log.exception("%s failed", self.title)
            self.call.failed.emit(self.title, f"{type(exc).__name__}: {exc}")
        else:
            self.call.done.emit(result)
