"""What the Profiling workspace runs off the UI thread: the profile job and the graphs it needs.

The profile job always runs in the worker process (``run_in_worker``): a native crash in QNN must
fail the profile, never the studio. The workspace submits it on its
:class:`~studio.ui.jobs.background.Background` (through the JobManager, so it shows in the jobs
dock, when there is one). :class:`GraphCache` loads the ModelGraphs of profiled files in the
background, on a queueing ``Background`` of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.core.jobs.protocol import job_kind
from studio.core.profiling.job import profile_model
from studio.ui.jobs.background import Background

log = logging.getLogger(__name__)
PROFILE_KIND = job_kind(profile_model)


def _load_graph(path: str) -> Any:
    from studio.core.model.graph import ModelGraph

    try:
        return ModelGraph.load(path)
    except OSError as exc:  # a vanished file is a reason to show, like a StudioError
        from studio.core.errors import ModelLoadError

        raise ModelLoadError(str(exc)) from exc


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
        self.background = Background(self, latest_only=False)

    @staticmethod
    def key(path: str) -> str:
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
            self.background.start(
                f"Load {Path(key).name}",
                lambda _ctx: _load_graph(key),
                on_result=lambda graph: self._loaded(key, graph, ""),
                on_error=lambda message, _details: self._loaded(key, None, message),
            )
        return self.graphs.get(key)

    def wait(self, msecs: int = 30000) -> bool:
        return self.background.wait(msecs)

    def _loaded(self, path: str, graph: Any, error: str) -> None:
        self._pending.discard(path)
        if graph is not None:
            self.graphs[path] = graph
        else:
            self.errors[path] = error
            log.info("no model structure for %s: %s", path, error)
        self.ready.emit(path)
