"""The main window: workspaces, docks, opening (menu, drop, recent), errors, projects, closing."""

from __future__ import annotations

import os

import onnx
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QUndoCommand

from studio.core import project as proj
from studio.ui.graph.workspace import GraphWorkspace
from studio.ui.shell import dialogs
from studio.ui.shell.main_window import MainWindow
from tests import bad_models


@pytest.fixture
def errors(monkeypatch):
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, t, m, d="": shown.append((t, m)))
    return shown


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch, errors):
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NPU_STUDIO_NO_WEBENGINE", "1")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings)  # not qtbot.addWidget: it closes before our teardown runs
    window.resize(1500, 950)
    window.show()
    yield window
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: "discard")
    window.close()
    window.deleteLater()


def graph_ws(win) -> GraphWorkspace:
    return win.workspaces["graph"]


def open_and_wait(qtbot, win, path):
    with qtbot.waitSignal(graph_ws(win).layout_ready, timeout=20000):
        win.open_path(str(path))


def test_workspaces_docks_and_menus(win):
    titles = [win.tabs.tabText(i) for i in range(win.tabs.count())]
    assert titles == ["Graph", "Quantization", "Backends", "Profiling", "Deploy"]
    assert isinstance(graph_ws(win), GraphWorkspace)
    assert win.ctx.jobs is not None
    menus = [a.text().replace("&", "") for a in win.menuBar().actions()]
    assert menus == ["File", "Edit", "View", "Help"]
    view_items = [a.text() for a in win.menus.view_menu.actions()]
    assert "Jobs" in view_items and "History" in view_items
    win.menus.workspace_actions[3].trigger()
    assert win.tabs.currentIndex() == 3
    rows = dict(win.menus.shortcut_rows())
    assert rows["Open"] == "Ctrl+O"
    assert rows["Save project"] == "Ctrl+S"
    assert rows["Undo"] == "Ctrl+Z"
    assert rows["Redo"].startswith("Ctrl+Shift+Z")
    assert rows["Find node"] == "Ctrl+F"
    assert rows["Next match"] == "F3"
    dialog = win.menus.show_shortcuts()
    assert dialog.tree.topLevelItemCount() == len(rows)
    dialog.close()
    win.jobs_dock.toggleViewAction().trigger()
    assert win.jobs_dock.isHidden()


def test_open_model_loads_off_thread_and_remembers(qtbot, win, conv_model):
    open_and_wait(qtbot, win, conv_model)
    assert win.ctx.graph is not None and len(win.ctx.graph.nodes) == 8
    assert win.ctx.model_path == str(conv_model)
    assert win.recent.files() == [os.path.abspath(conv_model)]
    assert "small_cnn" in win.model_label.text() and "8 nodes" in win.model_label.text()
    assert win.windowTitle().startswith("small_cnn.onnx (untitled project)")
    recent = [a for a in win.menus.recent_menu.actions() if a.data()]
    assert [a.text() for a in recent] == ["small_cnn.onnx"]
    os.makedirs("/tmp/shots", exist_ok=True)
    win.grab().save("/tmp/shots/main_window.png")


@pytest.mark.parametrize("case", ["png", "truncated", "cycle"])
def test_bad_file_is_an_error_dialog(qtbot, win, errors, tmp_path, case):
    make, expect = bad_models.CASES[case]
    path = make(tmp_path)
    win.open_path(str(path))
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    title, message = errors[0]
    assert title == "Cannot open model"
    assert expect.lower() in message.lower() and "Traceback" not in message
    assert win.ctx.graph is None
    win.open_path(str(tmp_path / "gone.onnx"))
    assert "does not exist" in errors[-1][1]


