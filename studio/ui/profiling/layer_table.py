"""The table of every per-layer row of a run: a QAbstractTableModel over the record's rows.

Its columns (headers, tooltips, cell text, sort keys) are the ``TABLE`` columns of
``studio.core.profiling.columns``, the spec the CSV export and the report read too.

Sorting uses the raw numbers (``Qt.UserRole``), not the formatted text, so 1.2 M sorts above
950 k. Rows the backend inserted (layout transposes, graph I/O) are kept, in a muted italic, because
their cost is real; they have no ONNX node to select.
"""

from __future__ import annotations

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

from studio.core.profiling.columns import TABLE, Column, columns
from studio.core.profiling.records import MEASURE_CYCLES, LayerRow, ProfileRun
from studio.ui.widgets.table_model import ColumnsTableModel, Index
from studio.ui.widgets.theme import COLORS

FIT_ROWS = 60  # rows whose texts size the columns (the top of the table, by cost)
CELL_PAD = 16  # cell margins and the grid line
HEADER_PAD = 28  # header margins and the sort arrow
MAX_WIDTH = 420


def _columns() -> list[Column]:
    """The table's columns, read from the one column spec each time (``core/profiling/columns``)."""
    return columns(TABLE)


def _column_index(key: str) -> int:
    return next(i for i, c in enumerate(_columns()) if c.key == key)


class LayerTableModel(ColumnsTableModel):
    """Rows of one ProfileRun (ONNX-node rows first, then rows inserted by the backend)."""

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return self._labels

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[LayerRow] = []
        self._sorted_by: tuple[int, Qt.SortOrder] | None = None  # the rows' current order
        # the column spec, read at construction and at each reset (a view asks for it per cell)
        self._cols = _columns()
        self._labels = tuple(c.label for c in self._cols)
        self._muted = QColor(COLORS["muted"])
        self._italic = QFont()
        self._italic.setItalic(True)

    def set_run(self, run: ProfileRun | None, sort: tuple[int, Qt.SortOrder] | None = None) -> None:
        """Show ``run``'s rows, already sorted by ``sort`` (column, order) when given: the
        proxy then filters them once, where a sort after the reset filtered them again."""
        self.beginResetModel()
        self.rows = list(run.all_rows) if run is not None else []
        self._cols = _columns()
        self._labels = tuple(c.label for c in self._cols)
        self._sorted_by = None
        if sort is not None and 0 <= sort[0] < len(self._cols):
            self._sort_rows(*sort)
        self.endResetModel()

    def _sort_rows(self, column: int, order: Qt.SortOrder) -> None:
        key = self._cols[column].sort_key
        self.rows.sort(key=key, reverse=order == Qt.SortOrder.DescendingOrder)
        self._sorted_by = (column, order)

    def row_count(self) -> int:
        return len(self.rows)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows themselves by the column's raw number (one ``list.sort``).

        A QSortFilterProxyModel sorts through ``data()`` twice per comparison: on a 20k-node run
        that was ~300k Python calls and a 700 ms UI-thread stall. Selections and the current
        row follow their rows (persistent indexes are moved).
        """
        if not 0 <= column < len(self._cols) or self._sorted_by == (column, order):
            return  # already in that order (set_run sorted them): nothing moves
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        held = [self.rows[i.row()] for i in persistent]
        self._sort_rows(column, order)
        where = {id(row): i for i, row in enumerate(self.rows)}
        self.changePersistentIndexList(
            persistent,
            [self.index(where[id(r)], i.column()) for r, i in zip(held, persistent, strict=True)],
        )
        self.layoutChanged.emit()

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            cols = self._cols
            return (cols[section].tip or None) if 0 <= section < len(cols) else None
        return super().headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = self._cols[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.text(row)
        if role == Qt.ItemDataRole.UserRole:
            return col.sort_key(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and col.numeric:
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
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.hide_inserted = False

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The view's header asks the proxy; the source sorts its rows (``LayerTableModel.sort``)
        and the proxy keeps the source's order, filtering only."""
        source = self.sourceModel()
        if source is not None:
            source.sort(column, order)

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
        self.view.sortByColumn(_column_index("share"), Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
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
        key = "cycles" if run is not None and run.primary_measure == MEASURE_CYCLES else "time_us"
        order = Qt.SortOrder.DescendingOrder
        self.model.set_run(run, sort=(_column_index(key), order))
        if run is None:
            self.summary.setText("")
            return
        src = f"{len(run.layers)} nodes, {len(run.extra)} inserted ops"
        if run.unmapped_nodes:
            src += f", {len(run.unmapped_nodes)} nodes without figures"
        self.summary.setText(src)
        self.summary.setToolTip(run.layer_source)
        self.view.sortByColumn(_column_index(key), order)  # the header shows it; rows are sorted

    def fit_columns(self, rows: int = FIT_ROWS) -> None:
        """Size each column to its header and the texts of the costliest ``rows`` rows.

        Measured with font metrics here rather than ``resizeColumnsToContents``: Qt's sizing asks
        the model and the style sheet for every cell, which took ~140 ms of one UI-thread turn on
        a 28-row run and seconds on a 20k-node one.
        """
        shown = [
            self.proxy.mapToSource(self.proxy.index(i, 0)).row()
            for i in range(min(rows, self.proxy.rowCount()))
        ]
        cell = self.view.fontMetrics()
        head = self.view.horizontalHeader().fontMetrics()
        cols = self.model._cols
        for c, col in enumerate(cols):
            texts = [col.text(self.model.rows[r]) for r in shown]
            widest = max((cell.horizontalAdvance(t) for t in texts), default=0)
            width = max(widest + CELL_PAD, head.horizontalAdvance(col.label) + HEADER_PAD)
            if c == 0:
                width = max(180, min(320, width))
            self.view.setColumnWidth(c, min(width, MAX_WIDTH))

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
