"""The welcome page: open, demo, recent files, recoverable work, the five steps one click each."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from studio.core import project as proj
from studio.resources import demo_model_path
from studio.ui.shell import dialogs
from studio.ui.shell.main_window import MainWindow

DEMO = demo_model_path()


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NPU_STUDIO_NO_WEBENGINE", "1")
    window = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1300, 850)
    window.show()
    yield window
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: "discard")
    window.close()
    window.deleteLater()


def test_first_start_shows_the_welcome_page_and_the_demo_opens_in_one_click(qtbot, win):
    page = win.welcome
    assert win.central.currentWidget() is page
    assert page.recent_list.item(0).text() == "Nothing opened yet."
    assert [b.text() for b in page.step_buttons.values()][:4] == [
        "1 · Open",
        "2 · Quantise",
        "3 · Assign",
        "4 · Profile",
    ]
    page.grab().save("/tmp/ship_welcome.png")
    page.demo_button.click()
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=30000)
    assert win.central.currentWidget() is win.tabs
    assert win.tabs.currentWidget() is win.workspaces["graph"]
    win.menus.welcome_action.trigger()  # back to the page: the demo is now a recent file
    assert win.central.currentWidget() is page
    assert page.recent_list.item(0).text().startswith(DEMO.name)


@pytest.mark.parametrize("key", ["quant", "backends", "profiling"])
def test_each_step_is_one_click(qtbot, win, key):
    win.welcome.step_buttons[key].click()  # no model yet: the demo opens, then the step
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=30000)
    assert win.central.currentWidget() is win.tabs
    assert win.tabs.currentWidget() is win.workspaces[key]


def test_open_step_asks_for_a_model(win, monkeypatch):
    asked = []
    monkeypatch.setattr(win, "open_dialog", lambda: asked.append(True))
    win.welcome.step_buttons["graph"].click()
    assert asked == [True]


def test_recoverable_work_is_listed_and_restored(qtbot, win):
    left = proj.Project.new(DEMO)
    left.update("backend_config", {"htp_config": {"vtcm_mb": 2}})
    autosave = left.autosave()  # what a crash leaves behind
    page = win.welcome
    page.refresh()
    item = page.recovery_list.item(0)
    assert item.text().startswith(f"{DEMO.name} (untitled project)")
    page._open_item(item)
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=30000)
    assert win.ctx.project.backend_config == {"htp_config": {"vtcm_mb": 2}}
    assert win.ctx.project.dirty and autosave.is_file()
    win.ctx.project.dirty = False
