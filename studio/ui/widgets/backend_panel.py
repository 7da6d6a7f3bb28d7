"""A panel listing the backends: available or not, the real reason, library, versions, notes.

The probe (a tiny real session per backend, in the worker process) runs off the UI thread; the
panel shows "probing..." until it answers, and "Probe again" re-runs it without the cache. On an
x86-64 host the HTP row says plainly that it is a simulation.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.core.engine.registry import BackendStatus, probe_backends
from studio.ui.jobs.background import Background
from studio.ui.widgets.table_model import ColumnsTableModel, Index

COLUMNS = ("Backend", "Available", "Reason / note", "Library", "Probe")


class BackendTableModel(ColumnsTableModel):
    """Rows are :class:`BackendStatus` values from the probe."""

    columns = COLUMNS

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.statuses: list[BackendStatus] = []

    def set_statuses(self, statuses: list[BackendStatus]) -> None:
        self.beginResetModel()
        self.statuses = list(statuses)
        self.endResetModel()

    def row_count(self) -> int:
        return len(self.statuses)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.statuses):
            return None
        status = self.statuses[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return f"{status.label} ({status.name})"
            if col == 1:
                text = "yes" if status.available else "no"
                return text + (" (simulated)" if status.simulated else "")
            if col == 2:
                return status.reason or status.note or ""
            if col == 3:
                if not status.library_path:
                    return ""
                return status.library_path + ("" if status.library_present else " (missing)")
            if col == 4:
                return "" if status.probe_s is None else f"{status.probe_s * 1000:.0f} ms"
        if role == Qt.ItemDataRole.ForegroundRole and col == 1:
            return QColor("#2e9d57") if status.available else QColor("#d64541")
        if role == Qt.ItemDataRole.ToolTipRole:
            parts = [status.reason or "", status.note or ""]
            parts.append(", ".join(f"{k} {v}" for k, v in status.versions.items()))
            return "\n".join(p for p in parts if p)
        return None


class BackendPanel(QWidget):
    """``BackendPanel(parent=None)``: the backend registry with live availability."""

    probed = Signal(object)  # list[BackendStatus], after each probe

    def __init__(self, parent: QWidget | None = None, *, auto_probe: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("BackendPanel")
        self.model = BackendTableModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(3, 220)
        self.status_label = QLabel("Backends not probed yet.", self)
        self.versions_label = QLabel(self)
        self.versions_label.setStyleSheet("color: #8a8f98;")
        self.note_label = QLabel(self)
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet("color: #b07d1a;")
        self.note_label.hide()
        self.probe_button = QPushButton("Probe again", self)
        self.probe_button.clicked.connect(lambda: self.probe(refresh=True))
        top = QHBoxLayout()
        top.addWidget(self.status_label, 1)
        top.addWidget(self.probe_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note_label)
        layout.addWidget(self.versions_label)
        self.background = Background(self)
        self.background.result.connect(self._on_done)
        self.background.error.connect(lambda _title, message, _details: self._on_failed(message))
        self.background.finished.connect(self._on_finished)
        if auto_probe:
            self.probe()

    @property
    def busy(self) -> bool:
        return self.background.busy

    def probe(self, refresh: bool = False) -> None:
        """Probe in the background (a worker process per probe; cached unless ``refresh``)."""
        if self.background.busy:
            return
        self.status_label.setText("Probing backends (a tiny session on each, in a worker)...")
        self.probe_button.setEnabled(False)
        self.background.start("Probe backends", lambda _ctx: probe_backends(refresh=refresh))

    def set_statuses(self, statuses: list[BackendStatus]) -> None:
        self.model.set_statuses(statuses)
        self.table.resizeRowsToContents()
        available = [s.name for s in statuses if s.available]
        self.status_label.setText(
            f"{len(available)} of {len(statuses)} backends available: {', '.join(available) or 'none'}"
        )
        notes = [f"{s.label}: {s.note}" for s in statuses if s.simulated and s.note]
        self.note_label.setText("\n".join(notes))
        self.note_label.setVisible(bool(notes))
        if statuses:
            self.versions_label.setText(
                "Versions: " + ", ".join(f"{k} {v}" for k, v in statuses[0].versions.items())
            )
        self.probed.emit(statuses)

    def _on_done(self, statuses: list[BackendStatus]) -> None:
        self.set_statuses(statuses)

    def _on_failed(self, message: str) -> None:
        self.status_label.setText(f"Probe failed: {message}")

    def _on_finished(self, _state: str) -> None:
        self.probe_button.setEnabled(True)

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the probe ends (tests, shutdown)."""
        return self.background.wait(msecs)
