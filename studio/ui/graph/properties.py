"""The properties panel: everything known about the selected node, group or graph input/output.

Sections: the node (op type, id, name, whether the id is synthetic, domain, scope), statistics
(parameters, MACs, activation bytes), attributes, inputs and outputs with shape and dtype (weights
marked as such). A collapsed group shows its members' totals and op histogram instead.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.ui.graph.overlay import format_value
from studio.ui.graph.scene import format_shape


def _fmt_int(value: int) -> str:
    return f"{value:,}" if value < 10_000 else f"{value:,}  ({format_value(float(value))})"


def _attr_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


class PropertiesPanel(QWidget):
    """Title, subtitle and a two-column tree of sections."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("propertiesPanel")
        self.title = QLabel("No selection", self)
        self.title.setObjectName("propertiesTitle")
        self.subtitle = QLabel("Click a node to see its properties.", self)
        self.subtitle.setObjectName("propertiesSubtitle")
        self.subtitle.setWordWrap(True)
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("propertiesTree")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Property", "Value"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setWordWrap(False)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 170)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addWidget(self.tree, 1)

    # ----- content ------------------------------------------------------------------------
    def clear(self) -> None:
        self.title.setText("No selection")
        self.subtitle.setText("Click a node to see its properties.")
        self.tree.clear()

    def _section(self, title: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(self.tree, [title, ""])
        font = QFont(item.font(0))
        font.setBold(True)
        item.setFont(0, font)
        item.setFirstColumnSpanned(True)
        item.setExpanded(True)
        return item

    def _row(self, parent: QTreeWidgetItem, key: str, value: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [key, value])
        item.setToolTip(0, key)
        item.setToolTip(1, value)
        return item

    def _tensor_rows(self, parent: QTreeWidgetItem, graph: Any, names: list[str]) -> None:
        for name in names:
            if not name:
                self._row(parent, "(optional)", "not connected")
                continue
            t = graph.tensors.get(name)
            if t is None:
                self._row(parent, name, "?")
                continue
            text = f"{t.dtype or '?'} [{format_shape(t.shape)}]"
            if t.is_initializer:
                text += " weight"
            elif t.is_input:
                text += " graph input"
            self._row(parent, name, text)

    def rows(self) -> dict[str, str]:
        """All key/value rows as a flat dict ("Section/key" -> value), for tests and copying."""
        out: dict[str, str] = {}
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            for j in range(section.childCount()):
                child = section.child(j)
                out[f"{section.text(0)}/{child.text(0)}"] = child.text(1)
        return out

    def show_node(self, graph: Any, node_id: str) -> None:
        node = graph.node_by_id.get(node_id)
        if node is None:
            self.clear()
            return
        self.tree.clear()
        self.title.setText(node.op_type)
        self.subtitle.setText(node.name or f"{node.id}  (unnamed node)")
        info = self._section("Node")
        self._row(info, "Op type", node.op_type + (f"  ({node.domain})" if node.domain else ""))
        self._row(info, "Id", node.id)
        self._row(
            info,
            "Id kind",
            "synthetic (the node has no unique name)" if node.synthetic_id else "node name",
        )
        self._row(info, "Name", node.name or "(none)")
        self._row(info, "Scope", "/".join(node.scope) or "(top level)")
        self._row(info, "Index", str(node.index))
        stats = self._section("Statistics")
        pending = getattr(graph, "shapes_pending", False)  # counted once shapes are inferred
        for key, value in (
            ("Parameters", node.params),
            ("MACs", node.macs),
            ("Activation bytes", node.activation_bytes),
        ):
            self._row(stats, key, "… (inferring shapes)" if pending else _fmt_int(value))
        if node.attributes:
            attrs = self._section("Attributes")
            for key, value in node.attributes.items():
                self._row(attrs, key, _attr_text(value))
        self._tensor_rows(self._section("Inputs"), graph, node.inputs)
        self._tensor_rows(self._section("Outputs"), graph, node.outputs)

    def show_group(self, graph: Any, scope: str, members: list[str]) -> None:
        nodes = [graph.node_by_id[m] for m in members if m in graph.node_by_id]
        self.tree.clear()
        self.title.setText(scope.rsplit("/", 1)[-1])
        self.subtitle.setText(f"Collapsed scope /{scope} · double-click to expand")
        info = self._section("Group")
        self._row(info, "Scope", "/" + scope)
        self._row(info, "Nodes", str(len(nodes)))
        self._row(info, "Parameters", _fmt_int(sum(n.params for n in nodes)))
        self._row(info, "MACs", _fmt_int(sum(n.macs for n in nodes)))
        ops = self._section("Op types")
        for op, count in Counter(n.op_type for n in nodes).most_common():
            self._row(ops, op, str(count))

    def show_tensor(self, graph: Any, name: str, role: str) -> None:
        t = graph.tensors.get(name)
        self.tree.clear()
        self.title.setText(name)
        self.subtitle.setText(f"Graph {role}")
        info = self._section("Tensor")
        self._row(info, "Name", name)
        if t is not None:
            self._row(info, "Dtype", t.dtype or "?")
            self._row(info, "Shape", format_shape(t.shape))
            dynamic = t.shape is None or any(not isinstance(d, int) or d <= 0 for d in t.shape)
            self._row(info, "Dynamic", "yes (fix with --input-shape)" if dynamic else "no")
            if t.nbytes is not None:
                self._row(info, "Bytes", _fmt_int(t.nbytes))
            if t.producer:
                self._row(info, "Producer", t.producer)
            if t.consumers:
                self._row(info, "Consumers", ", ".join(t.consumers[:8]))
