"""The progress table: one row per sweep point, updated in place as rows stream back."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QColor

from studio.core.sweeps import latency_of
from studio.ui.widgets.table_model import ColumnsTableModel, Index

STATUS_COLOURS = {
    "queued": "#8a8f98",
    "running": "#4e9af1",
    "done": "#59a14f",
    "failed": "#e15759",
    "cancelled": "#b0a060",
}


class SweepTableModel(ColumnsTableModel):
    """Rows keyed by the point's key; :meth:`upsert` adds or refreshes one."""

    columns = (
        "#",
        "point",
        "device",
        "status",
        "ran on",
        "SQNR dB",
        "device ms",
        "on HTP",
        "size kB",
        "Pareto",
    )

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}

    def row_count(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.beginResetModel()
        self.rows, self._index = [], {}
        self.endResetModel()

    def upsert(self, row: dict[str, Any]) -> None:
        key = row["key"]
        if key in self._index:
            i = self._index[key]
            self.rows[i] = row
            self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.columns) - 1))
            return
        i = len(self.rows)
        self.beginInsertRows(QModelIndex(), i, i)
        self.rows.append(row)
        self._index[key] = i
        self.endInsertRows()

    def set_pareto(self, flags: dict[str, bool]) -> None:
        for row in self.rows:
            row["pareto"] = flags.get(row["key"], False)
        if self.rows:
            col = self.columns.index("Pareto")
            self.dataChanged.emit(self.index(0, col), self.index(len(self.rows) - 1, col))

    def row_of(self, key: str) -> int | None:
        return self._index.get(key)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[row["status"]] = out.get(row["status"], 0) + 1
        return out

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        name = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, name)
        if role == Qt.ItemDataRole.ForegroundRole and name == "status":
            return QColor(STATUS_COLOURS.get(row["status"], "#cccccc"))
        if role == Qt.ItemDataRole.ToolTipRole:
            if row["status"] == "failed":
                return (row.get("error") or {}).get("message", "")
            if name == "device ms":
                return row.get("estimate_label") or "no device figure"
        return None

    @staticmethod
    def _text(row: dict[str, Any], name: str) -> str:
        if name == "#":
            return str(row["index"])
        if name == "point":
            return row["label"]
        if name == "device":
            return str(row.get("device") or row["params"].get("device") or "default")
        if name == "status":
            return row["status"] + (" (reused)" if row.get("reused") else "")
        if name == "ran on":
            where = row.get("where") or {}
            return f"{where.get('ip', '')} pid {where['pid']}" if where.get("pid") else ""
        if name == "SQNR dB":
            v = row.get("sqnr_db")
            return f"{v:.2f}" if isinstance(v, int | float) else ""
        if name == "device ms":
            lat, kind = latency_of(row)
            return f"{lat:.4g} ({kind})" if lat is not None else ""
        if name == "on HTP":
            return {True: "all", False: "partly"}.get(row.get("fully_on_htp"), "")
        if name == "size kB":
            v = row.get("size_bytes")
            return f"{v / 1024:.1f}" if v else ""
        if name == "Pareto":
            return "★" if row.get("pareto") else ""
        return ""