def _mime(path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def test_drag_and_drop(qtbot, win, conv_model, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    # the events do not own their QMimeData: keep it alive for as long as they are used
    text_mime, model_mime, drop_mime = _mime(text), _mime(conv_model), _mime(conv_model)
    enter = QDragEnterEvent(
        QPointF(20, 20).toPoint(), Qt.DropAction.CopyAction, text_mime,
        Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    win.dragEnterEvent(enter)
    assert not enter.isAccepted()
    enter = QDragEnterEvent(
        QPointF(20, 20).toPoint(), Qt.DropAction.CopyAction, model_mime,
        Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    win.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(20, 20), Qt.DropAction.CopyAction, drop_mime,
        Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    with qtbot.waitSignal(graph_ws(win).layout_ready, timeout=20000):
        win.dropEvent(drop)
    assert win.ctx.model_path == str(conv_model)


def test_recent_files_in_temp_settings(qtbot, win, conv_model, tmp_path):
    missing = tmp_path / "was_here.onnx"
    win.recent.add(missing)
    win.recent.add(conv_model)
    actions = [a for a in win.menus.recent_menu.actions() if a.data()]
    assert [a.data() for a in actions] == [str(conv_model), str(missing)]
    assert actions[0].isEnabled() and not actions[1].isEnabled()
    with qtbot.waitSignal(graph_ws(win).layout_ready, timeout=20000):
        actions[0].trigger()
    assert win.ctx.model_path == str(conv_model)
    reopened = MainWindow(win.settings)
    qtbot.addWidget(reopened)
    assert reopened.recent.files()[0] == str(conv_model)
    reopened.close()


class _Edit(QUndoCommand):
    def __init__(self, box):
        super().__init__("edit")
        self.box = box

    def redo(self):
        self.box.append(1)

    def undo(self):
        self.box.pop()


def test_project_dirty_save_autosave_recover(qtbot, win, conv_model, tmp_path, monkeypatch):
    open_and_wait(qtbot, win, conv_model)
    box: list[int] = []
    win.ctx.undo_stack.push(_Edit(box))
    assert box == [1]
    assert win.menus.undo_action.isEnabled()
    assert win.windowTitle().startswith("small_cnn.onnx (untitled project)*")
    target = tmp_path / "work.npustudio"
    assert win.projects.save_as(str(target))
    assert target.is_file() and "*" not in win.windowTitle()
    assert win.windowTitle().startswith("work.npustudio")
    win.menus.undo_action.trigger()
    assert box == []
    assert "*" in win.windowTitle()
    saved = win.projects.autosave_now()
    assert saved is not None and saved.is_file()
    # as after a crash (nothing asked, the autosave left behind), reopening offers it back
    asked = []
    monkeypatch.setattr(dialogs, "ask_restore_recovery", lambda *a: asked.append(a) or True)
    win.ctx.project.dirty = False
    os.utime(saved, None)
    with qtbot.waitSignal(graph_ws(win).layout_ready, timeout=20000):
        win.open_path(str(target))
    assert asked and win.ctx.project.dirty
    assert win.ctx.project.path == target.resolve()


def test_close_with_unsaved_changes_asks(qtbot, win, conv_model, monkeypatch):
    open_and_wait(qtbot, win, conv_model)
    win.projects.mark_dirty()
    answers = ["cancel"]
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: answers[0])
    assert not win.close()
    assert win.isVisible()
    answers[0] = "discard"
    assert win.close()
    assert proj.find_recovery is not None


def test_netron_stops_when_window_closes(qtbot, win, conv_model):
    open_and_wait(qtbot, win, conv_model)
    ws = graph_ws(win)
    with qtbot.waitSignal(ws.netron.started, timeout=10000):
        ws.tabs.setCurrentWidget(ws.netron)
    address = ws.netron.server.address
    assert address[0] == "127.0.0.1"
    import urllib.request

    assert ws.netron.server.running()
    with urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/", timeout=5) as response:
        assert response.status == 200
    assert win.close()
    assert not ws.netron.server.running()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/", timeout=2)


def test_moved_model_is_located_and_changed_model_is_asked_about(
    qtbot, win, conv_model, tmp_path, monkeypatch
):
    project = proj.Project.new(conv_model)
    saved = project.save(tmp_path / "moved.npustudio")
    moved = tmp_path / "elsewhere" / "small_cnn.onnx"
    moved.parent.mkdir()
    conv_model.rename(moved)
    asked: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        dialogs,
        "ask_model_problem",
        lambda _w, message, missing: asked.append((message, missing)) or "locate",
    )
    monkeypatch.setattr(dialogs, "ask_model_file", lambda *a: str(moved))
    with qtbot.waitSignal(graph_ws(win).layout_ready, timeout=20000):
        assert win.projects.open_project_file(str(saved))
    assert asked and asked[0][1] is True and "missing" in asked[0][0]
    assert win.ctx.project.model_path == moved.resolve() and win.ctx.project.dirty

    # The model changes on disk: the user is asked, and "cancel" opens nothing.
    win.projects.save()
    changed = onnx.load(str(moved))
    changed.doc_string = "re-exported"  # same graph, different bytes
    onnx.save(changed, str(moved))
    asked.clear()
    monkeypatch.setattr(
        dialogs, "ask_model_problem", lambda _w, m, missing: asked.append((m, missing)) or "cancel"
    )
    assert not win.projects.open_project_file(str(saved))
    assert asked and asked[0][1] is False and "changed" in asked[0][0]
    monkeypatch.setattr(dialogs, "ask_model_problem", lambda *a: "continue")
    with qtbot.waitSignal(graph_ws(win).layout_ready, timeout=20000):
        assert win.projects.open_project_file(str(saved))
    assert win.ctx.project.check_model().status == "ok"  # the new hash is recorded


def test_jobs_dock_starts_compact_and_its_height_is_remembered(qtbot, win, tmp_path, monkeypatch):
    from studio.ui.shell.main_window import DOCK_HEIGHT

    dock = win.jobs_dock
    qtbot.wait(100)  # the first layout pass after show
    assert 0 < dock.height() <= DOCK_HEIGHT + 20  # not ~200 px squeezing every workspace
    content = dock.widget()
    table, log_view = content.table, content.log_view
    # the job table and the selected job's log sit side by side, both still usable
    assert log_view.mapTo(content, log_view.rect().topLeft()).x() > table.width()
    assert table.height() >= 48 and log_view.height() >= 32
    # a height the user chose comes back with the window state
    win.resizeDocks([dock], [260], Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: dock.height() >= DOCK_HEIGHT + 40)
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: "discard")
    win.close()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    again = MainWindow(settings)
    again.resize(1500, 950)
    again.show()
    try:
        qtbot.wait(100)
        assert abs(again.jobs_dock.height() - dock.height()) <= 10
    finally:
        again.close()
        again.deleteLater()


def test_opening_another_model_starts_a_fresh_undo_history(qtbot, win, conv_model, tiny_model):
    open_and_wait(qtbot, win, conv_model)
    box: list[int] = []
    win.ctx.undo_stack.push(_Edit(box))
    assert win.ctx.undo_stack.count() == 1
    open_and_wait(qtbot, win, tiny_model)
    assert win.ctx.undo_stack.count() == 0 and not win.menus.undo_action.isEnabled()


def test_project_remembers_overlay_badges_and_workspace(qtbot, win, conv_model, tmp_path, qapp):
    open_and_wait(qtbot, win, conv_model)
    graph = win.ctx.graph
    heat = {n.id: float(i + 1) for i, n in enumerate(graph.nodes)}
    win.ctx.set_overlay("cycles", heat, "inferno", "cycles", kind="emulated", source="run 1")
    win.ctx.set_badges("backend", {graph.nodes[0].id: "HTP"})
    win.show_workspace(3)
    target = tmp_path / "view.npustudio"
    assert win.projects.save_as(str(target))
    saved = proj.Project.load(target)
    assert saved.overlays["active"]["name"] == "cycles"
    assert saved.overlays["active"]["values"] == heat
    assert (saved.overlays["active"]["kind"], saved.overlays["active"]["source"]) == (
        "emulated",
        "run 1",
    )
    assert saved.overlays["badges"]["backend"] == {graph.nodes[0].id: "HTP"}
    assert saved.ui["workspace"] == 3 and saved.ui["window_state"]

    # A fresh window on the same project shows the same overlay and workspace again.
    other = MainWindow(settings=QSettings(str(tmp_path / "other.ini"), QSettings.Format.IniFormat))
    seen: list[tuple[str, dict]] = []
    other.ctx.overlay_changed.connect(lambda name, values, *_: seen.append((name, values)))
    badges: list[tuple[str, dict]] = []
    other.ctx.badges_changed.connect(lambda name, b: badges.append((name, b)))
    try:
        with qtbot.waitSignal(other.ctx.model_changed, timeout=20000):
            other.open_path(str(target))
        assert seen and seen[-1] == ("cycles", heat)
        assert [b for b in badges if b[0] == "backend"][-1] == (
            "backend",
            {graph.nodes[0].id: "HTP"},
        )
        other_graph = other.workspaces["graph"]
        shown = other_graph.overlays["cycles"]  # what the graph draws knows what its numbers are
        assert (shown.kind, shown.source, shown.unit) == ("emulated", "run 1", "cycles")
        assert other_graph.badge_sets.get("backend") == {graph.nodes[0].id: "HTP"}
        assert other.tabs.currentIndex() == 3
        assert not other.ctx.project.dirty  # showing is not editing
    finally:
        other.projects.confirm_close = lambda: True
        other.close()
        other.deleteLater()


def test_graph_is_drawn_before_its_shapes_and_updated_when_they_arrive(
    qtbot, win, conv_model, monkeypatch
):
    import threading

    from studio.ui.shell import main_window, model_loader

    ws = graph_ws(win)
    seen = {}
    looked = threading.Event()  # the second stage waits until the preview has been inspected

    def held_complete(graph):
        looked.wait(20)
        return model_loader.complete_model_graph(graph)

    monkeypatch.setattr(main_window, "complete_model_graph", held_complete)

    def on_drawn():
        if "drawn" in seen:
            return
        graph = ws.graph
        vertex = ws.layout_data.vertex_of["/stem/Conv"]
        ws.select_vertex(vertex)
        seen.update(
            drawn=True,
            pending=graph.shapes_pending,
            ctx_graph=win.ctx.graph,
            subtext=ws.scene.subtext(vertex),
            macs=ws.properties.rows()["Statistics/MACs"],
            info=ws.canvas.info.text(),
        )
        looked.set()

    ws.drawn.connect(on_drawn)
    open_and_wait(qtbot, win, conv_model)
    # drawn: the preview, before shape inference and statistics ran
    assert seen["pending"] and seen["ctx_graph"] is None
    assert seen["subtext"] == "…" and "inferring shapes" in seen["macs"]
    assert "inferring shapes" in seen["info"]
    # layout_ready: the same graph, complete, the view updated without a second layout
    graph = win.ctx.graph
    assert graph is ws.graph and not graph.shapes_pending
    vertex = ws.layout_data.vertex_of["/stem/Conv"]
    assert ws.scene.subtext(vertex) == "1×8×32×32"
    macs = ws.properties.rows()["Statistics/MACs"].split()[0]
    assert int(macs.replace(",", "")) == graph.node_by_id["/stem/Conv"].macs > 0
    assert "inferring shapes" not in ws.canvas.info.text()


def test_a_model_the_checker_refuses_after_its_preview_is_an_error(qtbot, win, errors, conv_model):
    bad = conv_model.parent / "bad.onnx"
    bad.write_bytes(conv_model.read_bytes().replace(b"Relu", b"Relx"))
    ws = graph_ws(win)
    with qtbot.waitSignal(ws.drawn, timeout=20000):
        win.open_path(str(bad))
    qtbot.waitUntil(lambda: bool(errors), timeout=20000)
    assert "checker" in errors[-1][1] and "bad.onnx" in errors[-1][1]
    assert win.ctx.graph is None and ws.graph is None  # the preview is gone


def test_closing_while_shapes_are_inferred_drops_the_late_result(qtbot, win, conv_model):
    ws = graph_ws(win)
    with qtbot.waitSignal(ws.drawn, timeout=20000):
        win.open_path(str(conv_model))
    win.close()  # the second stage is running or about to: its result must find no window
    qtbot.wait(800)  # pytest-qt fails the test on an exception raised in a slot
    assert win._completing is None


def test_a_dock_gaining_content_does_not_shrink_the_workspaces(qtbot, win):
    """Bottom docks keep their height when a panel grows (a probe's notes, more rows).

    Before, the dock area followed its contents' minimum size: a probe result with notes grew
    it by a row and every plot of the Profiling dashboard was re-laid out and repainted at once.
    """
    from studio.core.engine.registry import BackendStatus

    qtbot.waitExposed(win)
    before = win.centralWidget().height()
    note = "simulated on this host: " + "wall-clock times are the host's, not a phone's. " * 3
    statuses = [
        BackendStatus(f"b{i}", f"Backend {i}", True, simulated=True, note=note) for i in range(6)
    ]
    win.backend_dock.widget().set_statuses(statuses)
    qtbot.wait(50)
    assert win.backend_dock.widget().note_label.isVisibleTo(win.backend_dock.widget())
    assert win.centralWidget().height() == before
