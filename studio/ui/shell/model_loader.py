"""Load models (and projects) off the UI thread, so a large model never freezes the window.

The loader runs one callable at a time on its own QThreadPool and re-emits the outcome on the UI
thread: ``loaded(path, result)`` or ``failed(path, message, details)``. A StudioError becomes its
own one-line message; anything else (a bug) becomes "unexpected error" with the traceback in
``details``, never an exception escaping into Qt. A newer request makes an older one stale: its
result is dropped, so the user always ends up with the file they asked for last.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from studio.core.errors import StudioError


def load_model_graph(path: str, input_shapes: dict[str, list[int]] | None = None) -> Any:
    """Parse and analyse one ONNX file with the model core (runs on the loader's thread)."""
    from studio.core.model.graph import ModelGraph

    graph = ModelGraph.load(path, input_shapes=input_shapes or None)
    graph.sha256()  # cached on the graph: the project and caches need it, hash it here
    return graph


class _Relay(QObject):
    """Lives on the UI thread; worker threads emit through it (queued delivery)."""

    done = Signal(int, str, object)
    error = Signal(int, str, str, str)


class ModelLoader(QObject):
    """Runs load tasks on a background thread and reports on the UI thread."""

    started = Signal(str)  # path
    loaded = Signal(str, object)  # path, whatever the task returned (a ModelGraph by default)
    failed = Signal(str, str, str)  # path, one-line message, details (traceback or "")
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.error.connect(self._on_error)
        self._generation = 0
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def load(self, path: str, input_shapes: dict[str, list[int]] | None = None) -> None:
        """Load an ONNX model with ``ModelGraph.load``; emits ``loaded(path, graph)``."""
        self.run(path, lambda: load_model_graph(path, input_shapes))

    def run(self, path: str, task: Callable[[], Any]) -> None:
        """Run ``task`` (no Qt inside!) in the background on behalf of ``path``."""
        self._generation += 1
        generation = self._generation
        self._pending += 1
        if self._pending == 1:
            self.busy_changed.emit(True)
        self.started.emit(path)
        relay = self._relay

        def work() -> None:
            try:
                result = task()
            except StudioError as exc:
                _emit(relay.error, generation, path, str(exc), exc.detail or "")
            except MemoryError:
                _emit(relay.error, generation, path, f"{_name(path)}: out of memory", "")
            except Exception as exc:  # noqa: BLE001 - a bug must become a dialog, not a crash
                message = f"{_name(path)}: unexpected error ({type(exc).__name__}: {exc})"
                _emit(relay.error, generation, path, message, traceback.format_exc())
            else:
                _emit(relay.done, generation, path, result)

        self._pool.start(work)

    def wait(self, msecs: int = 10_000) -> bool:
        """Block until running tasks finish (window close); True when none is left."""
        return self._pool.waitForDone(msecs)

    def _finish_one(self) -> None:
        self._pending = max(0, self._pending - 1)
        if self._pending == 0:
            self.busy_changed.emit(False)

    def _on_done(self, generation: int, path: str, result: object) -> None:
        self._finish_one()
        if generation == self._generation:
            self.loaded.emit(path, result)

    def _on_error(self, generation: int, path: str, message: str, details: str) -> None:
        self._finish_one()
        if generation == self._generation:
            self.failed.emit(path, message, details)


def _emit(signal: Any, *args: Any) -> None:
    try:
        signal.emit(*args)
    except RuntimeError:  # the window (and the relay) went away while we were loading
        pass


def _name(path: str) -> str:
    return os.path.basename(path) or path
