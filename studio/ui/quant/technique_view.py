"""The "Techniques" tab: each post-training technique's effect per layer, before and after.

The figures are the core's (``quantize.techniques``: the weight-only output SQNR of each layer,
``10 log10(E[(W x)²] / E[((Wq - W) x)²])`` on calibration inputs), from the last Build QDQ with
techniques or the last auto-mix search, which fits them per layer and keeps only those it measured
as worth it (marked "chosen"). The view only lays them out, largest gain first.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QLabel,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.ui.widgets.read_only_table import read_only_table

COLUMNS = ("Layer / weight", "Technique", "Before dB", "After dB", "Gain dB", "")
GAIN_COLOUR = QColor(150, 220, 160)
LOSS_COLOUR = QColor(255, 170, 150)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # "inf" from the core's JSON
        return value
    return "exact" if math.isinf(value) else f"{value:.1f}"


def _num(value: Any) -> float:
    if isinstance(value, str):
        return math.inf if value == "inf" else -math.inf if value == "-inf" else math.nan
    return float(value)


class TechniqueEffectsView(QWidget):
    """One table of ``rows``: {name, technique, before_db, after_db, chosen}."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.summary = QLabel(
            "Build QDQ with techniques, or run Auto-mix, to see each technique's effect per "
            "layer (weight-only output SQNR on calibration inputs, before and after).",
            self,
        )
        self.summary.setObjectName("quantChartCaption")
        self.summary.setWordWrap(True)
        self.table = read_only_table(COLUMNS, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def show_build(self, tech: dict[str, Any]) -> None:
        """A Build QDQ's ``techniques`` summary (the workflow's ``run.summary()``)."""
        names = "+".join(tech.get("techniques") or []) or "none"
        rows = [
            {
                "name": f"{e['node']} / {e['weight']}",
                "technique": names,
                "before_db": e["before_db"],
                "after_db": e["after_db"],
                "chosen": True,
            }
            for e in tech.get("layers", [])
        ]
        label = tech.get("data_label") or "the evaluation data"
        db = tech.get("output_sqnr_db")
        out = f"{db:.1f} dB" if isinstance(db, float) else str(db)
        self._show(
            rows,
            f"Build QDQ with {names}: model output {out} on {label}; per layer, the weight-only "
            "output SQNR on calibration inputs before and after the techniques.",
        )

    def show_automix(self, effects: list[dict[str, Any]], chosen: dict[str, str]) -> None:
        """An auto-mix search's fitted layer techniques; ``chosen``: weight -> technique kept."""
        rows = [
            {
                "name": e["weight"],
                "technique": e["kind"],
                "before_db": e["before_db"],
                "after_db": e["after_db"],
                "chosen": chosen.get(e["weight"]) == e["kind"],
            }
            for e in effects
        ]
        self._show(
            rows,
            f"Auto-mix fitted {len({r['technique'] for r in rows})} technique(s) on "
            f"{len({r['name'] for r in rows})} layers and kept {len(chosen)} where the measured "
            "model output gained (chosen); weight-only output SQNR per layer on calibration "
            "inputs, before and after.",
        )

    def _show(self, rows: list[dict[str, Any]], summary: str) -> None:
        def gain(r: dict[str, Any]) -> float:
            g = _num(r["after_db"]) - _num(r["before_db"])
            return g if math.isfinite(g) else -math.inf

        self.rows = sorted(rows, key=lambda r: -gain(r))
        self.summary.setText(summary if rows else "No layer the techniques apply to.")
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            g = gain(r)
            cells = (
                r["name"],
                r["technique"],
                _fmt(r["before_db"]),
                _fmt(r["after_db"]),
                f"{g:+.1f}" if math.isfinite(g) else "-",
                "chosen" if r["chosen"] else "",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 4 and math.isfinite(g) and abs(g) >= 0.05:
                    item.setBackground(QBrush(GAIN_COLOUR if g > 0 else LOSS_COLOUR))
                self.table.setItem(i, col, item)
