"""The main window's menus and actions: File, Edit, View, Help.

Kept apart from the window class so that the window reads as "what is on screen" and this module
as "what the user can do" (and the shortcuts dialog is built from these very actions).
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from studio.ui.shell import dialogs


def _action(window: QMainWindow, text: str, slot: Any, keys: Any = None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if keys is not None:
        action.setShortcuts(keys if isinstance(keys, list) else [QKeySequence(keys)])
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    return action


class MainMenus:
    """Builds the menu bar of ``window`` (a studio MainWindow) and keeps its actions."""

    def __init__(self, window: Any) -> None:
        self.window = window
        bar = window.menuBar()
        w = window
        self.open_action = _action(
            w,
            "&Open…",
            w.open_dialog,
            QKeySequence.StandardKey.Open,
            "Open an ONNX model or an npu-studio project",
        )
        self.save_action = _action(
            w, "&Save project", w.projects.save, QKeySequence.StandardKey.Save
        )
        self.save_as_action = _action(
            w, "Save project &as…", lambda: w.projects.save_as(), QKeySequence("Ctrl+Shift+S")
        )
        self.quit_action = _action(w, "&Quit", w.close, QKeySequence.StandardKey.Quit)
        self.recent_menu = QMenu("Open &recent", w)
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addMenu(self.recent_menu)
        from studio.ui.shell.importing import ask_python

        self.import_python_action = _action(
            w,
            "Python for PyTorch &import…",
            lambda: ask_python(w),
            None,
            "The interpreter that converts .pt/.pt2 files (one with torch, onnx, onnxscript)",
        )
        file_menu.addAction(self.import_python_action)
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        stack = w.ctx.undo_stack
        self.undo_action = stack.createUndoAction(w, "&Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.redo_action = stack.createRedoAction(w, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)

        self.view_menu = bar.addMenu("&View")
        self.workspace_actions: list[QAction] = []
        for index, title in enumerate(w.workspace_titles()):
            action = _action(
                w,
                f"{title} workspace",
                lambda _c=False, i=index: w.show_workspace(i),
                QKeySequence(f"Ctrl+{index + 1}"),
            )
            self.workspace_actions.append(action)
            self.view_menu.addAction(action)
        self.welcome_action = _action(
            w, "&Welcome page", w.show_welcome, QKeySequence("Ctrl+0"), "Open, demo, recent work"
        )
        self.view_menu.addAction(self.welcome_action)
        self.view_menu.addSeparator()
        for dock in w.docks():
            toggle = dock.toggleViewAction()
            self.view_menu.addAction(toggle)

        help_menu = bar.addMenu("&Help")
        self.shortcuts_action = _action(
            w, "&Keyboard shortcuts", self.show_shortcuts, QKeySequence("Ctrl+/")
        )
        self.about_action = _action(w, "&About npu-studio", lambda: dialogs.show_about(w))
        help_menu.addAction(self.shortcuts_action)
        self.diagnostics_action = _action(
            w,
            "&Diagnostics…",
            self.show_diagnostics,
            tip="QNN tools and libraries, versions, adb: what is missing and what to do",
        )
        help_menu.addAction(self.diagnostics_action)
        help_menu.addAction(self.about_action)
        for action in (
            self.open_action,
            self.save_action,
            self.save_as_action,
            self.quit_action,
            self.undo_action,
            self.redo_action,
            self.shortcuts_action,
        ):
            w.addAction(action)  # shortcuts work even while the menu bar is hidden
        w.recent.changed.connect(self.rebuild_recent)
        self.rebuild_recent()

    def rebuild_recent(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = self.window.recent.files()
        for path in files:
            action = menu.addAction(os.path.basename(path))
            action.setToolTip(path)
            action.setStatusTip(path)
            action.setData(path)
            action.setEnabled(os.path.exists(path))
            action.triggered.connect(lambda _c=False, p=path: self.window.open_path(p))
        if files:
            menu.addSeparator()
            menu.addAction("Clear list", self.window.recent.clear)
        else:
            empty = menu.addAction("No recent files")
            empty.setEnabled(False)

    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(action, keys) for every action with a shortcut, window and workspaces alike."""
        rows: dict[str, str] = {}
        for action in self.window.findChildren(QAction):
            keys = ", ".join(
                k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()
            )
            text = action.text().replace("&", "").rstrip("…")
            if keys and text and text not in rows:
                rows[text] = keys
        return sorted(rows.items())

    def show_shortcuts(self) -> dialogs.ShortcutsDialog:
        dialog = dialogs.ShortcutsDialog(self.shortcut_rows(), self.window)
        dialog.open()
        return dialog

    def show_diagnostics(self) -> object:
        from studio.ui.deploy.diagnostics import show_diagnostics

        return show_diagnostics(self.window)
