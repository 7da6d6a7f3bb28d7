"""Drive the studio as a newcomer would: each workspace's main buttons, default settings.

Used by the click-through test (every press must end in a green job) and by
``scripts/screenshots.py`` (the README's pictures come from a real calibrate -> analyse ->
probe -> assign -> profile flow). Buttons are found by their visible text in each workspace, the
way a user finds them; dialogs that open are accepted with their defaults, file dialogs cancelled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QAbstractButton, QApplication, QDialog, QFileDialog, QMessageBox

# workspace key -> its main buttons, in the order a user presses them
MAIN_BUTTONS: dict[str, tuple[str, ...]] = {
    "quant": ("Calibrate", "Analyse"),
    "backends": ("Probe op support", "Assign"),
    "profiling": ("Start",),
    "deploy": ("Compile", "Run"),
}


@dataclass
class Press:
    """One button press and the jobs it started, with their final states."""

    workspace: str
    button: str
    jobs: list[tuple[str, str, str]]  # (title, state, message)
    dialogs: list[str]

    @property
    def green(self) -> bool:
        return bool(self.jobs) and all(state == "done" for _, state, _ in self.jobs)


class Walkthrough:
    """Presses buttons in ``window`` (a MainWindow) and waits for the jobs they start."""

    def __init__(self, window: Any, job_timeout_s: float = 600.0) -> None:
        self.window = window
        self.app = QApplication.instance()
        self.job_timeout_s = job_timeout_s
        self.dialogs: list[str] = []
        self._answer = QTimer()
        self._answer.setInterval(150)
        self._answer.timeout.connect(self._accept_dialogs)
        self._answer.start()

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.005)

    def _accept_dialogs(self) -> None:
        modal = QApplication.activeModalWidget()
        if modal is None:
            return
        if isinstance(modal, QFileDialog):
            self.dialogs.append(f"file dialog '{modal.windowTitle()}' cancelled")
            modal.reject()
        elif isinstance(modal, QMessageBox):
            self.dialogs.append(f"message '{modal.windowTitle()}': {modal.text()[:100]}")
            modal.accept()
        elif isinstance(modal, QDialog):
            self.dialogs.append(f"dialog '{modal.windowTitle()}' accepted with its defaults")
            modal.accept()

    def open(self, path: str, timeout_s: float = 60.0) -> None:
        self.window.open_path(path)
        end = time.monotonic() + timeout_s
        while self.window.ctx.graph is None and time.monotonic() < end:
            self.pump(0.05)
        self.pump(0.5)

    def button(self, key: str, label: str) -> QAbstractButton | None:
        page = self.window.workspaces.get(key)
        if page is None:
            return None
        found = []
        for b in page.findChildren(QAbstractButton):
            text = b.text().replace("&", "").replace("…", "").lstrip("▶ ").strip()
            if b.isVisible() and b.isEnabled() and not b.isCheckable() and text.startswith(label):
                found.append(
                    (text != label, b)
                )  # an exact label first ("Compile", not "Compile the…")
        return min(found, key=lambda f: f[0])[1] if found else None

    def _jobs(self) -> list[Any]:
        manager = self.window.ctx.jobs
        return list(manager.jobs) if manager is not None else []

    def wait_idle(self) -> None:
        end = time.monotonic() + self.job_timeout_s
        self.pump(0.5)
        while time.monotonic() < end and any(not j.is_final for j in self._jobs()):
            self.pump(0.1)
        self.pump(0.3)

    def press(self, key: str, label: str, wait_enabled_s: float = 30.0) -> Press | None:
        """Click ``label`` in workspace ``key`` (once it is enabled) and wait for its jobs."""
        self.window.show_workspace_key(key)
        self.pump(0.3)
        end = time.monotonic() + wait_enabled_s
        button = self.button(key, label)
        while button is None and time.monotonic() < end:
            self.pump(0.2)
            button = self.button(key, label)
        if button is None:
            return None
        before = {id(j) for j in self._jobs()}
        seen = len(self.dialogs)
        button.click()
        self.wait_idle()
        new = [j for j in self._jobs() if id(j) not in before]
        jobs = [
            (str(getattr(j, "title", "")), str(j.state), str(getattr(j, "error_message", "") or ""))
            for j in new
        ]
        return Press(key, button.text().strip(), jobs, self.dialogs[seen:])

    def run(self, keys: tuple[str, ...] | None = None) -> list[Press]:
        """Every workspace's main buttons, in order; buttons a workspace lacks are skipped."""
        presses = []
        for key in keys or tuple(MAIN_BUTTONS):
            for label in MAIN_BUTTONS.get(key, ()):
                done = self.press(key, label)
                if done is not None:
                    presses.append(done)
        return presses

    def stop(self) -> None:
        self._answer.stop()
