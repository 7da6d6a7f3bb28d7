"""Runs the core profile job off the UI thread and reports back with Qt signals.

The job itself always runs in the worker process (``run_in_worker``): a native crash in QNN must
fail the profile, never the studio. When the main window provides a JobManager (``ctx.jobs``) the
job goes through it, so it shows in the jobs dock; otherwise a QThreadPool runnable drives the
worker directly. Either way the workspace sees the same four signals.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from studio.core.errors import JobCancelledError, StudioError
from studio.core.jobs.protocol import CancelToken, JobContext, job_kind
from studio.core.profiling.job import profile_model

log = logging.getLogger(__name__)
PROFILE_KIND = job_kind(profile_model)


class _Bridge(QObject):
    """Signals emitted from the pool thread; Qt queues them to the receiver's (UI) thread."""

    progress = Signal(float, str, str)  # fraction, stage, text
    log_line = Signal(str)
    data = Signal(object)  # live payload (latencies so far)
    done = Signal(object)  # result dict
    failed = Signal(str, str)  # title, message
    cancelled = Signal()


class _WorkerRunnable(QRunnable):
    def __init__(self, request: dict[str, Any], bridge: _Bridge, token: CancelToken) -> None:
        super().__init__()
        self.request = request
        self.bridge = bridge
        self.token = token

    def run(self) -> None:
        from studio.core.jobs.client import run_in_worker

        jctx = JobContext(token=self.token)
        jctx.on_progress = lambda f, t: self.bridge.progress.emit(f, jctx.stage, t)
        jctx.on_log = self.bridge.log_line.emit
        jctx.on_data = self.bridge.data.emit
        try:
            result = run_in_worker(PROFILE_KIND, self.request, jctx)
        except JobCancelledError:
            self.bridge.cancelled.emit()
        except StudioError as exc:
            self.bridge.failed.emit("Profiling failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must reach the user, not kill the thread
            log.exception("profile job crashed in the UI bridge")
            self.bridge.failed.emit("Profiling failed", f"{type(exc).__name__}: {exc}")
        else:
            self.bridge.done.emit(result)


class ProfileRunner(QObject):
    """One profile at a time: ``start(request)``, ``cancel()``; results arrive as signals."""

    progress = Signal(float, str, str)
    log_line = Signal(str)
    data = Signal(object)  # live payload while measuring (see core profiling.measure)
    finished = Signal(object)  # ProfileRun JSON dict
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, ctx: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.busy = False
        self._token: CancelToken | None = None
        self._handle: Any = None
        # No Qt parent: the pool thread may outlive this object and still emit into it.
        self._bridge = _Bridge()
        self._bridge.progress.connect(self.progress)
        self._bridge.log_line.connect(self.log_line)
        self._bridge.data.connect(self._on_data)
        self._bridge.done.connect(self._on_done)
        self._bridge.failed.connect(self._on_failed)
        self._bridge.cancelled.connect(self._on_cancelled)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)

    def start(self, request: dict[str, Any], title: str = "Profile") -> None:
        if self.busy:
            return
        self.busy = True
        manager = getattr(self.ctx, "jobs", None)
        if manager is not None:
            # The main window's JobManager: the job shows in the jobs dock, with its log.
            handle = manager.submit(PROFILE_KIND, request, title=title, lane="profiling")
            handle.progress.connect(self.progress)
            handle.log.connect(self.log_line)
            handle.data.connect(self._on_data)
            handle.result.connect(self._on_done)
            handle.error.connect(self._on_failed)
            handle.cancelled.connect(self._on_cancelled)
            self._handle = handle
            return
        self._token = CancelToken()
        self.pool.start(_WorkerRunnable(request, self._bridge, self._token))

    def cancel(self) -> None:
        if not self.busy:
            return
        if self._token is not None:
            self._token.cancel()
        elif self._handle is not None:
            self._handle.cancel()

    def wait(self, msecs: int = 60000) -> bool:
        """Block until the pool is idle (tests and shutdown)."""
        return self.pool.waitForDone(msecs)

    def _on_data(self, payload: Any) -> None:
        if self.busy:  # a payload queued behind the end of the job is stale
            self.data.emit(payload)

    def _reset(self) -> None:
        self.busy = False
        self._token = None
        self._handle = None

    def _on_done(self, result: Any) -> None:
        self._reset()
        self.finished.emit(result)

    def _on_failed(self, title: str, message: str) -> None:
        self._reset()
        self.failed.emit(title, message)

    def _on_cancelled(self) -> None:
        self._reset()
        self.cancelled.emit()


class _GraphBridge(QObject):
    loaded = Signal(str, object, str)  # path, ModelGraph | None, error text


class _GraphRunnable(QRunnable):
    def __init__(self, path: str, bridge: _GraphBridge) -> None:
        super().__init__()
        self.path = path
        self.bridge = bridge

    def run(self) -> None:
        from studio.core.model.graph import ModelGraph

        try:
            graph = ModelGraph.load(self.path)
        except (StudioError, OSError) as exc:
            self.bridge.loaded.emit(self.path, None, str(exc))
        else:
            self.bridge.loaded.emit(self.path, graph, "")


class GraphCache(QObject):
    """ModelGraphs of profiled files, loaded off the UI thread (a large model takes seconds).

    The suggestions' structural rules (16-bit activations, depthwise candidates) need the graph
    of the file that was profiled, which is often the QDQ model rather than the open one.
    """

    ready = Signal(str)  # resolved path whose graph (or failure) is now known

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.graphs: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._pending: set[str] = set()
        self._bridge = _GraphBridge()  # no Qt parent: the thread may outlive this object
        self._bridge.loaded.connect(self._loaded)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)

    @staticmethod
    def key(path: str) -> str:
        from pathlib import Path

        return str(Path(path).resolve())

    def put(self, path: str, graph: Any) -> None:
        self.graphs[self.key(path)] = graph

    def known(self, path: str) -> bool:
        key = self.key(path)
        return key in self.graphs or key in self.errors

    def get(self, path: str) -> Any:
        """The graph if loaded (None otherwise); starts loading it in the background."""
        key = self.key(path)
        if key not in self.graphs and key not in self.errors and key not in self._pending:
            self._pending.add(key)
            self.pool.start(_GraphRunnable(key, self._bridge))
        return self.graphs.get(key)

    def _loaded(self, path: str, graph: Any, error: str) -> None:
        self._pending.discard(path)
        if graph is not None:
            self.graphs[path] = graph
        else:
            self.errors[path] = error
            log.info("no model structure for %s: %s", path, error)
        self.ready.emit(path)
