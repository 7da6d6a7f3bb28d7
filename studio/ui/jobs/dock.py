"""The Jobs dock: every queued, running and finished job, its progress, log, error and a cancel.

A thin view over :class:`studio.ui.jobs.manager.JobManager`: a table model over ``manager.jobs`` (progress
drawn as a bar by a delegate), and a detail pane for the selected job with its log and error text.
The main window wraps it in a QDockWidget; it is a plain QWidget so tests can show it alone.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.ui.jobs.manager import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobHandle, JobManager
from studio.ui.widgets.table_model import ColumnsTableModel, Index

COLUMNS = ("Job", "State", "Progress", "Stage", "Time")
PROGRESS_COL = 2
_STATE_COLOURS = {
    QUEUED: QColor("#8a8f98"),
    RUNNING: QColor("#2f7de1"),
    DONE: QColor("#2e9d57"),
    FAILED: QColor("#d64541"),
    CANCELLED: QColor("#b07d1a"),
}


LOG_FLUSH_MS = 50  # the log pane takes new lines at most this often


class JobTableModel(ColumnsTableModel):
    """Rows are ``manager.jobs`` in submission order (newest last)."""

    columns = COLUMNS

    def __init__(self, manager: JobManager, parent: Any = None) -> None:
        super().__init__(parent)
        self.manager = manager
        manager.job_added.connect(self._on_added)
        manager.job_changed.connect(self._on_changed)
        manager.job_finished.connect(self._on_changed)

    def row_count(self) -> int:
        return len(self.manager.jobs)

    def job_at(self, row: int) -> JobHandle | None:
        return self.manager.jobs[row] if 0 <= row < len(self.manager.jobs) else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        job = self.job_at(index.row())
        if job is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return job.title
            if col == 1:
                return job.state
            if col == PROGRESS_COL:
                return f"{job.fraction * 100:.0f}%"
            if col == 3:
                return (
                    job.error_message.splitlines()[0]
                    if job.state == FAILED
                    else (job.text or job.stage)
                )
            if col == 4:
                return f"{job.elapsed_s():.1f} s" if job.started_at else ""
        if role == Qt.ItemDataRole.UserRole and col == PROGRESS_COL:
            return job.fraction
        if role == Qt.ItemDataRole.ForegroundRole and col == 1:
            return _STATE_COLOURS.get(job.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return job.error_message if job.state == FAILED else f"{job.kind} (job {job.id})"
        return None

    def _on_added(self, job: JobHandle) -> None:
        row = self.manager.jobs.index(job)
        self.beginInsertRows(QModelIndex(), row, row)
        self.endInsertRows()

    def _on_changed(self, job: JobHandle) -> None:
        if job in self.manager.jobs:
            row = self.manager.jobs.index(job)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def refresh(self) -> None:
        self.beginResetModel()
        self.endResetModel()


class ProgressDelegate(QStyledItemDelegate):
    """Draws the progress column as a native progress bar."""

    def paint(self, painter: Any, option: Any, index: Index) -> None:
        fraction = index.data(Qt.ItemDataRole.UserRole)
        if fraction is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(float(fraction) * 1000)
        bar.text = index.data(Qt.ItemDataRole.DisplayRole)
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class JobsDock(QWidget):
    """Jobs list + details (log, error, cancel). ``JobsDock(job_manager, parent=None)``."""

    def __init__(self, job_manager: JobManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("JobsDock")
        self.manager = job_manager
        self.model = JobTableModel(job_manager, self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(PROGRESS_COL, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(PROGRESS_COL, 140)

        self.title = QLabel("No job selected", self)
        bold = QFont(self.title.font())
        bold.setBold(True)
        self.title.setFont(bold)
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setStyleSheet("color: #d64541;")
        self.error.hide()
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setFont(QFont("monospace"))
        self.log_view.setPlaceholderText("The selected job's log appears here.")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.clear_button = QPushButton("Clear finished", self)

        buttons = QHBoxLayout()
        buttons.addWidget(self.title, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.clear_button)
        details = QWidget(self)
        detail_layout = QVBoxLayout(details)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addLayout(buttons)
        detail_layout.addWidget(self.error)
        detail_layout.addWidget(self.log_view, 1)
        # side by side, not stacked: the dock then needs only a few rows of height, and every
        # workspace above it keeps the room (the main window opens the dock area ~150 px high)
        self.table.setMinimumHeight(48)
        self.log_view.setMinimumHeight(32)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.setObjectName("jobsSplitter")
        splitter.addWidget(self.table)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

        self._selected: JobHandle | None = None
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        self.cancel_button.clicked.connect(self._cancel_selected)
        self.clear_button.clicked.connect(self._clear_finished)
        job_manager.job_added.connect(self._on_added)
        # Elapsed times of running jobs tick without any event from them.
        # log lines are appended in batches: a chatty job (thousands of lines a second) must
        # not cost the UI thread one text-layout per line
        self._pending_lines: list[str] = []
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(LOG_FLUSH_MS)
        self._flush.timeout.connect(self._flush_lines)
        self._ticker = QTimer(self)
        self._ticker.setInterval(500)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()

    @property
    def selected_job(self) -> JobHandle | None:
        return self._selected

    def select_job(self, job: JobHandle) -> None:
        if job in self.manager.jobs:
            self.table.selectRow(self.manager.jobs.index(job))

    def _on_added(self, job: JobHandle) -> None:
        # Follow the newest job unless the user is looking at one that is still running.
        if self._selected is None or self._selected.is_final:
            self.select_job(job)

    def _on_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show(self.model.job_at(current.row()))

    def _show(self, job: JobHandle | None) -> None:
        if self._selected is not None:
            for signal, slot in (
                (self._selected.log, self._append),
                (self._selected.changed, self._update),
            ):
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):
                    pass
        self._selected = job
        self._pending_lines = []
        self.log_view.clear()
        if job is None:
            self.title.setText("No job selected")
            self.error.hide()
            self.cancel_button.setEnabled(False)
            return
        self.log_view.setPlainText("\n".join(job.lines))
        job.log.connect(self._append)
        job.changed.connect(self._update)
        self._update()

    def _append(self, line: str) -> None:
        self._pending_lines.append(line)
        if not self._flush.isActive():
            self._flush.start()

    def _flush_lines(self) -> None:
        lines, self._pending_lines = self._pending_lines, []
        if lines:
            self.log_view.appendPlainText("\n".join(lines))

    def _update(self) -> None:
        job = self._selected
        if job is None:
            return
        self.title.setText(f"{job.title} - {job.state}")
        self.cancel_button.setEnabled(not job.is_final)
        if job.state == FAILED:
            self.error.setText(job.error_message)
            self.error.setToolTip(job.error_detail)
            self.error.show()
        else:
            self.error.hide()

    def _cancel_selected(self) -> None:
        if self._selected is not None:
            self._selected.cancel()

    def _clear_finished(self) -> None:
        keep = self._selected if self._selected and not self._selected.is_final else None
        self.manager.clear_finished()
        self.model.refresh()
        if keep is not None:
            self.select_job(keep)
        else:
            self._show(None)

    def _tick(self) -> None:
        rows = [i for i, j in enumerate(self.manager.jobs) if j.state == RUNNING]
        for row in rows:
            self.model.dataChanged.emit(self.model.index(row, 4), self.model.index(row, 4))
