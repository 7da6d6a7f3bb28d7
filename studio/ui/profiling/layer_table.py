"""The table of every per-layer row of a run: a QAbstractTableModel over the record's rows.

Sorting uses the raw numbers (``Qt.UserRole``), not the formatted text, so 1.2 M sorts above
950 k. Rows the backend inserted (layout transposes, graph I/O) are kept, in a muted italic, because
their cost is real; they have no ONNX node to select.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.core.profiling.records import MEASURE_CYCLES, LayerRow, ProfileRun
from studio.ui.profiling.view_data import fmt_count
from studio.ui.widgets.table_model import ColumnsTableModel, Index
from studio.ui.widgets.theme import COLORS

COLUMNS = ("Node", "Op", "Backend", "Cycles", "Time (µs)", "Share", "MACs", "Cycles/MAC", "Note")
NUMERIC = {3, 4, 5, 6, 7}
HEADER_TIPS = {
    3: "QNN profiler cycles per inference (the simulator's on x86-64), median of profiled runs",
    4: "ORT kernel time per inference (CPU EP), median of profiled runs",
    5: "Share of the run's total of the same measure (cycles with cycles, time with time)",
    6: "Multiply-accumulates of the node (and of nodes the backend fused into it)",
    7: "Cycles per MAC: how efficiently the backend runs this layer's arithmetic",
}


def _cell(row: LayerRow, col: int) -> tuple[str, Any]:
    """(display text, sort key) of one cell."""
    if col == 0:
        return row.node_id, row.node_id
    if col == 1:
        return row.op_type, row.op_type
    if col == 2:
        return row.backend.upper(), row.backend
    if col == 3:
        return (fmt_count(row.cycles) if row.cycles is not None else "", row.cycles or -1.0)
    if col == 4:
        return (f"{row.time_us:.1f}" if row.time_us is not None else "", row.time_us or -1.0)
    if col == 5:
        return (f"{row.share * 100:.2f}%" if row.share is not None else "", row.share or -1.0)
    if col == 6:
        return (fmt_count(row.macs) if row.macs else "", float(row.macs))
    if col == 7:
        cpm = row.cycles_per_mac
        return (f"{cpm:.3f}" if cpm is not None else "", cpm if cpm is not None else -1.0)
    return row.note, row.note


class LayerTableModel(ColumnsTableModel):
    """Rows of one ProfileRun (ONNX-node rows first, then rows inserted by the backend)."""

    columns = COLUMNS

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[LayerRow] = []
        self._muted = QColor(COLORS["muted"])
        self._italic = QFont()
        self._italic.setItalic(True)

    def set_run(self, run: ProfileRun | None) -> None:
        self.beginResetModel()
        self.rows = list(run.all_rows) if run is not None else []
        self.endResetModel()

    def row_count(self) -> int:
        return len(self.rows)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(section)
        return super().headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(row, col)[0]
        if role == Qt.ItemDataRole.UserRole:
            return _cell(row, col)[1]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and row.inserted:
            return self._muted
        if role == Qt.ItemDataRole.FontRole and row.inserted:
            return self._italic
        if role == Qt.ItemDataRole.ToolTipRole:
            parts = [row.note] if row.note else []
            if row.backend_ops:
                parts.append("backend ops: " + ", ".join(row.backend_ops))
            if row.inserted:
                parts.append("inserted by the backend: no ONNX node")
            return "\n".join(parts) or None
        return None

    def row_of(self, node_id: str) -> int:
        for i, row in enumerate(self.rows):
            if row.node_id == node_id and not row.inserted:
                return i
        return -1


class LayerFilterProxy(QSortFilterProxyModel):
    """Text filter over node and op columns, optionally hiding backend-inserted rows."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.hide_inserted = False

    def set_hide_inserted(self, hide: bool) -> None:
        self.hide_inserted = hide
        self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        row = model.rows[source_row]  # type: ignore[attr-defined]
        if self.hide_inserted and row.inserted:
            return False
        text = self.filterRegularExpression().pattern()
        if not text:
            return True
        needle = text.lower()
        return needle in row.node_id.lower() or needle in row.op_type.lower()


class LayerTablePanel(QWidget):
    """Filterable, sortable per-layer table; selecting a row asks to select its node."""

    node_activated = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = LayerTableModel(self)
        self.proxy = LayerFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter by node or op type…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.hide_inserted = QCheckBox("Hide backend-inserted ops", self)
        self.hide_inserted.toggled.connect(self.proxy.set_hide_inserted)
        self.summary = QLabel("", self)
        self.summary.setObjectName("profilingMuted")
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(5, Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # fit columns to the first rows only: measuring every row of a 20k-node run's table
        # (resizeColumnsToContents in set_run) froze the window
        header.setResizeContentsPrecision(200)
        header.setStretchLastSection(True)
        self.view.selectionModel().currentRowChanged.connect(self._row_changed)
        self._syncing = False

        bar = QHBoxLayout()
        bar.addWidget(QLabel("<b>All layers</b>", self))
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.hide_inserted)
        bar.addWidget(self.summary)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.view)

    def set_run(self, run: ProfileRun | None) -> None:
        self.model.set_run(run)
        if run is None:
            self.summary.setText("")
            return
        src = f"{len(run.layers)} nodes, {len(run.extra)} inserted ops"
        if run.unmapped_nodes:
            src += f", {len(run.unmapped_nodes)} nodes without figures"
        self.summary.setText(src)
        self.summary.setToolTip(run.layer_source)
        column = 3 if run.primary_measure == MEASURE_CYCLES else 4
        self.view.sortByColumn(column, Qt.SortOrder.DescendingOrder)
        self.view.resizeColumnsToContents()
        self.view.setColumnWidth(0, max(180, min(320, self.view.columnWidth(0))))

    def select_node(self, node_id: str) -> None:
        """Follow a selection made elsewhere (graph, bar chart) without echoing it back."""
        row = self.model.row_of(node_id)
        self._syncing = True
        try:
            if row < 0:
                self.view.clearSelection()
                return
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            if index.isValid():
                self.view.setCurrentIndex(index)
                self.view.scrollTo(index)
        finally:
            self._syncing = False

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing or not current.isValid():
            return
        row = self.model.rows[self.proxy.mapToSource(current).row()]
        if not row.inserted:
            self.node_activated.emit(row.node_id)
