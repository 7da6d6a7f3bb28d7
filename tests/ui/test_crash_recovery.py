"""Crash recovery on every way in: an edit on the demo, autosaved, the studio SIGKILLed; opening
the model again (File > Open, or ``npu-studio MODEL``) offers the work back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from studio.core import project as proj
from studio.resources import demo_model_path
from studio.ui.shell import dialogs

ROOT = Path(__file__).resolve().parents[2]
DEMO = demo_model_path()
EDIT = {"htp_config": {"vtcm_mb": 4, "performance_mode": "burst"}}

STUDIO_SESSION = textwrap.dedent(
    f"""
    import sys, time
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication
    app = QApplication(sys.argv[:1])
    from studio.ui.shell.main_window import MainWindow
    win = MainWindow(settings=QSettings(sys.argv[2], QSettings.Format.IniFormat))
    win.show()
    win.open_path(sys.argv[1])
    end = time.time() + 60
    while win.ctx.graph is None and time.time() < end:
        app.processEvents(); time.sleep(0.01)
    win.ctx.project.update("backend_config", {EDIT!r})  # an edit, as the Backends page makes
    while time.time() < end:  # the window's own autosave timer writes the recovery file
        app.processEvents(); time.sleep(0.02)
        from studio.core.project import autosave_path
        if autosave_path(win.ctx.project).is_file():
            print("AUTOSAVED", autosave_path(win.ctx.project), flush=True)
            break
    while True:
        app.processEvents(); time.sleep(0.05)
    """
)


@pytest.fixture(scope="module")
def killed_session(tmp_path_factory):
    """A real studio process that edits the demo, autosaves, and is killed with SIGKILL (once)."""
    tmp_path = tmp_path_factory.mktemp("killed")
    data = tmp_path / "data"
    env = dict(os.environ, NPU_STUDIO_DATA_DIR=str(data), QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-c", STUDIO_SESSION, str(DEMO), str(tmp_path / "settings.ini")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("AUTOSAVED"), f"the studio did not autosave: {line!r}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    autosave = Path(line.split(" ", 1)[1].strip())
    assert autosave.is_file() and autosave.parent == data / "autosave"
    return autosave


@pytest.fixture
def crashed_session(killed_session, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(killed_session.parents[1]))
    return killed_session


def _window(qtbot, tmp_path):
    from studio.ui.shell.main_window import MainWindow

    win = MainWindow(settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    return win


@pytest.mark.parametrize("way_in", ["npu-studio MODEL", "File > Open"])
def test_opening_the_model_offers_the_killed_sessions_work(
    qtbot, tmp_path, monkeypatch, crashed_session, way_in
):
    assert proj.find_model_recovery(DEMO) == crashed_session
    asked = []
    monkeypatch.setattr(
        dialogs, "ask_restore_recovery", lambda parent, what, when: asked.append(what) or True
    )
    win = _window(qtbot, tmp_path)
    if way_in == "npu-studio MODEL":
        from studio.app import open_window

        open_window(win, [str(DEMO)])
    else:
        win.show()
        win.open_path(str(DEMO))
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=30000)
    assert asked == [f"{DEMO.name} (untitled project)"]
    project = win.ctx.project
    assert project.backend_config == EDIT and project.dirty and project.path is None
    assert "*" in win.windowTitle()
    project.dirty = False


def test_declined_recovery_starts_fresh_and_keeps_the_file(
    qtbot, tmp_path, crashed_session, no_blocking_dialogs
):
    win = _window(qtbot, tmp_path)
    win.show()
    win.open_path(str(DEMO))  # the autouse fixture answers "no"
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=30000)
    assert [n for n, _ in no_blocking_dialogs] == ["ask_restore_recovery"]
    assert win.ctx.project.backend_config == {} and crashed_session.is_file()


def test_a_model_newer_than_the_autosave_is_not_offered(tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    model = tmp_path / "m.onnx"
    model.write_bytes(DEMO.read_bytes())
    project = proj.Project.new(model)
    project.update("backend_config", EDIT)
    saved = project.autosave()
    assert proj.find_model_recovery(model) == saved
    later = time.time() + 5
    os.utime(model, (later, later))  # the model changed after the autosave
    assert proj.find_model_recovery(model) is None
    assert proj.find_model_recovery(DEMO) is None  # another model's autosave is not offered
