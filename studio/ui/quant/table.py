"""The tensor table: a QAbstractTableModel over the session's quantisable tensors, and its filter.

The model holds no copy of the encodings: every ``data`` call reads the session (which reads the
core plan), so an undo, an import or a recalibration only needs a ``dataChanged``. ``setData``
hands the typed text to ``edit_fn`` (the workspace), which builds the new override through the
core and pushes an undo command; if the core refuses, ``setData`` returns False and the workspace
shows the core's message.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor

from studio.core.encodings import Encoding
from studio.ui.quant.style import BITWIDTH_COLORS, KIND_COLORS, color, sqnr_color

COLUMNS = (
    ("tensor", "Tensor"),
    ("op", "Op"),
    ("kind", "Kind"),
    ("bits", "Bits"),
    ("symmetric", "Sym"),
    ("per_channel", "Per-ch"),
    ("min", "Min"),
    ("max", "Max"),
    ("scale", "Scale"),
    ("offset", "Offset"),
    ("sqnr", "SQNR dB"),
    ("mse", "Rel. MSE"),
    ("htp", "HTP"),
)
COL = {key: i for i, (key, _title) in enumerate(COLUMNS)}
EDITABLE = {"bits", "symmetric", "per_channel", "min", "max", "scale", "offset"}
NUMERIC = {"min", "max", "scale", "offset", "sqnr", "mse"}
# relative quantisation MSE above this is shown in red (the user sets it: ``mse_threshold``)
DEFAULT_MSE_THRESHOLD = 1e-3
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
TENSOR_ROLE = Qt.ItemDataRole.UserRole + 2
KIND_LABEL = {"activation": "activation", "param": "weight", "bias": "bias"}


def bits_text(enc: Encoding | None) -> str:
    if enc is None:
        return ""
    return f"float{enc.bitwidth}" if enc.is_float else str(enc.bitwidth)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class TensorTableModel(QAbstractTableModel):
    """Rows are ``session.rows`` (TensorRow) that pass the filter; cells read
    ``session.encoding(name)``.

    The filter lives here, not in the proxy: a ``QSortFilterProxyModel.filterAcceptsRow``
    written in Python is called once per row on every reset (24,778 calls, ~110 ms of frozen
    window per recalibration), where one list comprehension over the rows costs a tenth of it
    and nothing at all while no filter is set.
    """

    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.edit_fn = None  # (name, key, value) -> bool: the workspace validates and pushes
        self.mse_threshold = DEFAULT_MSE_THRESHOLD
        self._row_of: dict[str, int] = {}
        self._visible: list[int] | None = None  # session row per table row; None = every row
        self.text_filter = ""
        self.kind_filter = ""
        session.rows_reset.connect(self.reload)
        session.tensors_changed.connect(self.refresh)
        self.reload()

    # ------------------------------------------------------------------ structure
    def reload(self) -> None:
        self.beginResetModel()
        self._visible = self._matching()
        self._index_rows()
        self.endResetModel()

    def _index_rows(self) -> None:
        rows = self.session.rows
        if self._visible is None:
            self._row_of = {r.name: i for i, r in enumerate(rows)}
        else:
            self._row_of = {rows[s].name: i for i, s in enumerate(self._visible)}

    def set_filter(self, text: str | None = None, kind: str | None = None) -> None:
        """Show only rows whose tensor/op/node/kind contains ``text`` and of kind ``kind``.

        The selection and current cell follow their rows (hidden ones are dropped).
        """
        if text is not None:
            self.text_filter = text.strip().lower()
        if kind is not None:
            self.kind_filter = kind
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        sources = [self._source_row(i.row()) if i.isValid() else -1 for i in before]
        self._visible = self._matching()
        self._index_rows()
        if self._visible is None:
            position = {s: s for s in sources}
        else:
            wanted = set(sources)
            position = {s: i for i, s in enumerate(self._visible) if s in wanted}
        after = [
            self.index(position[s], i.column()) if s in position else QModelIndex()
            for s, i in zip(sources, before, strict=True)
        ]
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    def _matching(self) -> list[int] | None:
        kind, needle = self.kind_filter, self.text_filter
        if not kind and not needle:
            return None
        return [
            i
            for i, r in enumerate(self.session.rows)
            if (not kind or r.kind == kind)
            and (
                not needle
                or needle in r.name.lower()
                or needle in r.op_type.lower()
                or needle in (r.node_id or "").lower()
                or needle in r.kind.lower()
            )
        ]

    def _source_row(self, row: int) -> int:
        return row if self._visible is None else self._visible[row]

    def row_at(self, row: int) -> Any:
        """The session's TensorRow shown in table row ``row``."""
        return self.session.rows[row if self._visible is None else self._visible[row]]

    def refresh(self, names: list[str] | None = None) -> None:
        """Repaint the rows of ``names`` (all rows when empty/None)."""
        if not self.session.rows:
            return
        last = self.columnCount() - 1
        if not names:
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, last))
            return
        for name in names:
            row = self._row_of.get(name)
            if row is not None:
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))

    def row_of(self, name: str) -> int | None:
        return self._row_of.get(name)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802,B008
        if parent.isValid():
            return 0
        return len(self.session.rows) if self._visible is None else len(self._visible)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802,B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section][1]
            if role == Qt.ItemDataRole.ToolTipRole:
                return _HEADER_TIPS.get(COLUMNS[section][0], "")
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if not index.isValid():
            return base
        key = COLUMNS[index.column()][0]
        row = self.row_at(index.row())
        enc = self.session.encoding(row.name)
        if key not in EDITABLE or enc is None:
            return base
        if key in ("symmetric", "per_channel"):
            if enc.is_float:
                return base
            if key == "per_channel" and not self.session.can_per_channel(row.name):
                return base
            return base | Qt.ItemFlag.ItemIsUserCheckable
        if key in ("min", "max", "scale", "offset") and (enc.is_float or enc.per_channel):
            return base  # per-channel values are edited in bulk (ranges come from the weights)
        return base | Qt.ItemFlag.ItemIsEditable

    # ------------------------------------------------------------------ data
    def data(self, index: QModelIndex | QPersistentModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.row_at(index.row())
        key = COLUMNS[index.column()][0]
        enc = self.session.encoding(row.name)
        if role == TENSOR_ROLE:
            return row.name
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self._text(row, key, enc, edit=role == Qt.ItemDataRole.EditRole)
        if role == SORT_ROLE:
            return self._sort_value(row, key, enc)
        if role == Qt.ItemDataRole.CheckStateRole and key in ("symmetric", "per_channel"):
            if enc is None or enc.is_float:
                return None
            if key == "per_channel" and not self.session.can_per_channel(row.name):
                return None
            on = enc.symmetric if key == "symmetric" else enc.per_channel
            return Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(row, key, enc)
        if role == Qt.ItemDataRole.BackgroundRole and key == "sqnr" and not self.session.sqnr_stale:
            db = self.session.sqnr.get(row.name)
            if db is not None:
                c = sqnr_color(db)
                c.setAlpha(70)
                return QBrush(c)
        if role == Qt.ItemDataRole.TextAlignmentRole and key in NUMERIC | {"bits"}:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, key, enc)
        return None

    def _text(self, row, key: str, enc: Encoding | None, edit: bool) -> Any:
        if key == "tensor":
            return row.name
        if key == "op":
            return row.op_type
        if key == "kind":
            return KIND_LABEL.get(row.kind, row.kind)
        if key == "sqnr":
            db = self.session.sqnr.get(row.name)
            return "" if db is None else (db if edit else f"{db:.1f}")
        if key == "mse":
            mse = self.session.quant_mse(row.name)
            return "" if mse is None else (mse if edit else f"{mse:.2e}")
        if key == "htp":
            if row.name in self.session.htp_fallbacks:
                return "CPU"
            return "HTP" if self.session.htp_checked else ""
        if enc is None:
            return "" if key != "bits" else ("" if edit else "-")
        if key == "bits":
            return bits_text(enc)
        if key in ("symmetric", "per_channel"):
            return ""
        if enc.is_float:
            return ""
        if enc.per_channel:
            # one number per column: the extreme over channels (tooltip says so)
            if edit:
                return None
            if key == "scale":
                return f"{enc.channels} ch"
            if key == "offset":
                return str(enc.offset[0]) if len(set(enc.offset)) == 1 else "mixed"
            return _fmt(min(enc.min) if key == "min" else max(enc.max))
        value = {"min": enc.min, "max": enc.max, "scale": enc.scale, "offset": enc.offset}[key][0]
        if edit:
            return value
        return str(value) if key == "offset" else _fmt(value)

    def _sort_value(self, row, key: str, enc: Encoding | None) -> Any:
        if key in ("tensor", "op", "kind", "htp"):
            return str(self._text(row, key, enc, edit=False)).lower()
        if key == "sqnr":
            db = self.session.sqnr.get(row.name)
            return float("inf") if db is None else float(db)
        if key == "mse":
            mse = self.session.quant_mse(row.name)
            return -1.0 if mse is None else float(mse)
        if enc is None:
            return -1.0
        if key == "bits":
            return enc.bitwidth + (0.5 if enc.is_float else 0.0)
        if key == "symmetric":
            return float(enc.symmetric)
        if key == "per_channel":
            return float(enc.per_channel)
        if enc.is_float:
            return 0.0
        values = {"min": enc.min, "max": enc.max, "scale": enc.scale, "offset": enc.offset}[key]
        return float(min(values)) if key in ("min", "offset") else float(max(values))

    def _foreground(self, row, key: str, enc: Encoding | None) -> QBrush | None:
        if key == "htp" and row.name in self.session.htp_fallbacks:
            return QBrush(QColor(color("error")))
        if key == "kind":
            return QBrush(QColor(KIND_COLORS.get(row.kind, color("text"))))
        if key == "bits" and enc is not None:
            if enc.is_float:
                return QBrush(QColor(color("warning")))
            return QBrush(QColor(BITWIDTH_COLORS.get(enc.bitwidth, color("text"))))
        if key == "sqnr" and self.session.sqnr_stale:
            return QBrush(QColor(color("muted")))
        if key == "mse":
            mse = self.session.quant_mse(row.name)
            over = mse is not None and mse > self.mse_threshold
            return QBrush(QColor(color("error" if over else "text")))
        if key == "op" or (
            enc is not None and enc.per_channel and key in NUMERIC - {"sqnr", "mse"}
        ):
            return QBrush(QColor(color("muted")))
        if row.name in self.session.edited and key == "tensor":
            return QBrush(QColor(color("warning")))
        return None

    def _tooltip(self, row, key: str, enc: Encoding | None) -> str:
        if key == "htp":
            fb = self.session.htp_fallbacks.get(row.name)
            if fb is not None:
                return (
                    f"{fb['op_type']} node {fb['node']} would fall back to the CPU on "
                    f"{fb['target']}.\nQNN: {fb['reason'] or 'no reason given'}"
                )
            if self.session.htp_checked:
                return "runs on QNN HTP for the target (checked on the current plan)"
            return "press Check HTP to ask QNN which nodes the target's HTP takes"
        if key == "tensor":
            lines = [row.name]
            if row.name in self.session.edited:
                lines.append("edited by you (differs from the calibrated default)")
            if enc is None:
                lines.append("no encoding yet: calibrate or import encodings")
            return "\n".join(lines)
        if key == "op":
            return f"{row.op_type} node {row.node_id}" if row.node_id else row.op_type
        if key in ("min", "max", "scale", "offset") and enc is not None and not enc.is_float:
            if not enc.per_channel:
                return f"{COLUMNS[COL[key]][1]} = {self._text(row, key, enc, edit=True)!r}"
            return f"{enc.channels} channels on axis {enc.axis}; range shown is over all channels"
        return ""

    # ------------------------------------------------------------------ editing
    def setData(
        self, index: QModelIndex | QPersistentModelIndex, value: Any, role=Qt.ItemDataRole.EditRole
    ) -> bool:  # noqa: N802
        if not index.isValid():
            return False
        key = COLUMNS[index.column()][0]
        name = self.row_at(index.row()).name
        if role == Qt.ItemDataRole.CheckStateRole and key in ("symmetric", "per_channel"):
            value = Qt.CheckState(value) == Qt.CheckState.Checked
        elif role != Qt.ItemDataRole.EditRole or key not in EDITABLE:
            return False
        if self.edit_fn is None:
            return False
        return bool(self.edit_fn(name, key, value))


