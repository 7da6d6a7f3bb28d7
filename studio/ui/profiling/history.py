"""Run history: the project's saved runs (``Project.runs``) or, without a project, this session's.

Records are read lazily from the project's runs folder and cached; a record that cannot be read
is listed with the reason instead of disappearing, so a user knows a file went missing. A run's
label is edited in place (double-click, F2 or the context menu) and the rename is undoable.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.profiling.records import ProfileRun
from studio.ui.profiling.commands import RenameRunCommand
from studio.ui.profiling.view_data import fmt_ms

LABEL_ROLE = Qt.ItemDataRole.UserRole + 1  # the run's label alone (the item shows two lines)


@dataclass
class HistoryEntry:
    id: str
    label: str
    backend: str
    created: str
    run: ProfileRun | None = None
    error: str = ""


class _WriteFailures(QObject):
    """Brings a background record write's failure from the writer thread to the UI thread."""

    failed = Signal(object, str)  # the run, the reason


class RunStore:
    """Where runs live: the open project (saved beside it) or an in-memory list.

    A project's run record is written on the project's writer thread (``Project.add_run(...,
    background=True)``); a write that fails calls ``on_write_failed(run, reason)`` on the UI
    thread, after the run has moved to this session's in-memory list.
    """

    def __init__(self, ctx: Any, on_write_failed: Any = None) -> None:
        self.ctx = ctx
        self._memory: list[ProfileRun] = []
        self._memory_owner: Any = None  # the project (or None) the in-memory runs belong to
        self._cache: dict[str, ProfileRun] = {}
        self._failures = _WriteFailures()
        self._failures.failed.connect(self._write_failed)
        self._on_write_failed = on_write_failed

    @property
    def project(self) -> Any:
        return getattr(self.ctx, "project", None)

    def add(self, run: ProfileRun) -> None:
        self._cache[run.id] = run
        project = self.project
        if project is None:
            self.keep_in_memory(run)
            return
        # the record is built on the writer thread too: run.to_json walks every layer row
        project.add_run(run.id, run.label, run.to_json, backend=run.backend, background=True)
        write = project.run_write(run.id)
        if write is not None:  # the callback runs on the writer thread: a queued signal
            write.add_done_callback(
                lambda done: (
                    done.exception() is not None
                    and self._failures.failed.emit(run, str(done.exception()))
                )
            )

    def _write_failed(self, run: ProfileRun, reason: str) -> None:
        project = self.project
        if project is not None:
            project.forget_run(run.id)
        self.keep_in_memory(run)
        if self._on_write_failed is not None:
            self._on_write_failed(run, reason)

    def keep_in_memory(self, run: ProfileRun) -> None:
        """Fallback when the project cannot store a run: list it for this session."""
        self._cache[run.id] = run
        self._forget_other_projects()
        self._memory = [r for r in self._memory if r.id != run.id] + [run]

    def _forget_other_projects(self) -> None:
        """In-memory runs belong to the project (or project-less session) they were made in."""
        if self._memory_owner is not self.project:
            self._memory = []
            self._memory_owner = self.project

    def entries(self) -> list[HistoryEntry]:
        self._forget_other_projects()
        memory = [HistoryEntry(r.id, r.label, r.backend, r.created, r) for r in self._memory]
        if self.project is None:
            return memory
        out = []
        for ref in self.project.runs:
            created = _dt.datetime.fromtimestamp(ref.created, _dt.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            entry = HistoryEntry(ref.id, ref.label, ref.backend, created)
            try:
                entry.run = self.get(ref.id)
            except StudioError as exc:
                entry.error = str(exc)
            out.append(entry)
        saved = {e.id for e in out}
        return out + [e for e in memory if e.id not in saved]

    def label(self, run_id: str) -> str:
        for entry in self.entries():
            if entry.id == run_id:
                return entry.label
        raise StudioError(f"no run '{run_id}' in the history")

    def rename(self, run_id: str, label: str) -> None:
        """Relabel a run where it lives: the project (saved with it) or this session's record."""
        label = label.strip()
        if not label:
            raise StudioError("a run label cannot be empty")
        project = self.project
        if project is not None and any(ref.id == run_id for ref in project.runs):
            project.rename_run(run_id, label)
        elif not any(r.id == run_id for r in self._memory):
            raise StudioError(f"no run '{run_id}' in the history")
        for run in (self._cache.get(run_id), *(r for r in self._memory if r.id == run_id)):
            if run is not None:
                run.label = label  # what exports and the comparison call it from now on

    def get(self, run_id: str) -> ProfileRun:
        if run_id in self._cache:
            return self._cache[run_id]
        for run in self._memory:
            if run.id == run_id:
                return run
        if self.project is None:
            raise StudioError(f"no run '{run_id}' in this session")
        run = ProfileRun.from_json(self.project.load_run(run_id))
        # A rename changes the project's label only (the record stays as measured): the
        # project's label wins, so exports and comparisons use the name the history shows.
        run.label = next((r.label for r in self.project.runs if r.id == run_id), run.label)
        self._cache[run_id] = run
        return run


class _LabelDelegate(QStyledItemDelegate):
    """Edits only the label line of an item; the rename itself goes through the panel (undo)."""

    def __init__(self, panel: RunHistoryPanel) -> None:
        super().__init__(panel.list)
        self.panel = panel

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:  # noqa: N802
        if isinstance(editor, QLineEdit):
            editor.setText(str(index.data(LABEL_ROLE) or ""))
            editor.selectAll()

    def setModelData(self, editor: QWidget, model, index: QModelIndex) -> None:  # noqa: N802
        if not isinstance(editor, QLineEdit):
            return
        run_id, text = index.data(Qt.ItemDataRole.UserRole), editor.text()
        # After the editor has closed: the rename rebuilds the list this editor belongs to.
        QTimer.singleShot(0, self.panel, lambda: self.panel.rename(run_id, text))


class RunHistoryPanel(QWidget):
    """List of runs; the current one is shown on the dashboard, a multi-selection is compared."""

    run_chosen = Signal(str)
    compare_requested = Signal(list)
    run_renamed = Signal(str)  # run id (after a rename, its undo or its redo)

    def __init__(self, store: RunStore, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.list = QListWidget(self)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setAlternatingRowColors(True)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.list.setItemDelegate(_LabelDelegate(self))
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.compare_btn = QPushButton("Compare selected", self)
        self.compare_btn.setEnabled(False)
        self.compare_btn.setToolTip("Select two or more runs (Ctrl/Shift+click) to compare them")
        self.compare_btn.clicked.connect(lambda: self.compare_requested.emit(self.selected_ids()))
        self.hint = QLabel("", self)
        self.hint.setObjectName("profilingMuted")
        self.hint.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("<b>Run history</b>", self))
        row.addStretch(1)
        row.addWidget(self.compare_btn)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.hint)
        self._silent = False

    def refresh(self, current: str = "") -> None:
        self._silent = True
        try:
            self.list.clear()
            for entry in reversed(self.store.entries()):  # newest first
                item = QListWidgetItem(self._text(entry))
                item.setData(Qt.ItemDataRole.UserRole, entry.id)
                item.setData(LABEL_ROLE, entry.label)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                item.setToolTip(
                    entry.error or f"{entry.id} · {entry.created}\nDouble-click or F2 to rename"
                )
                if entry.error:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                self.list.addItem(item)
                if entry.id == current:
                    self.list.setCurrentItem(item)
            where = "saved in the project" if self.store.project is not None else "this session"
            self.hint.setText(f"{self.list.count()} run(s), {where}")
        finally:
            self._silent = False

    @staticmethod
    def _text(entry: HistoryEntry) -> str:
        if entry.run is None:
            return f"{entry.label}  ·  unreadable"
        s = entry.run.stats
        when = entry.created[11:19] if len(entry.created) >= 19 else entry.created
        return f"{entry.label}\n{entry.backend.upper()} · p50 {fmt_ms(s.p50_ms)} · {when}"

    def current_id(self) -> str:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def rename(self, run_id: str, label: str) -> bool:
        """Rename ``run_id`` to ``label`` as one undoable edit; False when nothing changed."""
        label = label.strip()
        try:
            before = self.store.label(run_id)
        except StudioError as exc:
            self._report(str(exc))
            return False
        if not label or label == before:
            return False
        command = RenameRunCommand(run_id, before, label, self._apply_rename)
        stack = getattr(self.store.ctx, "undo_stack", None)
        if stack is not None:
            stack.push(command)
        else:
            command.redo()
        return True

    def _apply_rename(self, run_id: str, label: str) -> None:
        try:
            self.store.rename(run_id, label)
        except StudioError as exc:  # the run left the history (another project) meanwhile
            self._report(str(exc))
            return
        self.refresh(self.current_id())
        self.run_renamed.emit(run_id)

    def _report(self, message: str) -> None:
        show = getattr(self.store.ctx, "show_error", None)
        if show is not None:
            show("Cannot rename run", message)

    def _context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        menu = QMenu(self)
        if item is not None:
            menu.addAction("Rename…", lambda: self.list.editItem(item))
        compare = menu.addAction(
            "Compare selected", lambda: self.compare_requested.emit(self.selected_ids())
        )
        compare.setEnabled(len(self.selected_ids()) >= 2)
        self.context_menu = menu  # kept for tests
        menu.popup(self.list.viewport().mapToGlobal(pos))

    def selected_ids(self) -> list[str]:
        return [i.data(Qt.ItemDataRole.UserRole) for i in self.list.selectedItems()]

    def select_ids(self, ids: list[str]) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) in ids)

    def _current_changed(self, item: QListWidgetItem | None, _prev) -> None:
        if item is not None and not self._silent:
            self.run_chosen.emit(item.data(Qt.ItemDataRole.UserRole))

    def _selection_changed(self) -> None:
        self.compare_btn.setEnabled(len(self.selected_ids()) >= 2)
