"""The one way to run work off the UI thread: ``Background`` runs ``fn(ctx)`` and reports it with
the job protocol's events, as Qt signals on the UI thread.

Why one: every panel needs the same plumbing (a thread, progress, log, cancel, errors that reach
the user instead of killing Qt, late results of a superseded task dropped). The signals are named
after the worker protocol's events (superqt's ``thread_worker`` shape), the same names
:class:`~studio.ui.jobs.manager.JobHandle` uses:

- ``started(title)``
- ``progress(fraction, stage, text)``
- ``log(line)``
- ``data(payload)``: a partial result for live views (``JobContext.data``)
- ``result(value)``
- ``error(title, message, details)``
- ``finished(state)``: always last; ``"done"``, ``"failed"`` or ``"cancelled"``

Where the work runs: with a JobManager (``jobs`` returns ``ctx.jobs``) the task is submitted there,
in ``lane``, so the Jobs dock lists it with its log and Cancel; without one (a workspace shown on
its own, tests) a private one-thread pool runs it. :meth:`Background.start` runs a callable in this
process; :meth:`Background.submit` runs a core ``@job`` in the worker process (native crashes stay
there).

Latest wins (``latest_only=True``, Orange3's rule): a new task cancels the running one, and
:meth:`cancel` ends the task at once with ``finished("cancelled")``; events that arrive later from
a task that is no longer current are dropped. With ``latest_only=False`` tasks queue and every one
reports, through its own ``on_result``/``on_error`` callbacks (caches filled in the background).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from studio.core.errors import JobCancelledError, StudioError
from studio.core.jobs.protocol import CancelToken, JobContext

log = logging.getLogger(__name__)

DONE, FAILED, CANCELLED = "done", "failed", "cancelled"

TaskFn = Callable[[JobContext], Any]
ResultFn = Callable[[Any], None]
ErrorFn = Callable[[str, str], None]  # message, details


class _Relay(QObject):
    """Created on the UI thread; the pool thread emits through it, so Qt queues the events."""

    progress = Signal(float, str, str)
    log = Signal(str)
    data = Signal(object)
    outcome = Signal(str, object, str, str)  # state, value, message, details


@dataclass(eq=False)
class _Task:
    title: str
    token: CancelToken
    relay: _Relay
    on_result: ResultFn | None
    on_error: ErrorFn | None
    handle: Any = None  # the JobManager's JobHandle, when it runs there


def describe(exc: BaseException) -> tuple[str, str]:
    """(message, details) a user sees for an exception a task raised."""
    if isinstance(exc, StudioError):
        return str(exc), exc.detail or ""
    return f"{type(exc).__name__}: {exc}", traceback.format_exc()


class _Runnable(QRunnable):
    def __init__(self, body: TaskFn, task: _Task) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.body = body
        self.task = task

    def run(self) -> None:  # on a pool thread
        relay, token = self.task.relay, self.task.token
        ctx = JobContext(token=token)
        ctx.on_progress = lambda f, t: _emit(relay.progress, float(f), ctx.stage, str(t))
        ctx.on_log = lambda line: _emit(relay.log, str(line))
        ctx.on_data = lambda payload: _emit(relay.data, payload)
        try:
            if token.cancelled:
                raise JobCancelledError("cancelled before it started")
            value = self.body(ctx)
        except JobCancelledError:
            _emit(relay.outcome, CANCELLED, None, "", "")
        except Exception as exc:  # noqa: BLE001 - a failing task must reach the user, not kill Qt
            if not isinstance(exc, StudioError):
                log.exception("%s failed", self.task.title)
            _emit(relay.outcome, FAILED, None, *describe(exc))
        else:
            _emit(relay.outcome, CANCELLED if token.cancelled else DONE, value, "", "")


class Background(QObject):
    """Runs tasks off the UI thread for one owner; its signals arrive on the UI thread."""

    started = Signal(str)  # title
    progress = Signal(float, str, str)  # fraction 0..1, stage, text
    log = Signal(str)
    data = Signal(object)
    result = Signal(object)
    error = Signal(str, str, str)  # title, message, details
    finished = Signal(str)  # done | failed | cancelled

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        jobs: Callable[[], Any] | None = None,
        lane: str | None = None,
        latest_only: bool = True,
    ) -> None:
        super().__init__(parent)
        self.jobs = jobs or (lambda: None)  # returns the JobManager, if any, now
        self.lane = lane
        self.latest_only = latest_only
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.title = ""
        self._tasks: list[_Task] = []  # running or queued, oldest first

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    @property
    def handle(self) -> Any:
        """The JobManager's handle of the current task (None when it runs on the private pool)."""
        return self._tasks[-1].handle if self._tasks else None

    def start(
        self,
        title: str,
        fn: TaskFn,
        *,
        on_result: ResultFn | None = None,
        on_error: ErrorFn | None = None,
    ) -> None:
        """Run ``fn(ctx)`` in this process. ``on_result(value)`` runs on the UI thread before
        ``result``; a StudioError it raises turns the outcome into ``error``."""
        task = self._begin(title, on_result, on_error)
        manager = self.jobs()
        if manager is None:
            self.pool.start(_Runnable(fn, task))
            return
        handle = manager.submit_callable(
            fn, title=title, lane=self.lane, supersede=self.latest_only
        )
        self._follow(task, handle)

    def submit(
        self,
        title: str,
        kind: str,
        request: dict[str, Any],
        *,
        on_result: ResultFn | None = None,
        on_error: ErrorFn | None = None,
    ) -> None:
        """Run the core ``@job`` ``kind`` (``job_kind(fn)``) in a worker process."""
        manager = self.jobs()
        if manager is None:

            def body(ctx: JobContext) -> Any:
                from studio.core.jobs.client import run_in_worker

                return run_in_worker(kind, request, ctx)

            self.start(title, body, on_result=on_result, on_error=on_error)
            return
        task = self._begin(title, on_result, on_error)
        handle = manager.submit(kind, request, title=title, lane=self.lane)
        self._follow(task, handle)

    def cancel(self) -> None:
        """Stop the current task (all of them with ``latest_only=False``): ``finished("cancelled")`` now."""
        for task in list(self._tasks if not self.latest_only else self._tasks[-1:]):
            task.token.cancel()
            if task.handle is not None:
                task.handle.cancel()
            self._end(task, CANCELLED, None, "", "")

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the private pool is idle (tests, shutdown)."""
        return self.pool.waitForDone(msecs)

    # ----- plumbing -------------------------------------------------------------------------
    def _begin(self, title: str, on_result: ResultFn | None, on_error: ErrorFn | None) -> _Task:
        if self.latest_only:
            self.cancel()
        task = _Task(title, CancelToken(), _Relay(), on_result, on_error)
        task.relay.progress.connect(
            lambda f, s, t: self._current(task) and self.progress.emit(f, s, t)
        )
        task.relay.log.connect(lambda line: self._current(task) and self.log.emit(line))
        task.relay.data.connect(lambda payload: self._current(task) and self.data.emit(payload))
        task.relay.outcome.connect(lambda state, v, m, d: self._end(task, state, v, m, d))
        self._tasks.append(task)
        self.title = title
        self.started.emit(title)
        return task

    def _follow(self, task: _Task, handle: Any) -> None:
        """Mirror a JobHandle's signals into the task's relay (already on the UI thread)."""
        task.handle = handle
        task.token = handle.token
        relay = task.relay
        handle.progress.connect(relay.progress)
        handle.log.connect(relay.log)
        handle.data.connect(relay.data)
        handle.result.connect(lambda value: relay.outcome.emit(DONE, value, "", ""))
        handle.error.connect(
            lambda _title, message: relay.outcome.emit(FAILED, None, message, handle.error_detail)
        )
        handle.cancelled.connect(lambda: relay.outcome.emit(CANCELLED, None, "", ""))

    def _current(self, task: _Task) -> bool:
        if not shiboken6.isValid(self):
            return False  # the owner was closed while the task ran: nothing left to show it in
        if self.latest_only:
            return bool(self._tasks) and self._tasks[-1] is task
        return task in self._tasks

    def _end(self, task: _Task, state: str, value: Any, message: str, details: str) -> None:
        if not self._current(task):
            return  # a stale task (cancelled or replaced): its late outcome is dropped
        self._tasks.remove(task)
        if state == DONE and task.on_result is not None:
            try:
                task.on_result(value)
            except StudioError as exc:
                state, (message, details) = FAILED, describe(exc)
        if state == DONE:
            self.result.emit(value)
        elif state == FAILED:
            log.info("%s failed: %s", task.title, message)
            if task.on_error is not None:
                task.on_error(message, details)
            self.error.emit(task.title, message, details)
        self.finished.emit(state)


def _emit(signal: Any, *args: Any) -> None:
    try:
        signal.emit(*args)
    except RuntimeError:  # the owner (and its relay) went away while the task ran
        pass
