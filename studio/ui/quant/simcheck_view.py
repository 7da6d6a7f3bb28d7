"""The "Sim vs HTP" tab: per layer, SQNR against float on the CPU simulation and on the target's
HTP, side by side, with the layers where they part by more than the threshold flagged.

Why a tab of its own: every other figure in the window comes from one backend; this one says
where the CPU figures can be trusted for the target and where only HTP tells the truth. The
numbers come from the core (``studio.core.accuracy.simcheck``, run in the worker process as a
job); the view only lays them out.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QLabel,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.ui.widgets.read_only_table import read_only_table

COLUMNS = ("Tensor", "Op", "CPU sim dB", "HTP dB", "HTP - CPU dB", "")
FLAG_COLOUR = QColor(255, 196, 120)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # "inf" from the core's JSON
        return value
    if math.isinf(value):
        return "exact" if value > 0 else "-inf"
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


class SimVsHtpView(QWidget):
    """Shows one ``SimVsHtp.to_json()`` result; ``result`` is the last one shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: dict[str, Any] | None = None
        self.summary = QLabel(
            "Press “Sim vs HTP” to measure every layer against the float model on the CPU "
            "simulation and on the target's HTP.",
            self,
        )
        self.summary.setWordWrap(True)
        self.table = read_only_table(COLUMNS, self)  # unsorted: disagreeing layers first
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def show_result(self, result: dict[str, Any]) -> None:
        self.result = result
        layers = result.get("layers", [])
        flagged = set(result.get("flagged", []))
        # disagreeing layers first, then the rest in graph order
        rows = [r for r in layers if r["tensor"] in flagged] + [
            r for r in layers if r["tensor"] not in flagged
        ]
        self.table.setRowCount(len(rows))
        brush = QBrush(FLAG_COLOUR)
        for i, row in enumerate(rows):
            cells = (
                row["tensor"],
                row["op_type"],
                _fmt(row["cpu_sqnr_db"]),
                _fmt(row["htp_sqnr_db"]),
                _fmt(row["diff_db"]),
                "differs" if row["flagged"] else "",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col >= 2:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if row["flagged"]:
                    item.setBackground(brush)
                    item.setForeground(QBrush(QColor(20, 20, 20)))
                    item.setToolTip(
                        f"CPU simulation and HTP differ by more than "
                        f"{result.get('threshold_db', 0):g} dB here: trust the HTP figure"
                    )
                self.table.setItem(i, col, item)
        outputs = "; ".join(
            f"output {name}: CPU {_fmt(v['cpu'])} dB, HTP {_fmt(v['htp'])} dB"
            for name, v in result.get("outputs", {}).items()
        )
        per_layer = "" if result.get("htp_per_layer") else " HTP gave model outputs only."
        notes = " ".join(result.get("notes", []))
        self.summary.setText(
            f"{len(flagged)} of {len(layers)} layers differ by more than "
            f"{result.get('threshold_db', 0):g} dB between the CPU simulation and HTP. "
            f"{outputs[:1].upper() + outputs[1:]}. Measured on {result.get('data') or 'the evaluation data'}; HTP: "
            f"{result.get('target', '?')}.{per_layer}" + (f" Notes: {notes}" if notes else "")
        )

    def flagged_rows(self) -> list[str]:
        """Tensor names of the rows shown as differing (what a user sees highlighted)."""
        return [
            self.table.item(i, 0).text()
            for i in range(self.table.rowCount())
            if self.table.item(i, 5).text() == "differs"
        ]
