"""Qt bridge for core jobs: run them off the UI thread and re-emit their events as signals.

A job is either a core ``@job`` run in the worker process (``run_in_worker``: native crashes stay
there) or, for pure-Python work, a callable run in-process on a QThread. Either way the UI sees
one :class:`JobHandle` per job with a fixed set of signals (superqt's thread_worker shape):
``started``, ``progress(fraction, stage, text)``, ``log(line)``, ``data(dict)`` (partial
results for live views), ``result(dict)``,
``error(title, message)``, ``cancelled()``, ``finished(state)``. Signals are emitted from the job
thread and Qt queues them onto the UI thread. Progress is throttled (one update per 50 ms at
most, plus the final one) so a chatty job cannot flood the event loop.

Lanes (Orange3's rule of one running task per panel): jobs submitted with the same ``lane`` run one
after another; ``supersede=True`` cancels the lane's running and queued jobs first, so a new
request replaces a stale one.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from studio.core.errors import JobCancelledError, StudioError
from studio.core.jobs.protocol import CancelToken, JobContext

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL_STATES = (DONE, FAILED, CANCELLED)
PROGRESS_INTERVAL_S = 0.05
LOG_KEEP = 5000
_ids = itertools.count(1)


class JobHandle(QObject):
    """One job as the UI sees it: its state, last progress, log and outcome, plus its signals."""

    started = Signal()
    progress = Signal(float, str, str)  # fraction 0..1, stage, text
    log = Signal(str)
    data = Signal(object)  # a partial-result payload (JobContext.data), e.g. latencies so far
    result = Signal(object)  # the job's result dict
    error = Signal(str, str)  # title, message
    cancelled = Signal()
    finished = Signal(str)  # final state: done | failed | cancelled
    changed = Signal()  # any of the above (for views)

    def __init__(
        self,
        title: str,
        kind: str,
        *,
        lane: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.id = next(_ids)
        self.title = title
        self.kind = kind
        self.lane = lane
        self.state = QUEUED
        self.fraction = 0.0
        self.stage = ""
        self.text = ""
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_KEEP)
        self.error_title = ""
        self.error_message = ""
        self.error_detail = ""
        self.value: Any = None
        self.created = time.monotonic()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.token = CancelToken()
        self._cancel_hook: Callable[[], None] | None = None
        self._relay: _Relay | None = None  # set for jobs registered with JobManager.track

    # --- reporting for tracked (external) jobs: safe to call from any thread -------------------
    def context(self) -> JobContext:
        """A JobContext that feeds this handle (for jobs registered with ``JobManager.track``)."""
        relay = self._relay
        if relay is None:
            raise RuntimeError("context() is for jobs registered with JobManager.track")
        ctx = JobContext(token=self.token, min_interval_s=PROGRESS_INTERVAL_S)
        ctx.on_progress = lambda f, t: relay.progress.emit(float(f), ctx.stage, str(t))
        ctx.on_log = relay.log.emit
        ctx.on_data = relay.data.emit
        return ctx

    def report_result(self, value: Any) -> None:
        if self._relay is not None:
            self._relay.outcome.emit(DONE, value, "", "", "")

    def report_error(self, title: str, message: str, detail: str = "") -> None:
        if self._relay is not None:
            self._relay.outcome.emit(FAILED, None, title, message, detail)

    def report_cancelled(self) -> None:
        if self._relay is not None:
            self._relay.outcome.emit(CANCELLED, None, "", "", "")

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    def cancel(self) -> None:
        """Ask the job to stop (a worker job's process group is killed within ~0.6 s)."""
        if self.is_final:
            return
        self.token.cancel()
        if self._cancel_hook is not None:
            self._cancel_hook()

    # Slots run on the UI thread (queued from the job thread).
    @Slot()
    def _on_started(self) -> None:
        self.state = RUNNING
        self.started_at = time.monotonic()
        self.started.emit()
        self.changed.emit()

    @Slot(float, str, str)
    def _on_progress(self, fraction: float, stage: str, text: str) -> None:
        self.fraction, self.stage, self.text = fraction, stage, text
        self.progress.emit(fraction, stage, text)
        self.changed.emit()

    @Slot(str)
    def _on_log(self, line: str) -> None:
        self.lines.append(line)
        self.log.emit(line)

    @Slot(object)
    def _on_data(self, payload: Any) -> None:
        if not self.is_final:  # a payload queued behind the outcome is stale
            self.data.emit(payload)

    @Slot(str, object, str, str, str)
    def _on_outcome(self, state: str, payload: Any, title: str, message: str, detail: str) -> None:
        self.state = state
        self.ended_at = time.monotonic()
        if state == DONE:
            self.value = payload
            self.fraction = 1.0
            self.result.emit(payload)
        elif state == FAILED:
            self.error_title, self.error_message, self.error_detail = title, message, detail
            self.error.emit(title, message)
        else:
            self.cancelled.emit()
        self.finished.emit(state)
        self.changed.emit()


class _Relay(QObject):
    """Lives on the UI thread; the job thread emits these and Qt queues them across.

    The thread's ``finished`` is connected to :meth:`thread_done`, a slot of this UI-thread object,
    so the manager's bookkeeping (and the start of the next job) always happens on the UI thread.
    """

    started = Signal()
    progress = Signal(float, str, str)
    log = Signal(str)
    data = Signal(object)
    outcome = Signal(str, object, str, str, str)

    def __init__(self, manager: JobManager, handle: JobHandle) -> None:
        super().__init__(manager)
        self.manager = manager
        self.handle = handle

    @Slot()
    def thread_done(self) -> None:
        self.manager._on_thread_finished(self.handle)


class _JobThread(QThread):
    def __init__(self, body: Callable[[JobContext], Any], relay: _Relay, handle: JobHandle) -> None:
        super().__init__()
        self.body = body
        self.relay = relay
        self.token = handle.token
        self.title = handle.title
        self._last_progress = 0.0
        self._progress_lock = threading.Lock()

    def _progress(self, ctx: JobContext, fraction: float, text: str) -> None:
        now = time.monotonic()
        with self._progress_lock:
            if fraction < 1.0 and now - self._last_progress < PROGRESS_INTERVAL_S:
                return
            self._last_progress = now
        self.relay.progress.emit(float(fraction), ctx.stage, str(text))

    def run(self) -> None:
        ctx = JobContext(token=self.token, min_interval_s=0.0)
        ctx.on_progress = lambda f, t: self._progress(ctx, f, t)
        ctx.on_log = self.relay.log.emit
        ctx.on_data = self.relay.data.emit
        self.relay.started.emit()
        try:
            if self.token.cancelled:
                raise JobCancelledError("cancelled before it started")
            value = self.body(ctx)
        except JobCancelledError:
            self.relay.outcome.emit(CANCELLED, None, "", "", "")
        except StudioError as exc:
            self.relay.outcome.emit(
                FAILED, None, f"{self.title} failed", str(exc), str(exc.detail or "")
            )
        except Exception as exc:  # noqa: BLE001 - a bug must reach the dock, not kill the thread
            log.exception("job %s crashed in the UI bridge", self.title)
            self.relay.outcome.emit(
                FAILED, None, f"{self.title} failed", f"{type(exc).__name__}: {exc}", ""
            )
        else:
            if self.token.cancelled:
                self.relay.outcome.emit(CANCELLED, None, "", "", "")
            else:
                self.relay.outcome.emit(DONE, value, "", "", "")


class JobManager(QObject):
    """Runs jobs (worker process or in-process) and keeps the list the Jobs dock shows."""

    job_added = Signal(object)  # JobHandle
    job_changed = Signal(object)
    job_finished = Signal(object)

    def __init__(self, parent: QObject | None = None, max_running: int = 2) -> None:
        super().__init__(parent)
        self.max_running = max_running
        self.jobs: list[JobHandle] = []
        self._pending: list[tuple[JobHandle, Callable[[JobContext], Any]]] = []
        self._threads: dict[int, tuple[_JobThread, _Relay]] = {}

    # --- submitting -----------------------------------------------------------------------------
    def submit(
        self,
        kind: str,
        request: dict[str, Any],
        *,
        title: str | None = None,
        lane: str | None = None,
        supersede: bool = False,
        in_process: bool = False,
        timeout_s: float | None = None,
    ) -> JobHandle:
        """Run the core ``@job`` named ``kind`` (``"studio.core.x:fn"``) with ``request``.

        By default in a worker process; ``in_process=True`` runs it on a QThread in this process
        (only for pure-Python jobs that cannot crash natively).
        """
        if in_process:
            from studio.core.jobs.protocol import resolve_job

            fn = resolve_job(kind)

            def body(ctx: JobContext) -> Any:
                return fn(request, ctx)

        else:

            def body(ctx: JobContext) -> Any:
                from studio.core.jobs.client import run_in_worker

                return run_in_worker(kind, request, ctx, timeout_s=timeout_s)

        return self._add(title or kind.rpartition(":")[2], kind, body, lane, supersede)

    def submit_callable(
        self,
        fn: Callable[[JobContext], Any],
        *,
        title: str,
        lane: str | None = None,
        supersede: bool = False,
    ) -> JobHandle:
        """Run a Python callable ``fn(ctx)`` in-process on a QThread (tracked like any job)."""
        return self._add(title, getattr(fn, "__qualname__", "callable"), fn, lane, supersede)

    def _add(
        self,
        title: str,
        kind: str,
        body: Callable[[JobContext], Any],
        lane: str | None,
        supersede: bool,
    ) -> JobHandle:
        if supersede and lane is not None:
            for job in self.jobs:
                if job.lane == lane and not job.is_final:
                    job.cancel()
        handle = JobHandle(title, kind, lane=lane, parent=self)
        handle._cancel_hook = lambda h=handle: self._cancel_queued(h)
        handle.changed.connect(lambda h=handle: self.job_changed.emit(h))
        self.jobs.append(handle)
        self._pending.append((handle, body))
        self.job_added.emit(handle)
        self._start_ready()
        return handle

    def track(
        self,
        title: str,
        *,
        token: CancelToken | None = None,
        lane: str | None = None,
        kind: str = "external",
    ) -> JobHandle:
        """List a job that runs on the caller's own thread (so the dock shows it too).

        The caller reports through ``handle.context()`` (a JobContext whose progress/log calls are
        safe from any thread) and ends it with ``report_result`` / ``report_error`` /
        ``report_cancelled``. The dock's Cancel sets ``token`` (pass the one the job polls).
        """
        handle = JobHandle(title, kind, lane=lane, parent=self)
        if token is not None:
            handle.token = token
        relay = self._relay_for(handle)
        handle._relay = relay
        handle.changed.connect(lambda h=handle: self.job_changed.emit(h))
        handle.finished.connect(lambda _state, h=handle: self.job_finished.emit(h))
        self.jobs.append(handle)
        self.job_added.emit(handle)
        handle._on_started()
        return handle

    # --- scheduling -------------------------------------------------------------------------------
    def _relay_for(self, handle: JobHandle) -> _Relay:
        """The queued-signal bridge that carries a job's reports from its thread to ``handle``."""
        relay = _Relay(self, handle)
        relay.started.connect(handle._on_started)
        relay.progress.connect(handle._on_progress)
        relay.log.connect(handle._on_log)
        relay.data.connect(handle._on_data)
        relay.outcome.connect(handle._on_outcome)
        return relay

    def _lane_busy(self, lane: str | None) -> bool:
        return lane is not None and any(j.lane == lane and j.id in self._threads for j in self.jobs)

    def _start_ready(self) -> None:
        for handle, body in list(self._pending):
            if len(self._threads) >= self.max_running:
                return
            if self._lane_busy(handle.lane):
                continue
            self._pending.remove((handle, body))
            self._start(handle, body)

    def _start(self, handle: JobHandle, body: Callable[[JobContext], Any]) -> None:
        relay = self._relay_for(handle)
        thread = _JobThread(body, relay, handle)
        thread.finished.connect(relay.thread_done)
        self._threads[handle.id] = (thread, relay)
        thread.start()

    def _cancel_queued(self, handle: JobHandle) -> None:
        for item in list(self._pending):
            if item[0] is handle:
                self._pending.remove(item)
                handle._on_outcome(CANCELLED, None, "", "", "")
                self.job_finished.emit(handle)

    def _on_thread_finished(self, handle: JobHandle) -> None:
        thread, relay = self._threads.pop(handle.id, (None, None))
        if thread is not None:
            thread.deleteLater()
        if relay is not None:
            relay.deleteLater()
        self.job_finished.emit(handle)
        self._start_ready()

    # --- control ----------------------------------------------------------------------------------
    def get(self, job_id: int) -> JobHandle | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def cancel(self, job_id: int) -> None:
        job = self.get(job_id)
        if job is not None:
            job.cancel()

    def running(self) -> list[JobHandle]:
        return [j for j in self.jobs if not j.is_final]

    def clear_finished(self) -> None:
        self.jobs = [j for j in self.jobs if not j.is_final]

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Block until no job runs or is queued (tests, shutdown); events are processed meanwhile."""
        from PySide6.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout_s
        while (self._threads or self._pending) and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            for thread, _ in list(self._threads.values()):
                thread.wait(10)
        QCoreApplication.processEvents()
        return not (self._threads or self._pending)

    def shutdown(self, timeout_s: float = 3.0) -> None:
        """Cancel everything and stop every worker process (the main window calls this on close)."""
        from studio.core.jobs.client import kill_all_workers

        for job in list(self.jobs):
            job.cancel()
        kill_all_workers()
        self.wait(timeout_s)
