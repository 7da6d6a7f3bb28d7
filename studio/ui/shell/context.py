"""The one object every workspace talks through: current model, selection, overlays, jobs.

Workspaces never reach into each other. The Quantization workspace that wants SQNR on the graph
calls ``ctx.set_overlay(...)``; the Graph workspace listens. A row selected in a table calls
``ctx.select_node(node_id)``; the graph and the other tables follow. This mirrors Model Explorer's
"per-node data keyed by node id, loadable onto any graph".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from studio.core.overlay import NodeOverlay


class StudioContext(QObject):
    """Shared state of one studio window. Signals carry plain Python data (no Qt types)."""

    model_changed = Signal(object)  # studio.core.model.graph.ModelGraph | None
    # a ModelGraph drawn before its shapes are inferred (``shapes_pending``); model_changed
    # follows with the same graph once ``complete()`` ran (or never, when the checker refuses it)
    model_preview = Signal(object)
    node_selected = Signal(str)  # node id ("" clears)
    # name, values dict[node_id -> float], colormap name, unit label
    overlay_changed = Signal(str, object, str, str)
    # name, badges dict[node_id -> str]
    badges_changed = Signal(str, object)
    overlay_cleared = Signal()
    status_message = Signal(str)
    error_raised = Signal(str, str)  # title, message
    # a ProfileRun's JSON measured outside the Profiling workspace (e.g. a bundle in Deploy)
    profile_run_ready = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.graph: Any = None  # ModelGraph
        self.model_path: str | None = None
        self.selected_node: str = ""
        self.jobs: Any = None  # studio.ui.jobs.manager.JobManager, set by the main window
        self.plan: Any = (
            None  # the Backends workspace's latest assignment Plan (Deploy compiles it)
        )
        self.target_device: str | None = None  # catalogue name or adb:SERIAL, chosen in Deploy
        self.input_shapes: dict[str, list[int]] = {}
        self.current_overlay: NodeOverlay | None = None  # what the graph is coloured by
        # One undo stack for every edit in every workspace (Edit > Undo, History view).
        self.undo_stack = QUndoStack(self)
        self.project: Any = None  # studio.core.project.Project, when one is open
        self.target_device: str = ""  # set by the status bar's TargetSelector (the one place)
        # Set by the Graph workspace: (width, height) -> PNG bytes of the whole graph with its
        # current overlay and legend (raises StudioError when nothing is laid out). Lets another
        # workspace (the Profiling report) picture the graph without importing the Graph one.
        self.render_graph_png: Callable[..., bytes] | None = None
        # set by the Sweeps view: the last sweep's report section (HTML), or None
        self.sweep_report_section: Callable[[], str | None] | None = None

    def set_model(self, graph: Any, path: str | None) -> None:
        # Edits of the previous model cannot be undone onto this one: start a fresh history.
        self.undo_stack.clear()
        self.graph = graph
        self.model_path = path
        self.selected_node = ""
        self.model_changed.emit(graph)

    def preview_model(self, graph: Any) -> None:
        """Show ``graph`` in the Graph workspace while its shapes are inferred; ctx.graph stays."""
        self.model_preview.emit(graph)

    def select_node(self, node_id: str) -> None:
        if node_id != self.selected_node:
            self.selected_node = node_id
            self.node_selected.emit(node_id)

    def set_overlay(
        self,
        name: str,
        values: dict[str, float],
        colormap: str = "viridis",
        unit: str = "",
        *,
        kind: str = "measured",
        source: str = "",
    ) -> None:
        """Show per-node ``values`` on the graph (a :class:`NodeOverlay` built from the parts)."""
        overlay = NodeOverlay(name, dict(values), unit, kind, source, colormap)
        self.show_overlay(overlay)

    def show_overlay(self, overlay: NodeOverlay) -> None:
        """Show ``overlay`` on the graph; ``current_overlay`` keeps it (kind and source too)."""
        self.current_overlay = overlay
        self.overlay_changed.emit(
            overlay.name, dict(overlay.values), overlay.colormap, overlay.unit
        )

    def set_badges(self, name: str, badges: dict[str, str]) -> None:
        self.badges_changed.emit(name, dict(badges))

    def clear_overlay(self) -> None:
        self.current_overlay = None
        self.overlay_cleared.emit()

    def show_error(self, title: str, message: str) -> None:
        self.error_raised.emit(title, message)
