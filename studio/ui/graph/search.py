"""Find nodes by name, op type or tensor name; a small search bar with next/previous.

The matching itself (:func:`find_nodes`) is plain Python over ``ModelGraph.nodes`` so it is tested
without widgets. An exact op type (``MatMul``) matches every node of that type; otherwise the text
is a case-insensitive substring of the node id/name or of one of its input/output tensor names.
Results keep the graph's topological order, so "next" walks the model from inputs to outputs.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget


def find_nodes(graph: Any, text: str) -> list[str]:
    """Ids of nodes matching ``text`` (see module docstring); empty text matches nothing."""
    query = text.strip()
    if not query or graph is None:
        return []
    lowered = query.lower()
    by_type = [n.id for n in graph.nodes if n.op_type.lower() == lowered]
    if by_type:
        return by_type
    hits = []
    for node in graph.nodes:
        if lowered in node.id.lower() or (node.name and lowered in node.name.lower()):
            hits.append(node.id)
        elif any(lowered in t.lower() for t in node.inputs if t) or any(
            lowered in t.lower() for t in node.outputs if t
        ):
            hits.append(node.id)
    return hits


class _SearchEdit(QLineEdit):
    """A line edit where Enter / Shift+Enter step through results and Escape clears."""

    step = Signal(int)
    escape = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            shift = event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            self.step.emit(-1 if shift else 1)
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escape.emit()
            return
        super().keyPressEvent(event)


class SearchBar(QWidget):
    """Query field, "3 / 17" counter and previous/next buttons."""

    query_changed = Signal(str)
    step = Signal(int)  # +1 next, -1 previous

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("graphSearch")
        self.edit = _SearchEdit(self)
        self.edit.setPlaceholderText("Find node, op type or tensor  (Ctrl+F)")
        self.edit.setClearButtonEnabled(True)
        self.edit.setMinimumWidth(260)
        self.count = QLabel("", self)
        self.count.setObjectName("searchCount")
        self.count.setMinimumWidth(64)
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.prev_button = QToolButton(self)
        self.prev_button.setText("▲")
        self.prev_button.setToolTip("Previous match (Shift+F3)")
        self.next_button = QToolButton(self)
        self.next_button.setText("▼")
        self.next_button.setToolTip("Next match (F3)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.count)
        layout.addWidget(self.prev_button)
        layout.addWidget(self.next_button)
        self.edit.textChanged.connect(self.query_changed)
        self.edit.step.connect(self.step)
        self.edit.escape.connect(self.edit.clear)
        self.prev_button.clicked.connect(lambda: self.step.emit(-1))
        self.next_button.clicked.connect(lambda: self.step.emit(1))

    def focus(self) -> None:
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.selectAll()

    def set_result(self, index: int, total: int, text: str | None = None) -> None:
        query = self.edit.text() if text is None else text
        if not query.strip():
            self.count.setText("")
        elif total == 0:
            self.count.setText("no match")
        else:
            self.count.setText(f"{index + 1} / {total}")
