"""The Graph workspace: the model drawn natively (and in Netron), searchable, with overlays.

It listens to the StudioContext only: ``model_changed`` lays the new model out on a worker thread
(``studio.core.model.layout.compute``), ``node_selected`` from any workspace centres and highlights the
node, ``overlay_changed``/``badges_changed`` colour and tag nodes without re-layout. A click here
calls ``ctx.select_node`` so the other workspaces follow.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.model import layout as lay
from studio.core.overlay import NodeOverlay
from studio.ui.graph.canvas import GraphCanvas
from studio.ui.graph.export import ask_and_save_png, render_graph_png
from studio.ui.graph.netron_tab import NetronTab
from studio.ui.graph.overlay import BUILTIN
from studio.ui.graph.painting import NO_OVERLAY, OverlayPainting
from studio.ui.graph.properties import PropertiesPanel
from studio.ui.graph.scene import ScenePrep, prepare_scene
from studio.ui.graph.scopes import ScopeGrouping
from studio.ui.graph.search import SearchBar, find_nodes
from studio.ui.jobs.background import Background
from studio.ui.shell.model_loader import start_for_file


class GraphWorkspace(ScopeGrouping, OverlayPainting, QWidget):
    """Toolbar (fit, grouping, overlay, search) over a canvas and a properties panel."""

    # a new layout is on screen and its model complete (tests and the benchmark wait for it)
    layout_ready = Signal()
    drawn = Signal()  # a layout is on screen, maybe of a preview whose shapes are pending

    def __init__(self, ctx: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("graphWorkspace")
        self.ctx = ctx
        self.graph: Any = None
        self.layout_data: lay.Layout | None = None
        self.collapsed: set[str] = set()
        self.levels: dict[int, list[str]] = {}  # scope depth -> scopes ("Group" choices)
        self.overlays: dict[str, NodeOverlay] = {}
        self.active_overlay = ""
        self.badge_sets: dict[str, dict[str, str]] = {}
        self.badge_vertices: dict[str, dict[int, str]] = {}
        self.badge_layout: Any = None
        self.matches: list[str] = []
        self.match_index = -1
        self._pending_focus = ""
        self._fit_after_layout = True
        self._clicked = False
        self._query = ""
        self._previewed: Any = None  # the graph shown by model_preview, until model_changed
        self._runner = Background(self)

        self.canvas = GraphCanvas(self)
        self.scene = self.canvas.scene
        self.view = self.canvas.view
        self.properties = PropertiesPanel(self)
        self.search_bar = SearchBar(self)
        self.netron = NetronTab(self)
        self._build_ui()
        self._build_actions()

        self.view.vertex_clicked.connect(self.select_vertex)
        self.view.vertex_double_clicked.connect(self._on_double_click)
        self.view.context_requested.connect(self._on_context_menu)
        self.search_bar.query_changed.connect(self.search)
        self.search_bar.step.connect(self.step_match)
        ctx.model_changed.connect(self._on_model_changed)
        ctx.model_preview.connect(self._on_model_preview)
        ctx.node_selected.connect(self._on_node_selected)
        ctx.overlay_changed.connect(self._on_overlay_changed)
        ctx.badges_changed.connect(self._on_badges_changed)
        ctx.overlay_cleared.connect(self._on_overlay_cleared)
        # Other workspaces (the Profiling report) picture the graph through the context.
        ctx.render_graph_png = self.render_png
        if getattr(ctx, "graph", None) is not None:
            self._on_model_changed(ctx.graph)

    # ----- construction -------------------------------------------------------------------
    def _build_ui(self) -> None:
        bar = QWidget(self)
        bar.setObjectName("graphToolbar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(8, 6, 8, 6)
        row.setSpacing(6)
        self.fit_button = self._tool(bar, "Fit", "Zoom to fit (Ctrl+0)", self.zoom_to_fit)
        row.addWidget(self.fit_button)
        row.addWidget(
            self._tool(bar, "−", "Zoom out (Ctrl+-)", lambda: self.view.zoom_by(1 / 1.25))
        )
        row.addWidget(self._tool(bar, "+", "Zoom in (Ctrl+=)", lambda: self.view.zoom_by(1.25)))
        row.addSpacing(12)
        row.addWidget(QLabel("Group", bar))
        self.level_combo = QComboBox(bar)
        self.level_combo.setObjectName("graphGroupCombo")
        self.level_combo.setToolTip("Collapse name scopes (e.g. /encoder/layer.3) into one box")
        self.level_combo.addItem("All nodes", 0)
        self.level_combo.activated.connect(self._on_level_chosen)
        row.addWidget(self.level_combo)
        self.expand_button = self._tool(bar, "Expand all", "Expand every scope", self.expand_all)
        row.addWidget(self.expand_button)
        row.addSpacing(12)
        row.addWidget(QLabel("Overlay", bar))
        self.overlay_combo = QComboBox(bar)
        self.overlay_combo.setObjectName("graphOverlayCombo")
        self.overlay_combo.setMinimumWidth(170)
        self.overlay_combo.addItem(NO_OVERLAY)
        for title in BUILTIN:
            self.overlay_combo.addItem(title)
        self.overlay_combo.activated.connect(
            lambda _i: self.show_overlay(self.overlay_combo.currentText())
        )
        row.addWidget(self.overlay_combo)
        row.addSpacing(12)
        self.png_button = self._tool(
            bar,
            "Export PNG…",
            "Export graph as PNG: the whole graph with its overlay and legend",
            self.ask_export_png,
        )
        self.png_button.setObjectName("graphExportPng")
        row.addWidget(self.png_button)
        row.addStretch(1)
        row.addWidget(self.search_bar, 2)

        graph_page = QWidget(self)
        page = QVBoxLayout(graph_page)
        page.setContentsMargins(0, 0, 0, 0)
        page.setSpacing(0)
        page.addWidget(bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, graph_page)
        self.splitter.addWidget(self.canvas)
        self.splitter.addWidget(self.properties)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setSizes([1000, 400])
        page.addWidget(self.splitter, 1)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("graphTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(graph_page, "Graph view")
        self.tabs.addTab(self.netron, "Netron")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.tabs)

    def _tool(self, parent: QWidget, text: str, tip: str, slot: Any) -> QToolButton:
        button = QToolButton(parent)
        button.setText(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _build_actions(self) -> None:
        def add(text: str, keys: Any, slot: Any) -> QAction:
            action = QAction(text, self)
            action.setShortcuts(keys if isinstance(keys, list) else [keys])
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
            return action

        self.find_action = add("Find node", QKeySequence.StandardKey.Find, self.search_bar.focus)
        self.next_action = add("Next match", QKeySequence("F3"), lambda: self.step_match(1))
        self.prev_action = add(
            "Previous match", QKeySequence("Shift+F3"), lambda: self.step_match(-1)
        )
        self.fit_action = add("Zoom to fit", QKeySequence("Ctrl+0"), self.zoom_to_fit)
        add(
            "Zoom in",
            [QKeySequence("Ctrl+="), QKeySequence("Ctrl++")],
            lambda: self.view.zoom_by(1.25),
        )
        add("Zoom out", QKeySequence("Ctrl+-"), lambda: self.view.zoom_by(1 / 1.25))

    # ----- model and layout -----------------------------------------------------------------
    def _on_model_preview(self, graph: Any) -> None:
        """A model drawn before its shapes are known: lay it out now, fill shapes in later."""
        self._on_model_changed(graph)
        self._previewed = graph

    def drop_preview(self) -> None:
        """The previewed model was refused (its second stage failed): show the window's model."""
        self._previewed = None
        self._on_model_changed(self.ctx.graph)

    def _on_model_changed(self, graph: Any) -> None:
        previewed, self._previewed = self._previewed, None
        if graph is not None and graph is previewed and graph is self.graph:
            self._shapes_arrived()
            return
        self.graph = graph
        self.layout_data = None
        self.collapsed = set()
        self.matches, self.match_index = [], -1
        self.overlays = {k: v for k, v in self.overlays.items() if k not in BUILTIN}
        self.properties.clear()
        self.scene.clear_graph()
        self.canvas.legend.hide()
        path = getattr(self.ctx, "model_path", None) if graph is not None else None
        if graph is not None and getattr(graph, "shapes_pending", False):
            path = str(graph.path)  # a preview: ctx.model_path still names the previous model
        self.netron.set_model(path)
        self.levels = {}
        self._fill_levels()
        if graph is None:
            self.canvas.minimap.hide()
            self.canvas.set_message("Open an ONNX model to see its graph")
            return
        self.canvas.set_message(f"Laying out {len(graph.nodes):,} nodes…")
        self._fit_after_layout = True
        self.relayout()

    def _shapes_arrived(self) -> None:
        """The previewed graph is complete: shapes, parameters and MACs are now known."""
        self.scene.refresh_text()
        if self.active_overlay in BUILTIN:
            self.show_overlay(self.active_overlay)  # MACs/params/bytes were all 0
        layout = self.layout_data
        if layout is not None and 0 <= self.scene.selected < layout.size:
            self._show_properties(layout.ids[self.scene.selected])
        self.canvas._update_info()
        self.canvas.minimap.invalidate()
        if layout is not None:
            self.layout_ready.emit()

    def relayout(self) -> None:
        """Lay the current graph out again (with the current collapsed scopes), off the UI thread."""
        graph, collapsed = self.graph, frozenset(self.collapsed)
        if graph is None:
            return
        want_levels = not self.levels

        def work() -> tuple[lay.Layout, ScenePrep, dict[int, list[str]] | None]:
            # everything but the drawing: layout, bands and their paths, the scope levels
            layout = lay.compute(graph, collapsed)
            levels = lay.scope_levels(graph) if want_levels else None
            return layout, prepare_scene(layout), levels

        path = str(getattr(graph, "path", ""))
        start_for_file(self._runner, path, work, self._on_layout, self._on_layout_failed)

    def _on_layout(self, _path: str, result: Any) -> None:
        if self.graph is None:
            return
        if isinstance(result, lay.Layout):
            self.apply_layout(result)
            return
        layout, prepared, levels = result
        if levels is not None and not self.levels:
            self.levels = levels
            self._fill_levels()
        self.apply_layout(layout, prepared)

    def _on_layout_failed(self, _path: str, message: str, _details: str) -> None:
        self.canvas.set_message(f"The graph could not be laid out: {message}")

    def apply_layout(self, layout: lay.Layout, prepared: ScenePrep | None = None) -> None:
        """Put a computed layout on screen (UI thread); keeps selection, overlay and badges."""
        self.layout_data = layout
        self.scene.set_graph(self.graph, layout, prepared)
        self.canvas.set_message("")
        self.canvas.minimap.show()
        self.canvas.minimap.invalidate()
        self._recolour()
        self._rebadge()
        self._refresh_hits()
        selected = getattr(self.ctx, "selected_node", "")
        if selected and selected in layout.vertex_of:
            self.scene.set_selected(layout.vertex_of[selected])
        if self._fit_after_layout:
            self._fit_after_layout = False
            self.view.initial_view()
        focus, self._pending_focus = self._pending_focus, ""
        if focus and focus in layout.vertex_of:
            self.view.center_on_rect(self.scene.vertex_rect(layout.vertex_of[focus]))
        self.canvas._update_info()
        # read before drawn: its slot starts complete() on a thread, which may finish at once
        complete = self._previewed is None
        self.drawn.emit()
        if complete:
            self.layout_ready.emit()

    def zoom_to_fit(self) -> None:
        self.view.zoom_to_fit()

    # ----- picture --------------------------------------------------------------------------
    def render_png(self, width: int = 1600, height: int = 1000) -> bytes:
        """The whole graph with its current overlay and legend, as PNG bytes (``export.py``)."""
        return render_graph_png(self, width, height)

    def ask_export_png(self) -> None:
        """The "Export graph as PNG…" action (toolbar, context menu): file dialog, write, report."""
        ask_and_save_png(self)

    # ----- selection ------------------------------------------------------------------------
    def select_vertex(self, vertex: int) -> None:
        """A click on the canvas: select the node (and tell the other workspaces)."""
        if self.layout_data is None:
            return
        self.scene.set_selected(vertex)
        if vertex < 0:
            self.properties.clear()
            self.ctx.select_node("")
            return
        vid = self.layout_data.ids[vertex]
        self._show_properties(vid)
        if vid in self.graph.node_by_id:
            self._clicked = True  # selected here: no need to centre the view on it
            try:
                self.ctx.select_node(vid)
            finally:
                self._clicked = False

    def _show_properties(self, vid: str) -> None:
        if vid.startswith(lay.GROUP_PREFIX):
            members = self.layout_data.members.get(vid, [])
            self.properties.show_group(self.graph, vid[len(lay.GROUP_PREFIX) :], members)
        elif vid.startswith(lay.INPUT_PREFIX):
            self.properties.show_tensor(self.graph, vid[len(lay.INPUT_PREFIX) :], "input")
        elif vid.startswith(lay.OUTPUT_PREFIX):
            self.properties.show_tensor(self.graph, vid[len(lay.OUTPUT_PREFIX) :], "output")
        else:
            self.properties.show_node(self.graph, vid)

    def select_node(self, node_id: str) -> None:
        """Select, centre and show ``node_id``; expands its scope when it is collapsed."""
        if self.graph is None or node_id not in self.graph.node_by_id:
            return
        if self.ctx.selected_node != node_id:
            self.ctx.select_node(node_id)  # comes back through _on_node_selected
        else:
            self._on_node_selected(node_id)

    def _on_node_selected(self, node_id: str) -> None:
        if self.graph is None:
            return
        if not node_id:
            self.scene.set_selected(-1)
            self.properties.clear()
            return
        if node_id not in self.graph.node_by_id:
            return
        self.properties.show_node(self.graph, node_id)
        layout = self.layout_data
        if layout is None:
            return
        vertex = layout.vertex_of.get(node_id, -1)
        if vertex >= 0 and layout.ids[vertex] != node_id:  # hidden inside a collapsed scope
            node = self.graph.node_by_id[node_id]
            self.collapsed = {s for s in self.collapsed if lay.group_of(node.scope, {s}) is None}
            self._pending_focus = node_id
            self.relayout()
            return
        self.scene.set_selected(vertex)
        if vertex >= 0 and not self._clicked:
            self.view.center_on_rect(self.scene.vertex_rect(vertex))

    # ----- search ---------------------------------------------------------------------------
    def search(self, text: str) -> list[str]:
        """Highlight every match of ``text`` and select the first; returns the matching ids."""
        self._query = text
        self.matches = find_nodes(self.graph, text)
        self.match_index = -1
        self._refresh_hits()
        if self.matches:
            self.step_match(1)
        else:
            self.search_bar.set_result(-1, 0, text)
        return self.matches

    def step_match(self, direction: int) -> None:
        if not self.matches:
            return
        self.match_index = (self.match_index + direction) % len(self.matches)
        self.search_bar.set_result(self.match_index, len(self.matches), self._query)
        self.select_node(self.matches[self.match_index])
        self._refresh_hits()

    def _refresh_hits(self) -> None:
        layout = self.layout_data
        if layout is None:
            return
        hits = sorted({layout.vertex_of[m] for m in self.matches if m in layout.vertex_of})
        current = -1
        if 0 <= self.match_index < len(self.matches):
            current = layout.vertex_of.get(self.matches[self.match_index], -1)
        self.scene.set_hits(hits, current)

    # ----- lifetime -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop background work (netron server, pending layout) before the window closes."""
        self.netron.shutdown()
        self._runner.wait(5000)
        if getattr(self.ctx, "render_graph_png", None) == self.render_png:
            self.ctx.render_graph_png = None  # no picture from a closed view
