"""Every workspace's main button pressed on the demo with default settings ends in a green job
(the newcomer's path: Calibrate, Analyse, Probe op support, Assign, Start profiling, ...)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from studio.resources import demo_model_path
from studio.ui.shell import dialogs
from studio.ui.shell.main_window import MainWindow
from studio.ui.shell.walkthrough import MAIN_BUTTONS, Walkthrough


@pytest.mark.slow
def test_every_main_button_on_the_demo_is_green(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NPU_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NPU_STUDIO_NO_WEBENGINE", "1")
    monkeypatch.chdir(tmp_path)  # a folder with no calibration files in it
    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, t, m, d="": errors.append((t, m)))
    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win.resize(1500, 950)
    win.show()
    walk = Walkthrough(win, job_timeout_s=600)
    try:
        walk.open(str(demo_model_path()))
        assert win.ctx.graph is not None
        presses = walk.run()
    finally:
        walk.stop()
        win.ctx.project.dirty = False
        win.close()
    pressed = {(p.workspace, p.button.replace("…", "").lstrip("▶ ").strip()) for p in presses}
    expected = {(k, b) for k, labels in MAIN_BUTTONS.items() if k in win.workspaces for b in labels}
    assert {(k, b.split()[0]) for k, b in expected} <= {(k, b.split()[0]) for k, b in pressed}
    for press in presses:
        assert press.green, f"[{press.workspace}] {press.button}: {press.jobs} {press.dialogs}"
    assert errors == []
