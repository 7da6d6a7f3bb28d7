"""The read-only results table of the Quantization tabs that list per-layer figures.

The Techniques and Sim vs HTP tabs each show one table of text cells that the user reads but
does not edit: fixed columns, no row numbers, the first (name) column taking the spare width and
the figures sized to their contents. They fill cells as ``QTableWidgetItem``s themselves (their
colours and alignments differ).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QHeaderView, QTableWidget, QWidget


def read_only_table(columns: Sequence[str], parent: QWidget | None = None) -> QTableWidget:
    """An empty, non-editable table with header ``columns``; column 0 stretches."""
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for col in range(1, len(columns)):
        header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
    return table
