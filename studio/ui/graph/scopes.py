"""The Graph workspace's grouping: name scopes folded into boxes and opened again.

Why apart: folding is its own piece of state (``collapsed``, the scope ``levels``) with its own
controls (the level combo, double-click, the context menu); the workspace only lays out what it
is given. A mixin of :class:`~studio.ui.graph.workspace.GraphWorkspace`: it reads the
workspace's ``graph``, ``layout_data``, ``levels``, ``collapsed``, ``level_combo`` and calls its
``relayout``/``zoom_to_fit``/``ask_export_png``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMenu

from studio.core.model import layout as lay

MAX_LEVELS = 6


class ScopeGrouping:
    """Collapse and expand name scopes; the level combo and the node context menu."""

    graph: Any
    layout_data: Any
    levels: dict[int, list[str]]
    collapsed: set[str]
    _pending_focus: Any

    def _fill_levels(self) -> None:
        self.level_combo.clear()
        self.level_combo.addItem("All nodes", 0)
        if self.graph is None:
            return
        for level, scopes in self.levels.items():
            if level <= MAX_LEVELS and scopes:
                self.level_combo.addItem(f"Scopes, level {level} ({len(scopes)})", level)

    def _on_level_chosen(self, index: int) -> None:
        self.collapse_to_level(int(self.level_combo.itemData(index) or 0))

    def collapse_to_level(self, level: int) -> None:
        if self.graph is None:
            return
        if level > 0 and not self.levels:
            self.levels = lay.scope_levels(self.graph)
        self.collapsed = set(self.levels.get(level, ())) if level > 0 else set()
        self.level_combo.setCurrentIndex(max(0, self.level_combo.findData(level)))
        self.relayout()

    def collapse(self, scope: str) -> None:
        """Fold one name scope (``encoder/layer.3``) into a box; inner collapsed scopes merge in."""
        self.collapsed = {s for s in self.collapsed if not s.startswith(scope + "/")}
        self.collapsed.add(scope)
        self._pending_focus = lay.GROUP_PREFIX + scope
        self.relayout()

    def expand(self, scope: str) -> None:
        self.collapsed.discard(scope)
        members = (
            self.layout_data.members.get(lay.GROUP_PREFIX + scope, []) if self.layout_data else []
        )
        if members:
            self._pending_focus = members[0]
        self.relayout()

    def expand_all(self) -> None:
        if self.collapsed:
            self.collapsed = set()
            self.level_combo.setCurrentIndex(0)
            self.relayout()

    def _on_double_click(self, vertex: int) -> None:
        if vertex >= 0 and self.layout_data is not None:
            vid = self.layout_data.ids[vertex]
            if vid.startswith(lay.GROUP_PREFIX):
                self.expand(vid[len(lay.GROUP_PREFIX) :])

    def _on_context_menu(self, vertex: int, pos: QPoint) -> None:
        menu = self.context_menu(vertex)
        menu.exec(pos)

    def context_menu(self, vertex: int) -> QMenu:
        menu = QMenu(self)
        if vertex >= 0 and self.layout_data is not None:
            vid = self.layout_data.ids[vertex]
            if vid.startswith(lay.GROUP_PREFIX):
                scope = vid[len(lay.GROUP_PREFIX) :]
                menu.addAction(f"Expand /{scope}", lambda: self.expand(scope))
            elif vid in self.graph.node_by_id:
                node = self.graph.node_by_id[vid]
                for depth in range(len(node.scope), 0, -1):
                    scope = lay.scope_key(node.scope[:depth])
                    menu.addAction(f"Collapse /{scope}", lambda s=scope: self.collapse(s))
            menu.addAction("Copy id", lambda: QGuiApplication.clipboard().setText(vid))
            menu.addSeparator()
        menu.addAction("Zoom to fit", self.zoom_to_fit)
        if self.collapsed:
            menu.addAction("Expand all", self.expand_all)
        if self.layout_data is not None:
            menu.addAction("Export graph as PNG…", self.ask_export_png)
        return menu
