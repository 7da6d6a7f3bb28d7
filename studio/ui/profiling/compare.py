"""Runs side by side: a summary table, a per-layer delta table (core ``compare_runs``) and
overlaid latency histograms.

The per-layer table lines layers up by ONNX node id. A value ratio is shown only where both runs
measured the layer in the same unit (the core decides); otherwise only the change in share of
total, in percentage points, is comparable, and that is what the table shows.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.core.profiling.columns import fmt_count
from studio.core.profiling.compare import Comparison, compare_runs
from studio.core.profiling.records import ProfileRun
from studio.ui.profiling.plots import SERIES, OverlaidHistograms
from studio.ui.profiling.view_data import fmt_ms, run_tag
from studio.ui.widgets.table_model import ColumnsTableModel, Index
from studio.ui.widgets.theme import COLORS

_FASTER = QColor(COLORS["ok"])
_SLOWER = QColor(COLORS["error"])


def _value_text(value: float | None, unit: str | None) -> str:
    if value is None:
        return ""
    if unit == "cycles":
        return f"{fmt_count(value)} cyc"
    return f"{value:.1f} µs"


class CompareTableModel(QAbstractTableModel):
    """Per-layer rows of a Comparison: node, op, then value/share/Δ per run."""

    PER_RUN = ("value", "share", "Δ share", "× base")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.comparison: Comparison | None = None

    def set_comparison(self, comparison: Comparison | None) -> None:
        self.beginResetModel()
        self.comparison = comparison
        self.endResetModel()

    def _n_runs(self) -> int:
        return len(self.comparison.runs) if self.comparison else 0

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        if parent.isValid() or self.comparison is None:
            return 0
        return len(self.comparison.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 2 + len(self.PER_RUN) * self._n_runs()

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if section < 2:
            return ("Node", "Op")[section] if role == Qt.ItemDataRole.DisplayRole else None
        run_i, part = divmod(section - 2, len(self.PER_RUN))
        if role == Qt.ItemDataRole.DisplayRole:
            base = run_tag(self.comparison.baseline) if self.comparison else "A"
            name = f"× {base}" if part == 3 else self.PER_RUN[part]
            return f"{run_tag(run_i)} {name}"
        if role == Qt.ItemDataRole.ForegroundRole:
            return QColor(SERIES[run_i % len(SERIES)])
        if role == Qt.ItemDataRole.ToolTipRole and self.comparison:
            run = self.comparison.runs[run_i]
            return f"{run_tag(run_i)}: {run.get('label') or run.get('id')}"
        return None

    def _cell(self, row_i: int, col: int) -> tuple[str, Any]:
        assert self.comparison is not None
        row = self.comparison.rows[row_i]
        if col == 0:
            return row.node_id, row.node_id
        if col == 1:
            return row.op_type, row.op_type
        run_i, part = divmod(col - 2, len(self.PER_RUN))
        cell = row.cells[run_i]
        if cell is None:
            return "—", -1e300
        if part == 0:
            return _value_text(cell.value, cell.unit), cell.value or 0.0
        if part == 1:
            share = cell.share
            return ("" if share is None else f"{share * 100:.2f}%"), share or 0.0
        if part == 2:
            dpp = row.share_delta_pp[run_i]
            if dpp is None or run_i == self.comparison.baseline:
                return "", 0.0
            return f"{dpp:+.2f} pp", dpp
        ratio = row.value_ratio[run_i]
        if ratio is None or run_i == self.comparison.baseline:
            return "", 0.0
        return f"{ratio:.2f}×", ratio

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.comparison is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(index.row(), col)[0]
        if role == Qt.ItemDataRole.UserRole:
            return self._cell(index.row(), col)[1]
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col >= 2:
            run_i, part = divmod(col - 2, len(self.PER_RUN))
            row = self.comparison.rows[index.row()]
            ratio = row.value_ratio[run_i]
            if part == 3 and ratio is not None and run_i != self.comparison.baseline:
                return _FASTER if ratio < 0.95 else (_SLOWER if ratio > 1.05 else None)
        if role == Qt.ItemDataRole.ToolTipRole and col == 0:
            row = self.comparison.rows[index.row()]
            return "inserted by the backend (no ONNX node)" if row.inserted else row.node_id
        return None


SUMMARY_COLS = ("Run", "Backend", "p50", "p95", "p99", "Mean", "Throughput", "Mean × base")


class SummaryModel(ColumnsTableModel):
    columns = SUMMARY_COLS

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.runs: list[dict[str, Any]] = []

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.runs = runs
        self.endResetModel()

    def row_count(self) -> int:
        return len(self.runs)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 0:
            return QColor(SERIES[index.row() % len(SERIES)])
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        r = self.runs[index.row()]
        ratio = r.get("mean_ratio_vs_baseline")
        return (
            f"{run_tag(index.row())}  {r.get('label') or r.get('id')}",
            str(r.get("backend", "")).upper(),
            fmt_ms(r.get("p50_ms")),
            fmt_ms(r.get("p95_ms")),
            fmt_ms(r.get("p99_ms")),
            fmt_ms(r.get("mean_ms")),
            f"{r.get('throughput_ips', 0.0):,.1f} /s",
            f"{ratio:.2f}×" if ratio is not None else "",
        )[index.column()]


class ComparePanel(QWidget):
    """The Compare tab. ``show_runs`` recomputes with the chosen baseline."""

    node_activated = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.runs: list[ProfileRun] = []
        self.comparison: Comparison | None = None
        self.baseline = QComboBox(self)
        self.baseline.currentIndexChanged.connect(self._recompute)
        self.info = QLabel("Select two or more runs in the history and press Compare.", self)
        self.info.setObjectName("profilingMuted")
        self.summary_model = SummaryModel(self)
        self.summary = QTableView(self)
        self.summary.setModel(self.summary_model)
        self.summary.verticalHeader().setVisible(False)
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.summary.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents
        )
        self.summary.setMaximumHeight(130)
        self.model = CompareTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.clicked.connect(self._clicked)
        self.hist = OverlaidHistograms(self)

        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Comparison</b>", self))
        top.addWidget(self.info, 1)
        top.addWidget(QLabel("Baseline:", self))
        top.addWidget(self.baseline)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.table)
        split.addWidget(self.hist)
        split.setSizes([640, 420])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)

    def show_runs(self, runs: list[ProfileRun]) -> None:
        self.runs = list(runs)
        self.baseline.blockSignals(True)
        self.baseline.clear()
        self.baseline.addItems([r.label or r.id for r in self.runs])
        self.baseline.blockSignals(False)
        self._recompute()
        self.hist.show_runs(self.runs)

    def _recompute(self) -> None:
        if len(self.runs) < 2:
            self.comparison = None
            self.model.set_comparison(None)
            self.summary_model.set_runs([])
            return
        base = max(0, self.baseline.currentIndex())
        self.comparison = compare_runs(self.runs, baseline=base)
        self.model.set_comparison(self.comparison)
        self.summary_model.set_runs(self.comparison.runs)
        per = len(CompareTableModel.PER_RUN)
        for i in range(len(self.runs)):
            for part in (2, 3):  # the baseline's own delta and ratio columns say nothing
                self.table.setColumnHidden(2 + i * per + part, i == base)
        self.table.sortByColumn(2 + base * per + 1, Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        n = len(self.comparison.rows)
        self.info.setText(f"{len(self.runs)} runs, {n} layers lined up by ONNX node id")

    def _clicked(self, index: QModelIndex) -> None:
        if self.comparison is None:
            return
        row = self.comparison.rows[self.proxy.mapToSource(index).row()]
        if not row.inserted:
            self.node_activated.emit(row.node_id)
