"""The one target device: status bar selector, saved in the project, sessions follow it, and the
device estimate as a graph overlay."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QSettings

from studio.core.engine.sessions import TARGET_ENV, htp_target
from studio.ui.shell import dialogs
from studio.ui.shell.main_window import MainWindow


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NPU_STUDIO_NO_WEBENGINE", "1")
    monkeypatch.delenv(TARGET_ENV, raising=False)
    monkeypatch.setattr(dialogs, "show_error", lambda *a, **k: None)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings)
    window.resize(1500, 950)
    window.show()
    yield window
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: "discard")
    window.close()
    window.deleteLater()


def test_target_in_status_bar_saved_in_project_and_used_by_sessions(
    qtbot, win, conv_model, tmp_path
):
    graph = win.workspaces["graph"]
    with qtbot.waitSignal(graph.layout_ready, timeout=20000):
        win.open_path(str(conv_model))
    sel = win.target
    assert sel.combo.currentText() == "Samsung Galaxy S24"  # the default target, shown
    assert htp_target()["soc_model"] == "57"
    sel.combo.setCurrentText("Samsung Galaxy S25")
    assert htp_target() == {"device": "Samsung Galaxy S25", "soc_model": "69", "htp_arch": "79"}
    assert win.ctx.project.target_device == "Samsung Galaxy S25" and win.ctx.project.dirty
    target = tmp_path / "p.npustudio"
    assert win.projects.save_as(str(target))
    assert json.loads(target.read_text())["target_device"] == "Samsung Galaxy S25"
    # the estimate: label in the status bar, per-node ms as the graph's overlay
    with qtbot.waitSignal(win.ctx.overlay_changed, timeout=20000) as sig:
        est = sel.estimate()
    name, values, _cmap, unit = sig.args
    assert est is not None and est.device == "Samsung Galaxy S25"
    assert "estimated" in sel.estimate_label.text() and "Samsung Galaxy S25" in name
    assert unit == "ms" and set(values) == {n.id for n in est.nodes}
    assert sum(values.values()) == pytest.approx(est.total_ms - est.overhead_ms)
    win.grab().save(str(tmp_path / "target.png"))
    # reopening the project restores its target
    sel.combo.setCurrentText("Samsung Galaxy S23")
    assert win.projects.open_project_file(str(target))
    assert sel.combo.currentText() == "Samsung Galaxy S25"
    assert htp_target()["device"] == "Samsung Galaxy S25"
