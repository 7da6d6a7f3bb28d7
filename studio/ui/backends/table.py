"""The node table: one row per node, per-backend scores, the chosen backend and the reason.

A ``QAbstractTableModel`` over plain core data (the op-support report and the plan); it never
computes anything itself. Before an assignment exists the score columns show the probe's verdict
(supported / rejected); afterwards the 0-100 score, or "rejected" with the backend's reason in
the tooltip.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from studio.core.assignment.plan import BACKEND_ORDER
from studio.ui.widgets.table_model import ColumnsTableModel, Index

BACKENDS = BACKEND_ORDER
COLUMNS = ("Node", "Op", "MACs", "HTP", "GPU", "CPU", "Backend", "Pinned", "Reason")
COL_NODE, COL_OP, COL_MACS, COL_HTP, COL_GPU, COL_CPU, COL_BACKEND, COL_PIN, COL_REASON = range(9)
BACKEND_COLOURS = {"htp": "#2e7d32", "gpu": "#6a1b9a", "cpu": "#c62828"}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
NODE_ID_ROLE = Qt.ItemDataRole.UserRole + 2


class NodeTableModel(ColumnsTableModel):
    """Rows are the graph's computing nodes (Constant nodes carry no work and are left out)."""

    columns = COLUMNS

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.nodes: list[Any] = []
        self.report: Any = None  # OpSupportReport
        self.plan: Any = None  # Plan
        self.pins: dict[str, str] = {}
        self._decisions: dict[str, Any] = {}
        # cell texts and colours, computed once per change: a repaint asks for every visible
        # cell's roles, and on the UI thread each ask is a Python call
        self._text: dict[tuple[int, int], str] = {}
        self._brush: dict[tuple[int, int], Any] = {}
        self._rows: dict[str, int] = {}

    # ----- feeding ------------------------------------------------------------------------------
    def set_graph(self, graph: Any) -> None:
        self.beginResetModel()
        self.nodes = (
            []
            if graph is None
            else [n for n in graph.nodes if not (n.op_type == "Constant" and not n.inputs)]
        )
        self.report, self.plan, self._decisions = None, None, {}
        self._rows = {n.id: i for i, n in reversed(list(enumerate(self.nodes)))}
        self._text, self._brush = {}, {}
        self.endResetModel()

    def set_report(self, report: Any) -> None:
        self.report = report
        self._changed()

    def set_plan(self, plan: Any) -> None:
        self.plan = plan
        self._decisions = {} if plan is None else {d.node_id: d for d in plan.decisions}
        self._changed()

    def set_pins(self, pins: dict[str, str]) -> None:
        self.pins = dict(pins)
        self._changed()

    def _changed(self) -> None:
        self._text, self._brush = {}, {}
        if self.nodes:
            last = self.index(len(self.nodes) - 1, len(COLUMNS) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def row_of(self, node_id: str) -> int:
        return self._rows.get(node_id, -1)

    # ----- Qt model -----------------------------------------------------------------------------
    def row_count(self) -> int:
        return len(self.nodes)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802 - Qt, hot path
        return 0 if parent.isValid() else len(self.nodes)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802 - hot path
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            if section in (COL_HTP, COL_GPU, COL_CPU):
                return "score 0-100 (speed, power, precision fit, VTCM fit); 0 = rejected"
            return None
        return super().headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = self.nodes[index.row()]
        col = index.column()
        if role == NODE_ID_ROLE:
            return node.id
        if role == Qt.ItemDataRole.DisplayRole:
            key = (index.row(), col)
            text = self._text.get(key)
            if text is None:
                text = self._text[key] = self._display(node, col)
            return text
        if role == SORT_ROLE:
            return self._sort_key(node, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(node, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            key = (index.row(), col)
            if key not in self._brush:
                self._brush[key] = self._foreground(node, col)
            return self._brush[key]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (
            COL_MACS,
            COL_HTP,
            COL_GPU,
            COL_CPU,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _support(self, node_id: str, backend: str) -> Any:
        if self.report is None:
            return None
        return self.report.nodes.get(node_id, {}).get(backend)

    def _display(self, node: Any, col: int) -> str:
        if col == COL_NODE:
            return node.id
        if col == COL_OP:
            return node.op_type
        if col == COL_MACS:
            return f"{node.macs:,}" if node.macs else ""
        if col in (COL_HTP, COL_GPU, COL_CPU):
            backend = BACKENDS[col - COL_HTP]
            decision = self._decisions.get(node.id)
            score = decision.scores.get(backend) if decision is not None else None
            support = self._support(node.id, backend)
            if score is not None and (
                score.supported or support is None or support.source != "backend"
            ):
                return f"{score.score:.0f}" if score.supported else "rejected"
            if support is None:
                return "" if self.report is None else "n/a"
            if support.source == "backend":  # the backend itself is not available here
                return "unavailable"
            return "supported" if support.supported else "rejected"
        if col == COL_BACKEND:
            decision = self._decisions.get(node.id)
            return decision.backend.upper() if decision is not None else ""
        if col == COL_PIN:
            return self.pins.get(node.id, "").upper()
        if col == COL_REASON:
            decision = self._decisions.get(node.id)
            if decision is not None:
                return decision.reason
            rejected = self._rejections(node.id)
            return "; ".join(rejected)
        return ""

    def _rejections(self, node_id: str) -> list[str]:
        if self.report is None:
            return []
        return [
            f"{b.upper()}: {s.reason}"
            for b, s in self.report.nodes.get(node_id, {}).items()
            if not s.supported and s.source != "backend"
        ]

    def _sort_key(self, node: Any, col: int) -> Any:
        if col == COL_MACS:
            return int(node.macs or 0)
        if col in (COL_HTP, COL_GPU, COL_CPU):
            decision = self._decisions.get(node.id)
            score = decision.scores.get(BACKENDS[col - COL_HTP]) if decision else None
            return float(score.score) if score is not None else -1.0
        return self._display(node, col)

    def _tooltip(self, node: Any, col: int) -> str | None:
        if col in (COL_HTP, COL_GPU, COL_CPU):
            backend = BACKENDS[col - COL_HTP]
            decision = self._decisions.get(node.id)
            score = decision.scores.get(backend) if decision else None
            support = self._support(node.id, backend)
            lines = [support.tooltip(backend)] if support is not None else []
            if score is not None and score.supported:
                lines.append(
                    f"precision {score.precision} (fit {score.precision_fit:.2f}), VTCM fit "
                    f"{score.size_fit:.2f}, power {score.power_efficiency:.2f}, cost "
                    f"{score.cost_ms:.4f} ms ({score.cost_source})"
                )
            return "\n".join(lines) or None
        if col in (COL_REASON, COL_BACKEND, COL_NODE):
            text = self._display(node, COL_REASON)
            if self.report is not None:
                text = (text + "\n" if text else "") + self.report.tooltip(node.id)
            return text or None
        return None

    def _foreground(self, node: Any, col: int) -> Any:
        if col == COL_BACKEND:
            decision = self._decisions.get(node.id)
            if decision is not None:
                return QBrush(QColor(BACKEND_COLOURS[decision.backend]))
        if col in (COL_HTP, COL_GPU, COL_CPU):
            shown = self._display(node, col)
            if shown == "rejected":
                return QBrush(QColor("#c62828"))
            if shown in ("unavailable", "n/a"):
                return QBrush(QColor("#9e9e9e"))
        return None
