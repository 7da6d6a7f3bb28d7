"""The editor panel: filter box, kind filter, bulk-edit buttons and the tensor table.

Bulk edits (buttons or the context menu) act on the selected rows and become ONE undo command;
tensors an edit does not apply to (4-bit activations, per-channel activations) are skipped and
the count is reported, instead of failing the whole edit.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.quant.delegates import BitwidthDelegate, NumberDelegate
from studio.ui.quant.table import COL, COLUMNS, TENSOR_ROLE, TensorFilterProxy, TensorTableModel

# (label, key, value, tooltip); value None for toggles computed from the selection
BULK_ACTIONS = (
    ("Set 16-bit", "bits", "16", "Quantise the selected tensors on a 16-bit grid"),
    ("Set 8-bit", "bits", "8", "Quantise the selected tensors on an 8-bit grid"),
    ("Set 4-bit", "bits", "4", "4-bit weights (activations are skipped)"),
    ("Float fallback", "bits", "float16", "Keep the selected tensors in float16 (not quantised)"),
    ("Symmetric", "symmetric", None, "Toggle symmetric grids on the selection"),
    ("Per-channel", "per_channel", None, "Toggle per-channel scales on the selected weights"),
    ("Reset", "reset", None, "Drop your edits: back to the calibrated defaults"),
)


# the widest value a column usually shows (per-column width from the font)
COLUMN_SAMPLES = {
    "op": "Conv ABC",
    "kind": "activation",
    "bits": "float16",
    "symmetric": "Sym",
    "per_channel": "Per-ch",
    "min": "-0.06697",
    "max": "-0.06697",
    "scale": "3.922e-05",
    "offset": "-29461",
    "sqnr": "SQNR dB",
}


class EditorPanel(QWidget):
    """Table + filters + bulk buttons. ``bulk_requested(key, value, names)`` goes to the
    workspace, which builds and pushes the command."""

    bulk_requested = Signal(str, object, list)
    selection_changed = Signal(list)  # selected tensor names, current first

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = TensorTableModel(session, self)
        self.proxy = TensorFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self.filter = QLineEdit(self)
        self.filter.setObjectName("quantFilter")
        self.filter.setPlaceholderText("Filter tensors (name, op, node)…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.set_text)
        self.kind = QComboBox(self)
        for label, key in (
            ("All kinds", ""),
            ("Activations", "activation"),
            ("Weights", "param"),
            ("Biases", "bias"),
        ):
            self.kind.addItem(label, key)
        self.kind.currentIndexChanged.connect(
            lambda _i: self.proxy.set_kind(self.kind.currentData())
        )

        self.table = QTableView(self)
        self.table.setObjectName("quantTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # graph order until clicked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL["tensor"], QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        self._size_columns()
        self.bits_delegate = BitwidthDelegate(self.table)
        self.bits_delegate.allowed_fn = self.session.allowed_bitwidths
        self.number_delegate = NumberDelegate(parent=self.table)
        self.int_delegate = NumberDelegate(integer=True, parent=self.table)
        self.table.setItemDelegateForColumn(COL["bits"], self.bits_delegate)
        for key in ("min", "max", "scale"):
            self.table.setItemDelegateForColumn(COL[key], self.number_delegate)
        self.table.setItemDelegateForColumn(COL["offset"], self.int_delegate)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        self.bulk_buttons: dict[str, QToolButton] = {}
        bulk = QHBoxLayout()
        bulk.setSpacing(4)
        for label, key, value, tip in BULK_ACTIONS:
            button = QToolButton(self)
            button.setText(label)
            button.setToolTip(tip)
            button.setObjectName("quantBulkButton")
            button.clicked.connect(self._bulk_slot(key, value))
            bulk.addWidget(button)
            self.bulk_buttons[label] = button
        bulk.addStretch(1)

        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.kind)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addLayout(bulk)
        layout.addWidget(self.table, 1)
        self._update_buttons()

    def _size_columns(self) -> None:
        """Widths from the font (the theme's font is larger than Qt's default): wide enough
        for typical values, so numbers are never elided."""
        fm = self.table.fontMetrics()
        pad = 18
        for key, title in COLUMNS:
            if key == "tensor":
                continue
            sample = COLUMN_SAMPLES.get(key, "")
            width = max(fm.horizontalAdvance(title), fm.horizontalAdvance(sample)) + pad
            self.table.setColumnWidth(COL[key], width)

    # ------------------------------------------------------------------ selection
    def selected_names(self) -> list[str]:
        """Selected tensors, the current row first."""
        rows = self.table.selectionModel().selectedRows()
        names = [self.proxy.data(i, TENSOR_ROLE) for i in rows]
        current = self.table.currentIndex()
        if current.isValid():
            name = self.proxy.data(current, TENSOR_ROLE)
            if name in names:
                names.remove(name)
                names.insert(0, name)
        return names

    def select_names(self, names: list[str], scroll: bool = True) -> None:
        """Select exactly ``names`` (rows hidden by the filter stay unselected)."""
        sel = QItemSelection()
        first = None
        for name in names:
            row = self.model.row_of(name)
            if row is None:
                continue
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            if not index.isValid():
                continue
            first = first or index
            sel.select(index, index)
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
        )
        sm = self.table.selectionModel()
        sm.select(sel, flags)
        if first is not None:
            sm.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
            if scroll:
                self.table.scrollTo(first, QAbstractItemView.ScrollHint.EnsureVisible)

    def _selection_changed(self, *_args) -> None:
        self._update_buttons()
        self.selection_changed.emit(self.selected_names())

    def _update_buttons(self) -> None:
        has = bool(self.table.selectionModel().selectedRows())
        for button in self.bulk_buttons.values():
            button.setEnabled(has)

    # ------------------------------------------------------------------ bulk
    def _bulk_slot(self, key: str, value) -> Callable[[], None]:
        return lambda: self.request_bulk(key, value)

    def request_bulk(self, key: str, value=None) -> None:
        names = self.selected_names()
        if not names:
            return
        if value is None and key in ("symmetric", "per_channel"):
            if key == "per_channel":  # only weights have channels to toggle
                names_on = [
                    n for n in names if getattr(self.session.row(n), "kind", "") != "activation"
                ]
            else:
                names_on = names
            encs = [self.session.encoding(n) for n in names_on]
            current = [
                (e.symmetric if key == "symmetric" else e.per_channel)
                for e in encs
                if e is not None and not e.is_float
            ]
            value = not (current and all(current))
        self.bulk_requested.emit(key, value, names)

    def _context_menu(self, pos) -> None:
        if not self.table.selectionModel().selectedRows():
            return
        menu = QMenu(self)
        for label, key, value, tip in BULK_ACTIONS:
            action = QAction(label, menu)
            action.setToolTip(tip)
            action.triggered.connect(self._bulk_slot(key, value))
            menu.addAction(action)
            if label == "Float fallback":
                menu.addSeparator()
        menu.exec(self.table.viewport().mapToGlobal(pos))
