"""What the user was looking at, kept in the project: graph overlays, badges and the window layout.

Why in the project and not only in QSettings: a project is reopened on another day, or by a
colleague, to look at the same thing again (the SQNR overlay after an analysis, the cycles heat
map of a run, the Profiling tab). QSettings still remembers the window for the next session of
this user; the project remembers it for this model. View state never marks the project dirty:
changing what is shown is not an edit, but it is written with the next save or autosave.
"""

from __future__ import annotations

import base64
import copy
import math
from typing import Any

from PySide6.QtCore import QByteArray, QObject

from studio.core.errors import BadInputError
from studio.core.overlay import NodeOverlay

# Overlays larger than this are not stored: the values come back when their source (a run, an
# analysis) is shown again, and the project file stays small.
MAX_OVERLAY_VALUES = 50_000


class ProjectViewState(QObject):
    """Mirrors overlay/badge signals into ``project.overlays`` and restores them on open."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.ctx = window.ctx
        self._restoring = False
        self._pending: dict[str, Any] | None = None
        self.ctx.overlay_changed.connect(self._on_overlay)
        self.ctx.badges_changed.connect(self._on_badges)
        self.ctx.overlay_cleared.connect(self._on_cleared)
        window.projects.project_opened.connect(self._on_project_opened)
        self.ctx.model_changed.connect(self._on_model_changed)

    # ----- recording --------------------------------------------------------------------------
    def _overlays(self) -> dict[str, Any] | None:
        project = self.ctx.project
        # While the project's own view waits to be restored, workspaces resetting themselves
        # for the new model must not overwrite it.
        if project is None or self._restoring or self._pending is not None:
            return None
        if not isinstance(project.overlays, dict):
            project.overlays = {}
        return project.overlays

    def _on_overlay(self, name: str, values: dict, colormap: str, unit: str) -> None:
        store = self._overlays()
        if store is None:
            return
        overlay = self.ctx.current_overlay
        if overlay is None or overlay.name != name:
            overlay = NodeOverlay(name, values, unit, colormap=colormap)
        if len(overlay.values) > MAX_OVERLAY_VALUES:
            store.pop("active", None)
            return
        store["active"] = overlay.to_json()

    def _on_badges(self, name: str, badges: dict) -> None:
        store = self._overlays()
        if store is None:
            return
        kept = {str(k): str(v) for k, v in badges.items()}
        store.setdefault("badges", {})[name] = kept if len(kept) <= MAX_OVERLAY_VALUES else {}

    def _on_cleared(self) -> None:
        store = self._overlays()
        if store is not None:
            store.pop("active", None)
            store.pop("badges", None)

    def capture_ui(self) -> None:
        """Store the window layout and the current workspace (called before every save)."""
        project = self.ctx.project
        if project is None:
            return
        project.ui = {
            "workspace": int(self.window.tabs.currentIndex()),
            "window_state": base64.b64encode(bytes(self.window.saveState().data())).decode(),
        }

    # ----- restoring --------------------------------------------------------------------------
    def _on_project_opened(self, project: Any) -> None:
        self._pending = copy.deepcopy(
            {"overlays": dict(project.overlays or {}), "ui": dict(project.ui or {})}
        )
        self._restore_ui(self._pending["ui"])

    def _restore_ui(self, ui: dict[str, Any]) -> None:
        index = ui.get("workspace")
        if isinstance(index, int) and 0 <= index < self.window.tabs.count():
            self.window.tabs.setCurrentIndex(index)
        state = ui.get("window_state")
        if isinstance(state, str):
            try:
                self.window.restoreState(QByteArray(base64.b64decode(state, validate=True)))
            except ValueError:
                pass  # a damaged layout is not worth an error: the current one stays

    def _on_model_changed(self, graph: Any) -> None:
        """The project's model is on screen: put its overlay and badges back."""
        pending, self._pending = self._pending, None
        if not pending or graph is None:
            return
        overlays = pending["overlays"]
        known = set(getattr(graph, "node_by_id", {}))
        self._restoring = True
        try:
            overlay = _saved_overlay(overlays.get("active"))
            if overlay is not None:
                overlay.values = {k: v for k, v in overlay.values.items() if k in known}
                if overlay.values:
                    self.ctx.show_overlay(overlay)
            for name, badges in (overlays.get("badges") or {}).items():
                if isinstance(badges, dict):
                    kept = {k: str(v) for k, v in badges.items() if k in known}
                    if kept:
                        self.ctx.set_badges(str(name), kept)
        finally:
            self._restoring = False
        if self.ctx.project is not None:
            self.ctx.project.overlays = overlays  # what was restored is what stays recorded


def _saved_overlay(data: Any) -> NodeOverlay | None:
    """The project's saved overlay, or None when it is absent or damaged (nothing worth an error:
    the overlay comes back when its source is shown again)."""
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        return None
    values = {k: v for k, v in data["values"].items() if _finite(v) and not isinstance(v, bool)}
    data = {**data, "values": values}
    try:
        return NodeOverlay.from_json(data)
    except BadInputError:
        return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(float(value))
