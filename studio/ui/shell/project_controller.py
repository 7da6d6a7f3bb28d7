"""Project handling for the main window: open, save, dirty state, autosave and recovery.

Why a controller of its own: the rules ("a model opened alone is an untitled project", "autosave
a few seconds after a change", "offer the autosave back when it is newer than the file", "ask
before losing work") are decisions, not layout; keeping them out of the window class keeps both
short and lets tests drive them without menus. Workspaces change ``ctx.project`` through
``Project.update`` (which sets ``dirty``) or push QUndoCommands; both are noticed here.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from studio.core import project as proj
from studio.core.errors import StudioError
from studio.ui.shell import dialogs

log = logging.getLogger(__name__)

AUTOSAVE_DELAY_MS = 3000
POLL_MS = 1000
MODEL_FILTER = (
    "ONNX models (*.onnx);;PyTorch / TFLite models to import (*.pt *.pt2 *.tflite);;"
    "npu-studio projects (*.npustudio);;All files (*)"
)


class ProjectController(QObject):
    """Owns ``ctx.project``; asks the window's loader to open the project's model."""

    title_changed = Signal(str)
    project_opened = Signal(object)  # Project

    def __init__(self, ctx: Any, window: QWidget, open_model: Any) -> None:
        super().__init__(window)
        self.ctx = ctx
        self.window = window
        self._open_model = open_model  # callable(path, input_shapes)
        self._autosave = QTimer(self)
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave.timeout.connect(self.autosave_now)
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._check_dirty)
        self._poll.start()
        self._was_dirty = False
        # Callables run before every save and autosave (e.g. record the window layout).
        self.before_save: list[Any] = []
        ctx.undo_stack.indexChanged.connect(self._on_edit)

    # ----- state ------------------------------------------------------------------------------
    @property
    def project(self) -> proj.Project | None:
        return self.ctx.project

    @property
    def dirty(self) -> bool:
        return bool(self.project is not None and self.project.dirty)

    def display_name(self) -> str:
        p = self.project
        if p is None:
            return ""
        if p.path is not None:
            return p.path.name
        return f"{Path(p.model_path).name} (untitled project)"

    def title(self) -> str:
        name = self.display_name()
        return f"{name}{'*' if self.dirty else ''} — npu-studio" if name else "npu-studio"

    def _emit_title(self) -> None:
        self.title_changed.emit(self.title())

    def mark_dirty(self) -> None:
        if self.project is not None:
            self.project.dirty = True
            self._changed()

    def _on_edit(self, _index: int) -> None:
        self.mark_dirty()

    def _check_dirty(self) -> None:
        if self.dirty != self._was_dirty:
            self._changed()

    def _changed(self) -> None:
        self._was_dirty = self.dirty
        if self.dirty:
            self._autosave.start()
        self._emit_title()

    def autosave_now(self) -> Path | None:
        p = self.project
        if p is None or not p.dirty:
            return None
        try:
            self._run_before_save()
            return p.autosave()
        except (OSError, StudioError) as exc:
            log.warning("autosave failed: %s", exc)
            self.ctx.status_message.emit(f"Autosave failed: {exc}")
            return None

    # ----- opening ----------------------------------------------------------------------------
    def open_model_file(self, path: str) -> None:
        """An ONNX file alone: a fresh untitled project around it, or the one a crash left.

        Every way in (File > Open, recent files, ``npu-studio MODEL``, the welcome page) comes
        here, so an autosaved untitled project on this model is always offered back."""
        recovery = proj.find_model_recovery(path)
        if recovery is not None and dialogs.ask_restore_recovery(
            self.window, f"{Path(path).name} (untitled project)", _when(recovery)
        ):
            try:
                project = proj.load_recovery(recovery)
            except StudioError as exc:
                dialogs.show_error(self.window, "Cannot restore", str(exc))
            else:
                self._set_project(project)
                self._open_model(str(project.model_path), project.input_shapes)
                return
        try:
            project = proj.Project.new(path, sha256="")  # hashed on the loader's thread
        except StudioError as exc:  # an unreadable model (the message names it)
            dialogs.show_error(self.window, "Cannot open model", str(exc))
            return
        self._set_project(project)
        self._open_model(str(project.model_path), project.input_shapes)

    def open_project_file(self, path: str) -> bool:
        """Open a .npustudio file, offering its autosave back when that is newer."""
        try:
            recovery = proj.find_recovery(path)
            if recovery is not None and dialogs.ask_restore_recovery(
                self.window, Path(path).name, _when(recovery)
            ):
                project = proj.load_recovery(recovery, path)
            else:
                project = proj.Project.load(path)
        except StudioError as exc:
            dialogs.show_error(self.window, "Cannot open project", str(exc))
            return False
        if not self._resolve_model(project):
            return False
        self._set_project(project)
        self._open_model(str(project.model_path), project.input_shapes)
        return True

    def _resolve_model(self, project: proj.Project) -> bool:
        """A moved or changed model: ask the user, relocate or accept; False means do not open."""
        check = project.check_model()
        while check.status != "ok":
            answer = dialogs.ask_model_problem(
                self.window, check.message, check.status == "missing"
            )
            if answer == "continue" and check.status == "changed":
                project.relocate_model(check.path, accept_changed=True)
                return True
            if answer != "locate":
                return False
            chosen = dialogs.ask_model_file(self.window, str(project.model_path.parent))
            if not chosen:
                return False
            try:
                check = project.relocate_model(chosen)
            except StudioError as exc:
                dialogs.show_error(self.window, "Cannot use that model", str(exc))
                return False
        return True

    def offer_orphan_recovery(self) -> bool:
        """At start-up: an untitled project autosaved before a crash can be restored."""
        orphans = proj.orphan_autosaves()
        if not orphans:
            return False
        newest = max(orphans, key=lambda p: p.stat().st_mtime)
        if not dialogs.ask_restore_recovery(self.window, "An untitled project", _when(newest)):
            return False
        return self._restore(newest)

    def restore_autosave(self, path: str | Path) -> bool:
        """Reopen one autosaved untitled project (the welcome page's recoverable work)."""
        if not self.confirm_close():
            return False
        return self._restore(path)

    def _restore(self, path: str | Path) -> bool:
        """Make an autosaved untitled project the current one and open its model."""
        try:
            project = proj.load_recovery(path)
        except StudioError as exc:
            dialogs.show_error(self.window, "Cannot restore", str(exc))
            return False
        self._set_project(project)
        if Path(project.model_path).is_file():
            self._open_model(str(project.model_path), project.input_shapes)
        return True

    def _set_project(self, project: proj.Project) -> None:
        self.ctx.project = project
        self.ctx.input_shapes = dict(project.input_shapes)
        self._was_dirty = project.dirty
        self.project_opened.emit(project)
        self._emit_title()

    # ----- saving -----------------------------------------------------------------------------
    def save(self) -> bool:
        p = self.project
        if p is None:
            return False
        if p.path is None:
            return self.save_as()
        return self._save_to(p.path)

    def save_as(self, path: str | None = None) -> bool:
        p = self.project
        if p is None:
            return False
        if path is None:
            suggested = str(Path(p.model_path).with_suffix(proj.PROJECT_SUFFIX))
            path, _ = QFileDialog.getSaveFileName(
                self.window, "Save project", suggested, "npu-studio projects (*.npustudio)"
            )
            if not path:
                return False
        return self._save_to(Path(path))

    def _run_before_save(self) -> None:
        for hook in self.before_save:
            hook()

    def _save_to(self, path: Path) -> bool:
        try:
            self._run_before_save()
            target = self.project.save(path)
        except (StudioError, OSError) as exc:
            dialogs.show_error(self.window, "Cannot save project", str(exc))
            return False
        self._autosave.stop()
        self.ctx.status_message.emit(f"Saved {target}")
        self._changed()
        return True

    def confirm_close(self) -> bool:
        """True when the window may close (saved, discarded or nothing to lose)."""
        if not self.dirty:
            return True
        answer = dialogs.ask_unsaved_changes(self.window, self.display_name())
        if answer == "cancel":
            return False
        if answer == "save":
            return self.save()
        proj.discard_recovery(self.project)
        return True


def _when(path: Path) -> str:
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime)
    return stamp.strftime("%Y-%m-%d %H:%M")
