"""The "Assumptions" dialog of the Backends workspace: the assignment's assumed constants, editable.

Why a dialog: phone CPU/GPU rates, energy per ms and boundary costs are not measured by anything
the studio ships; they are ASSUMED (studio.core.assignment.assumptions). The user sees each one
with its unit and default, labelled "assumed", and can change it; the workspace stores only the
changed values in the project (``constraints.assumptions``) and the next Assign uses them.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.assignment.assumptions import ASSUMPTIONS, BY_KEY
from studio.ui.widgets.dialog_buttons import ok_cancel_buttons


def _fmt(value: float) -> str:
    return f"{value:g}"


class AssumptionsDialog(QDialog):
    """One row per assumed constant: what it is, its value, unit and default."""

    def __init__(self, overrides: dict[str, float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Assumptions (assumed constants of the assignment)")
        intro = QLabel(
            "These figures are <b>assumed</b>: nothing the studio ships measures the phone's CPU "
            "or GPU, the energy per backend or the cost of a backend boundary. HTP costs come "
            "from the device estimate instead. Changed values are saved in the project and used "
            "by the next Assign."
        )
        intro.setWordWrap(True)
        grid = QGridLayout()
        for col, title in enumerate(("Assumed constant", "Value", "Unit", "Default")):
            grid.addWidget(QLabel(f"<b>{title}</b>"), 0, col)
        self.fields: dict[str, QLineEdit] = {}
        validator = QDoubleValidator(1e-12, 1e15, 6, self)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        for row, a in enumerate(ASSUMPTIONS, start=1):
            field = QLineEdit(_fmt(overrides.get(a.key, a.default)))
            field.setObjectName(a.key)
            field.setValidator(validator)
            field.setToolTip(f"{a.key} (assumed)")
            field.textChanged.connect(self._refresh)
            self.fields[a.key] = field
            grid.addWidget(QLabel(f"{a.label} (assumed)"), row, 0)
            grid.addWidget(field, row, 1)
            grid.addWidget(QLabel(a.unit), row, 2)
            grid.addWidget(QLabel(_fmt(a.default)), row, 3)
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.clicked.connect(self.reset)
        self.buttons = ok_cancel_buttons(self)
        self.buttons.addButton(self.reset_button, QDialogButtonBox.ButtonRole.ResetRole)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(grid)
        layout.addWidget(self.buttons)
        self._refresh()

    def reset(self) -> None:
        for key, field in self.fields.items():
            field.setText(_fmt(BY_KEY[key].default))

    def _value(self, key: str) -> float | None:
        try:
            value = float(self.fields[key].text())
        except ValueError:
            return None
        return value if math.isfinite(value) and value > 0 else None

    def _refresh(self, *_args: Any) -> None:
        """Bold the changed values; OK only while every value is a positive number."""
        ok = True
        for key, field in self.fields.items():
            value = self._value(key)
            ok = ok and value is not None
            changed = value is not None and not math.isclose(value, BY_KEY[key].default)
            field.setStyleSheet(
                "font-weight: bold" if changed else "" if value is not None else "color: #c62828"
            )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def overrides(self) -> dict[str, float]:
        """The values that differ from their defaults (what the project stores)."""
        out: dict[str, float] = {}
        for key in self.fields:
            value = self._value(key)
            if value is not None and not math.isclose(value, BY_KEY[key].default):
                out[key] = value
        return out
