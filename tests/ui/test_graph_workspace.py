"""The Graph workspace on real models: select, search, properties, collapse, overlays, badges."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor

from studio.core.model import layout as lay
from studio.core.model.graph import ModelGraph
from studio.core.model.synthetic import transformer_like
from studio.core.overlay import NodeOverlay
from studio.ui.graph import styles
from studio.ui.graph.workspace import GraphWorkspace
from studio.ui.shell.context import StudioContext
from tests import builders

SHOTS = "/tmp/shots"


@pytest.fixture
def ctx(qtbot):
    return StudioContext()


@pytest.fixture
def ws(qtbot, ctx):
    widget = GraphWorkspace(ctx)
    qtbot.addWidget(widget)
    widget.resize(1400, 900)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture(scope="module")
def transformer_path(tmp_path_factory):
    return builders.save(transformer_like(2000), tmp_path_factory.mktemp("t") / "t2000.onnx")


def open_model(qtbot, ws, ctx, path):
    graph = ModelGraph.load(path)
    with qtbot.waitSignal(ws.layout_ready, timeout=20000):
        ctx.set_model(graph, str(path))
    return graph


def click_vertex(qtbot, ws, vertex):
    ws.view.center_on_rect(ws.scene.vertex_rect(vertex))
    pos = ws.view.mapFromScene(ws.scene.vertex_rect(vertex).center())
    qtbot.mouseClick(ws.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def save_shot(widget, name):
    import os

    os.makedirs(SHOTS, exist_ok=True)
    assert widget.grab().save(f"{SHOTS}/{name}.png")


def test_open_click_and_properties(qtbot, ws, ctx, conv_model):
    graph = open_model(qtbot, ws, ctx, conv_model)
    layout = ws.layout_data
    assert layout.size == len(graph.nodes) + 2
    assert ws.canvas.minimap.isVisible()
    click_vertex(qtbot, ws, layout.vertex_of["/stem/Conv"])
    assert ctx.selected_node == "/stem/Conv"
    assert ws.scene.selected == layout.vertex_of["/stem/Conv"]
    rows = ws.properties.rows()
    node = graph.node_by_id["/stem/Conv"]
    assert rows["Node/Op type"] == "Conv"
    assert rows["Node/Id kind"] == "node name"
    assert rows["Statistics/Parameters"] == "224"
    assert rows["Statistics/MACs"].startswith(f"{node.macs:,}")
    assert rows["Statistics/Activation bytes"].startswith(f"{node.activation_bytes:,}")
    assert rows["Attributes/pads"] == "[1, 1, 1, 1]"
    assert rows["Inputs/input"] == "float32 [1×3×32×32] graph input"
    assert rows["Inputs/stem.weight"] == "float32 [8×3×3×3] weight"
    assert rows["Outputs//stem/Conv_output_0"] == "float32 [1×8×32×32]"
    # a click on the background clears the selection
    qtbot.mouseClick(ws.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert ctx.selected_node == ""
    assert ws.properties.title.text() == "No selection"
    # graph inputs are boxes too, with their tensor's properties
    click_vertex(qtbot, ws, layout.vertex_of["input:input"])
    assert ws.properties.rows()["Tensor/Shape"] == "1×3×32×32"
    save_shot(ws, "graph_small_cnn")


def test_synthetic_ids_are_labelled(qtbot, ws, ctx, tmp_path):
    model = builders.small_cnn()
    for node in model.graph.node:
        node.name = ""
    open_model(qtbot, ws, ctx, builders.save(model, tmp_path / "unnamed.onnx"))
    ws.select_node("Relu_1")
    rows = ws.properties.rows()
    assert rows["Node/Id"] == "Relu_1"
    assert rows["Node/Id kind"].startswith("synthetic")
    assert "unnamed" in ws.properties.subtitle.text()


def test_search_next_previous(qtbot, ws, ctx, conv_model):
    open_model(qtbot, ws, ctx, conv_model)
    assert ws.search("relu") == ["/stem/Relu", "/block/Relu"]
    assert ctx.selected_node == "/stem/Relu"
    assert ws.search_bar.count.text() == "1 / 2"
    assert len(ws.scene.hits) == 2
    ws.next_action.trigger()  # F3
    assert ctx.selected_node == "/block/Relu"
    ws.next_action.trigger()
    assert ctx.selected_node == "/stem/Relu"  # wraps
    ws.prev_action.trigger()  # Shift+F3
    assert ctx.selected_node == "/block/Relu"
    assert ws.next_action.shortcut().toString() == "F3"
    assert ws.prev_action.shortcut().toString() == "Shift+F3"
    # typing in the bar searches; Enter steps; tensor names match producer and consumer
    ws.find_action.trigger()
    qtbot.keyClicks(ws.search_bar.edit, "GAP_output")
    assert ws.matches == ["/pool/GlobalAveragePool", "/pool/Flatten"]
    qtbot.keyClick(ws.search_bar.edit, Qt.Key.Key_Return)
    assert ctx.selected_node == "/pool/Flatten"
    ws.search("no such thing")
    assert ws.search_bar.count.text() == "no match"
    assert ws.scene.hits == []


def test_selection_from_other_workspace_centres(qtbot, ws, ctx, transformer_path):
    graph = open_model(qtbot, ws, ctx, transformer_path)
    target = graph.nodes[-20].id
    ctx.select_node(target)
    vertex = ws.layout_data.vertex_of[target]
    assert ws.scene.selected == vertex
    centre = ws.view.mapToScene(ws.view.viewport().rect().center())
    rect = ws.scene.vertex_rect(vertex)
    assert abs(centre.y() - rect.center().y()) < 5
    assert ws.properties.title.text() == graph.node_by_id[target].op_type


def test_collapse_expand_scopes(qtbot, ws, ctx, transformer_path):
    graph = open_model(qtbot, ws, ctx, transformer_path)
    full = ws.layout_data.size
    layout_before = ws.layout_data
    assert ws.level_combo.count() >= 3
    with qtbot.waitSignal(ws.layout_ready, timeout=20000):
        ws.collapse_to_level(2)
    folded = ws.layout_data
    assert folded is not layout_before
    assert folded.size < full / 10
    assert "scope:encoder/layer.0" in folded.members
    save_shot(ws, "graph_collapsed")
    # a double-click on a group expands it
    group = folded.vertex_of["scope:encoder/layer.1"]
    ws.view.center_on_rect(ws.scene.vertex_rect(group))
    pos = ws.view.mapFromScene(ws.scene.vertex_rect(group).center())
    with qtbot.waitSignal(ws.layout_ready, timeout=20000):
        qtbot.mouseDClick(ws.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert "scope:encoder/layer.1" not in ws.layout_data.members
    assert ws.layout_data.size > folded.size
    # selecting a node hidden in a collapsed scope expands that scope and shows the node
    hidden = next(n for n in graph.nodes if n.scope[:2] == ["encoder", "layer.0"])
    with qtbot.waitSignal(ws.layout_ready, timeout=20000):
        ctx.select_node(hidden.id)
    assert ws.layout_data.ids[ws.scene.selected] == hidden.id
    # the context menu of a node offers to collapse each of its scopes
    menu = ws.context_menu(ws.scene.selected)
    texts = [a.text() for a in menu.actions()]
    assert "Collapse /encoder/layer.0" in texts and "Collapse /encoder" in texts
    with qtbot.waitSignal(ws.layout_ready, timeout=20000):
        ws.expand_all()
    assert ws.layout_data.size == full


def test_builtin_overlay_does_not_relayout(qtbot, ws, ctx, conv_model):
    graph = open_model(qtbot, ws, ctx, conv_model)
    layout = ws.layout_data
    base = ws.scene.fill_index.copy()
    ws.overlay_combo.setCurrentText("MACs per node")
    ws.show_overlay("MACs per node")
    assert ws.layout_data is layout
    assert ws.canvas.legend.isVisible()
    assert ws.canvas.legend.title == "MACs per node"
    top = max(n.macs for n in graph.nodes)
    assert ws.canvas.legend.vmax == top
    assert ws.canvas.legend.max_text().endswith("MACs")
    assert not np.array_equal(ws.scene.fill_index, base)
    # the node with the most MACs gets the top colour of the map
    v = layout.vertex_of[max(graph.nodes, key=lambda n: n.macs).id]
    top_colour = ws.scene.palette[ws.scene.fill_index[v]]
    assert ws.scene.fill_index[v] == max(ws.scene.fill_index[: len(graph.nodes)])
    save_shot(ws, "graph_overlay_macs")
    ws.show_overlay("No overlay")
    assert not ws.canvas.legend.isVisible()
    np.testing.assert_array_equal(ws.scene.fill_index, base)
    assert top_colour.isValid()


def test_the_legend_says_what_the_overlay_numbers_are(qtbot, ws, ctx, conv_model, tmp_path):
    open_model(qtbot, ws, ctx, conv_model)
    est = NodeOverlay(
        "Estimated ms on Samsung Galaxy S24",
        {"/stem/Conv": 0.12, "/block/conv/Conv": 0.4},
        "ms",
        "estimated",
        "Samsung Galaxy S24 (±20% median error)",
        "magma",
    )
    ctx.show_overlay(est)
    assert ws.overlays[est.name] is est  # kind and source reach the graph, not only the values
    assert ws.canvas.legend.title == est.name and ws.canvas.legend.kind == "estimated"
    ws.resize(900, 600)
    ws.canvas.legend.grab().save(str(tmp_path / "legend.png"))
    assert (tmp_path / "legend.png").stat().st_size > 0
    ctx.set_overlay("SQNR", {"/stem/Conv": 12.5}, "RdYlGn", "dB")  # the parts alone: measured
    assert ws.canvas.legend.kind == "measured" and ctx.current_overlay.name == "SQNR"
    ctx.clear_overlay()
    assert ctx.current_overlay is None and not ws.canvas.legend.isVisible()


def test_overlay_and_badges_from_context(qtbot, ws, ctx, conv_model):
    open_model(qtbot, ws, ctx, conv_model)
    layout = ws.layout_data
    ctx.set_overlay("SQNR", {"/stem/Conv": 12.5, "/block/conv/Conv": 31.0}, "RdYlGn", "dB")
    assert ws.overlay_combo.findText("SQNR") >= 0
    assert ws.canvas.legend.isVisible() and ws.canvas.legend.title == "SQNR"
    assert ws.canvas.legend.min_text() == "12.5 dB"
    assert ws.canvas.legend.max_text() == "31 dB"
    assert ws.canvas.legend.has_missing
    no_data = ws.scene.palette.index(styles.NO_DATA)
    assert ws.scene.fill_index[layout.vertex_of["/block/Add"]] == no_data
    ctx.set_badges("backend", {"/stem/Conv": "HTP", "/head/Gemm": "CPU"})
    ctx.set_badges("bits", {"/stem/Conv": "A16"})
    assert ws.scene.badges[layout.vertex_of["/stem/Conv"]] == ["HTP", "A16"]
    # the badge is really drawn: its colour appears next to the node
    v = layout.vertex_of["/stem/Conv"]
    ws.view.set_scale(1.0)
    ws.view.centerOn(ws.scene.vertex_rect(v).center())
    image = ws.view.viewport().grab().toImage()
    htp = styles.badge_color("HTP")
    found = any(
        QColor(image.pixel(x, y)) == htp
        for x in range(0, image.width(), 2)
        for y in range(0, image.height(), 2)
    )
    assert found
    save_shot(ws, "graph_sqnr_badges")
    ctx.set_badges("bits", {})
    assert ws.scene.badges[v] == ["HTP"]
    ctx.clear_overlay()
    assert not ws.canvas.legend.isVisible()
    assert ws.scene.badges == {}
    np.testing.assert_array_equal(ws.scene.fill_index, ws.scene.base_index)


def test_level_of_detail_and_navigation(qtbot, ws, ctx, transformer_path):
    open_model(qtbot, ws, ctx, transformer_path)
    ws.zoom_to_fit()
    assert ws.view.scale_factor < styles.LOD_DETAIL
    ws.scene.item.label_cache.clear()
    ws.view.viewport().grab()
    assert ws.scene.item.label_cache == {}  # zoomed out: no label is even measured
    ws.view.set_scale(1.0)
    ws.view.centerOn(ws.scene.vertex_rect(100).center())
    ws.view.viewport().grab()
    visible = len(ws.scene.item.label_cache)
    assert 0 < visible < 200  # only the boxes on screen
    # wheel zoom keeps the point under the cursor in place
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    pos = QPointF(300, 200)
    before = ws.view.mapToScene(pos.toPoint())
    event = QWheelEvent(
        pos, ws.view.viewport().mapToGlobal(pos), QPoint(0, 0), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
        False,
    )  # fmt: skip
    ws.view.wheelEvent(event)
    assert ws.view.scale_factor > 1.0
    after = ws.view.mapToScene(pos.toPoint())
    assert abs(after.x() - before.x()) < 3 and abs(after.y() - before.y()) < 3
    # dragging pans and does not select
    selected = ctx.selected_node
    bar = ws.view.verticalScrollBar().value()
    vp = ws.view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=QPoint(400, 400))
    qtbot.mouseMove(vp, QPoint(400, 300))
    qtbot.mouseMove(vp, QPoint(400, 200))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=QPoint(400, 200))
    assert ws.view.verticalScrollBar().value() > bar
    assert ctx.selected_node == selected
    # the minimap moves the view
    ws.canvas.minimap.mousePressEvent(_press(ws.canvas.minimap, 0.5, 0.95))
    assert ws.view.verticalScrollBar().value() > bar + 1000


def _press(widget, fx, fy):
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent

    pos = QPointF(widget.width() * fx, widget.height() * fy)
    return QMouseEvent(
        QEvent.Type.MouseButtonPress, pos, widget.mapToGlobal(pos), Qt.MouseButton.LeftButton,
        Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip


def test_layout_failure_is_reported_not_raised(qtbot, ws, ctx, conv_model, monkeypatch):
    graph = ModelGraph.load(conv_model)

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(lay, "compute", broken)
    ctx.set_model(graph, str(conv_model))
    qtbot.waitUntil(lambda: "could not be laid out" in ws.canvas.message.text(), timeout=5000)


def test_zoomed_out_cache_draws_the_same_picture(qtbot, ws, ctx, transformer_path, monkeypatch):
    from studio.ui.graph import items as scene_module

    open_model(qtbot, ws, ctx, transformer_path)
    ws.collapse_to_level(0)
    ws.view.set_scale(0.05)
    ws.view.centerOn(ws.scene.bounds.center())
    cached = ws.view.viewport().grab().toImage()
    assert ws.scene.item._cache  # the zoomed-out picture was cached
    monkeypatch.setattr(scene_module, "CACHE_MAX_PIXELS", 0)
    ws.scene.item.invalidate_cache()
    direct = ws.view.viewport().grab().toImage()
    assert not ws.scene.item._cache
    assert cached.size() == direct.size()
    differing = sum(
        1
        for x in range(0, cached.width(), 3)
        for y in range(0, cached.height(), 3)
        if cached.pixel(x, y) != direct.pixel(x, y)
    )
    assert differing < 0.01 * (cached.width() // 3) * (cached.height() // 3)
    # an overlay change drops the cache (colours are part of the picture)
    monkeypatch.setattr(scene_module, "CACHE_MAX_PIXELS", 6_000_000)
    ws.view.viewport().grab()
    generation = ws.scene.generation
    ws.show_overlay("MACs per node")
    assert ws.scene.generation > generation


def test_small_model_opens_readable_and_fit_still_fits(qtbot, ws, ctx):
    """demo_cnn (28 nodes) fitted into the window is too small for labels: it opens at a zoom
    where boxes carry their op types, showing the top of the graph; Fit does a true fit."""
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo_cnn.onnx"
    ws.resize(1200, 600)
    open_model(qtbot, ws, ctx, demo)
    view, scene = ws.view, ws.scene
    assert view.scale_factor >= styles.LOD_DETAIL
    visible = view.visible_scene_rect()
    top = min(range(scene.layout.size), key=lambda v: scene.vertex_rect(v).top())
    assert visible.contains(scene.vertex_rect(top))  # the graph's input is on screen
    assert visible.top() <= scene.bounds.top() + 20
    scene.item.label_cache.clear()
    view.viewport().grab()
    assert scene.item.label_cache  # labels are drawn at the opening zoom
    assert f"{round(view.scale_factor * 100)}%" in ws.canvas.info.text()
    ws.fit_button.click()
    assert view.scale_factor < styles.LOD_DETAIL
    fitted = view.visible_scene_rect()
    assert fitted.contains(scene.bounds.adjusted(1, 1, -1, -1))
