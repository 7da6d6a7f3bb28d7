"""The graph as a picture: whole graph, real heat overlay from a real CPU profile, legend, PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QFileDialog

from studio.core.errors import StudioError
from studio.core.jobs.protocol import run_inline
from studio.core.model.graph import ModelGraph
from studio.core.profiling.job import profile_model
from studio.core.profiling.records import ProfileRun
from studio.ui.graph import colormaps, styles
from studio.ui.graph.export import graph_target
from studio.ui.graph.workspace import GraphWorkspace
from studio.ui.profiling.view_data import overlay_for
from studio.ui.shell.context import StudioContext
from studio.ui.widgets.theme import apply_theme

SHOTS = Path("/tmp/shots")


@pytest.fixture
def ws(qtbot):
    apply_theme(QApplication.instance())
    ctx = StudioContext()
    widget = GraphWorkspace(ctx)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    widget.shutdown()


def _open(qtbot, ws, path) -> ModelGraph:
    graph = ModelGraph.load(path)
    with qtbot.waitSignal(ws.layout_ready, timeout=20000):
        ws.ctx.set_model(graph, str(path))
    return graph


def _decode(data: bytes) -> QImage:
    image = QImage.fromData(data, "PNG")
    assert not image.isNull()
    return image.convertToFormat(QImage.Format.Format_RGB32)


def _pixels(image: QImage) -> np.ndarray:
    ptr = image.constBits()
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4)  # B, G, R, A


def _box_colour(image: QImage, ws, node_id: str, width: int, height: int) -> QColor:
    """The colour inside ``node_id``'s box in the picture (left of its centred label)."""
    target, scale = graph_target(ws.scene.bounds, width, height)
    rect = ws.scene.vertex_rect(ws.layout_data.vertex_of[node_id])
    bounds = ws.scene.bounds
    x = target.left() + (rect.left() + 5 - bounds.left()) * scale
    y = target.top() + (rect.center().y() - bounds.top()) * scale
    return QColor(image.pixel(QPointF(x, y).toPoint()))


def test_png_of_the_graph_with_a_measured_heat_overlay(
    qtbot, ws, conv_model, tmp_path, monkeypatch
):
    with pytest.raises(StudioError, match="no graph"):
        ws.render_png()
    assert ws.ctx.render_graph_png == ws.render_png  # registered for the other workspaces
    graph = _open(qtbot, ws, conv_model)
    req = {"model": str(conv_model), "backend": "cpu", "runs": 4, "warmup": 1, "layer_runs": 1}
    run = ProfileRun.from_json(run_inline(profile_model, req))
    overlay = overlay_for(run)
    assert overlay is not None and set(overlay.values) <= set(graph.node_by_id)
    ws.ctx.set_overlay(overlay.name, overlay.values, "inferno", overlay.unit)
    ws.select_node(next(iter(graph.node_by_id)))  # a selection must not show in the picture

    data = ws.ctx.render_graph_png(1200, 800)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = _decode(data)
    assert (image.width(), image.height()) == (1200, 800)
    pixels = _pixels(image)
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50  # not a uniform picture
    sel = styles.SELECTION
    ring = np.all(pixels[..., :3] == [sel.blue(), sel.green(), sel.red()], axis=-1)
    assert ws.scene.selected >= 0 and not ring.any()  # the selection is the user's, not drawn
    SHOTS.mkdir(parents=True, exist_ok=True)
    image.save(str(SHOTS / "graph_export_heat.png"))

    # The hottest node wears the top of the colour map, the coolest the bottom: real colours.
    table = colormaps.lut("inferno")
    hottest = max(overlay.values, key=overlay.values.get)
    coolest = min(overlay.values, key=overlay.values.get)
    top, bottom = QColor(*map(int, table[-1])), QColor(*map(int, table[0]))
    for node_id, want in ((hottest, top), (coolest, bottom)):
        got = _box_colour(image, ws, node_id, 1200, 800)
        assert max(abs(got.red() - want.red()), abs(got.green() - want.green())) <= 12, (
            node_id,
            got.name(),
            want.name(),
        )
    unmeasured = [n.id for n in graph.nodes if n.id not in overlay.values]
    if unmeasured:  # nodes ORT fused away show the no-data grey
        assert _box_colour(image, ws, unmeasured[0], 1200, 800) == styles.NO_DATA
    # the legend (bottom left) carries the colour bar: its top colour is in the picture there
    legend_strip = pixels[-110:, :300, :3].reshape(-1, 3)
    near_top = np.abs(legend_strip.astype(int) - [top.blue(), top.green(), top.red()]).max(1)
    assert (near_top <= 12).any()

    # "Export graph as PNG…" on the toolbar writes the same picture to the chosen file.
    out = tmp_path / "graph.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    with qtbot.waitSignal(ws.ctx.status_message, timeout=5000):
        ws.png_button.click()
    written = _decode(out.read_bytes())
    assert (written.width(), written.height()) == (1600, 1000)
    assert any(a.text() == "Export graph as PNG…" for a in ws.context_menu(-1).actions())
    ws.shutdown()
    assert ws.ctx.render_graph_png is None  # a closed view offers no picture


def test_a_tall_graph_is_cut_into_columns_between_rows(qtbot, ws, tmp_path):
    from studio.core.model.synthetic import transformer_like
    from studio.ui.graph.export import plan_picture
    from tests import builders

    path = builders.save(transformer_like(600), tmp_path / "t600.onnx")
    _open(qtbot, ws, path)
    ws.show_overlay("MACs per node")
    bounds, boxes = ws.scene.bounds, ws.layout_data.boxes
    _, whole_scale = graph_target(bounds, 1600, 1000)
    plan, scale = plan_picture(bounds, boxes, 1600, 1000)
    assert len(plan) > 1 and scale >= 3 * whole_scale  # fitted whole it would be unreadable
    slices = [source for source, _ in plan]
    assert slices[0].top() == bounds.top() and slices[-1].bottom() == bounds.bottom()
    for before, after in zip(slices, slices[1:], strict=False):
        assert before.bottom() == after.top()  # nothing left out, nothing twice
        cut = after.top()
        crossed = (boxes[:, 1] < cut) & (cut < boxes[:, 1] + boxes[:, 3])
        assert not crossed.any()  # cut between rows: no box is split
    targets = [target for _, target in plan]
    assert all(a.right() < b.left() for a, b in zip(targets, targets[1:], strict=False))
    assert all(t.bottom() <= 1000 - 110 and t.left() >= 0 and t.right() <= 1600 for t in targets)

    image = _decode(ws.render_png())
    pixels = _pixels(image)
    top = colormaps.lut("magma")[-1].astype(int)[::-1]  # B, G, R
    hot = np.abs(pixels[..., :3].astype(int) - top).max(axis=-1) <= 12
    columns_with_heat = sum(
        hot[int(t.top()) : int(t.bottom()), int(t.left()) : int(t.right())].any() for t in targets
    )
    assert columns_with_heat >= 2  # the overlay is drawn across the columns, not just one
    image.save(str(SHOTS / "graph_export_columns.png"))