_HEADER_TIPS = {
    "htp": "Where the node runs on the target's QNN HTP after Check HTP: CPU = it would fall "
    "back (the tooltip gives QNN's reason)",
    "mse": "Quantise-dequantise MSE / mean square of the tensor (weights: their values; "
    "activations: the calibration histogram); red above the table's threshold",
    "op": "The op producing an activation, or consuming a weight (in the folded model)",
    "bits": "Bit width of the integer grid (4/8/16) or a float fallback",
    "symmetric": "Symmetric grid (offset -2^(bw-1)); weights usually are",
    "per_channel": "One scale per output channel (weights only)",
    "min": "Lowest value the grid represents (scale x offset)",
    "max": "Highest value the grid represents",
    "scale": "QNN scale: x = scale * (q + offset)",
    "offset": "QNN offset (<= 0): minus the zero point",
    "sqnr": "Signal-to-quantisation-noise ratio of this tensor, float vs quantised (higher is better)",
}


class TensorFilterProxy(QSortFilterProxyModel):
    """Numeric sort via SORT_ROLE; ``set_text``/``set_kind`` filter in the source model.

    ``filterAcceptsRow`` is deliberately not overridden (see :class:`TensorTableModel`): the
    proxy's own C++ filter accepts every row without calling Python.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    @property
    def text_filter(self) -> str:
        return self.sourceModel().text_filter

    @property
    def kind_filter(self) -> str:
        return self.sourceModel().kind_filter

    def set_text(self, text: str) -> None:
        self.sourceModel().set_filter(text=text)

    def set_kind(self, kind: str) -> None:
        self.sourceModel().set_filter(kind=kind or "")
