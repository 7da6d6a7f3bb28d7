"""Load models (and lay them out) off the UI thread, with errors named after the file.

The thread is a :class:`~studio.ui.jobs.background.Background` (latest wins: a newer request makes
an older one stale, its result dropped, so the user always ends up with the file they asked for
last). What this module adds is the wording: a StudioError becomes its own one-line message; an
out-of-memory says so with the file's name; anything else (a bug) becomes "unexpected error" with
the traceback in ``details``, never an exception escaping into Qt.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any

from studio.core.errors import StudioError
from studio.ui.jobs.background import Background


def load_model_graph(path: str, input_shapes: dict[str, list[int]] | None = None) -> Any:
    """Parse and analyse one ONNX file with the model core (runs on the loader's thread)."""
    graph = load_model_structure(path, input_shapes)
    return complete_model_graph(graph)


def load_model_structure(path: str, input_shapes: dict[str, list[int]] | None = None) -> Any:
    """The first stage: nodes and tensors, enough to draw the graph (``shapes_pending``)."""
    from studio.core.model.graph import ModelGraph

    return ModelGraph.load(path, input_shapes=input_shapes or None, shapes=False)


def complete_model_graph(graph: Any) -> Any:
    """The second stage, while the graph is on screen: checker, shapes, statistics, hash."""
    graph.complete()
    graph.sha256()  # cached on the graph: the project and caches need it, hash it here
    return graph


def named_task(path: str, task: Callable[[], Any]) -> Callable[[Any], Any]:
    """``task`` as a Background task whose failures are StudioErrors naming ``path``."""

    def body(_ctx: Any) -> Any:
        try:
            return task()
        except StudioError:
            raise
        except MemoryError as exc:
            raise StudioError(f"{_name(path)}: out of memory") from exc
        except Exception as exc:  # noqa: BLE001 - a bug must become a dialog, not a crash
            message = f"{_name(path)}: unexpected error ({type(exc).__name__}: {exc})"
            raise StudioError(message, detail=traceback.format_exc()) from exc

    return body


def start_for_file(
    background: Background,
    path: str,
    task: Callable[[], Any],
    on_loaded: Callable[[str, Any], None],
    on_failed: Callable[[str, str, str], None],
) -> None:
    """Run ``task`` for ``path``: ``on_loaded(path, result)`` or ``on_failed(path, message, details)``."""
    background.start(
        path,
        named_task(path, task),
        on_result=lambda result: on_loaded(path, result),
        on_error=lambda message, details: on_failed(path, message, details),
    )


def _name(path: str) -> str:
    return os.path.basename(path) or path
