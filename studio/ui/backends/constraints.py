"""The Backends workspace's constraints: power/performance mode, latency budget, pins and the
assumed constants, saved in the project when there is one (undoable pins through the shared stack).

Why apart: these are the user's inputs to the assignment, with their own storage rules (the
project's ``constraints``, else this page's ``local_pins``/``local_assumptions``); the workspace
runs jobs and shows results. A mixin of :class:`~studio.ui.backends.workspace.BackendsWorkspace`:
it reads the workspace's ``ctx``, ``model``, ``table``, ``proxy``, ``report``, ``status`` and the
constraint widgets (``power``, ``performance``, ``budget``, ``assumptions_button``).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QMenu

from studio.ui.backends.commands import PinCommand
from studio.ui.backends.table import BACKENDS, NODE_ID_ROLE


class ConstraintsEditing:
    """Constraints, pins and assumptions: read from and stored into the project."""

    ctx: Any
    local_pins: dict[str, str]
    local_assumptions: dict[str, float]

    def constraints(self) -> Any:
        from studio.core.project import Constraints

        budget = self.budget.value()
        return Constraints(
            power_critical=self.power.isChecked(),
            performance_critical=self.performance.isChecked(),
            latency_budget_ms=budget if budget > 0 else None,
            pins=dict(self.pins()),
            assumptions=self.assumptions(),
        )

    def pins(self) -> dict[str, str]:
        project = getattr(self.ctx, "project", None)
        if project is not None:
            return dict(project.constraints.pins)
        return dict(self.local_pins)

    def assumptions(self) -> dict[str, float]:
        """The assumed constants the user changed (the project's, else this page's)."""
        project = getattr(self.ctx, "project", None)
        if project is not None:
            return dict(project.constraints.assumptions)
        return dict(self.local_assumptions)

    def set_assumptions(self, overrides: dict[str, float]) -> None:
        """Store changed assumed constants (in the project when there is one); Assign uses them."""
        from studio.core.assignment.assumptions import Assumptions

        Assumptions(overrides)  # refuses unknown keys and non-positive values
        project = getattr(self.ctx, "project", None)
        if project is not None:
            c = self.constraints()
            c.assumptions = dict(overrides)
            project.update("constraints", c)
        else:
            self.local_assumptions = dict(overrides)
        self._show_assumptions()
        self.status.setText(
            f"{len(overrides)} assumed constant(s) changed; press Assign to apply them."
        )

    def edit_assumptions(self) -> None:
        from studio.ui.backends.assumptions import AssumptionsDialog

        dialog = AssumptionsDialog(self.assumptions(), self)
        if dialog.exec():
            self.set_assumptions(dialog.overrides())

    def _show_assumptions(self) -> None:
        changed = len(self.assumptions())
        self.assumptions_button.setText(
            f"Assumptions… ({changed} changed)" if changed else "Assumptions…"
        )

    def _load_constraints(self) -> None:
        project = getattr(self.ctx, "project", None)
        self._show_assumptions()
        if project is None:
            self.model.set_pins(self.local_pins)
            return
        c = project.constraints
        for widget, value in (
            (self.power, c.power_critical),
            (self.performance, c.performance_critical),
        ):
            widget.blockSignals(True)
            widget.setChecked(bool(value))
            widget.blockSignals(False)
        self.budget.blockSignals(True)
        self.budget.setValue(float(c.latency_budget_ms or 0.0))
        self.budget.blockSignals(False)
        self.model.set_pins(c.pins)

    def _on_constraint_toggled(self, checked: bool) -> None:
        sender = self.sender()
        if checked:  # power- and performance-critical exclude each other
            other = self.performance if sender is self.power else self.power
            other.blockSignals(True)
            other.setChecked(False)
            other.blockSignals(False)
        self._store_constraints()

    def _store_constraints(self) -> None:
        project = getattr(self.ctx, "project", None)
        if project is not None:
            project.update("constraints", self.constraints())

    def _apply_pins(self, pins: dict[str, str]) -> None:
        project = getattr(self.ctx, "project", None)
        if project is not None:
            c = self.constraints()
            c.pins = dict(pins)
            project.update("constraints", c)
        else:
            self.local_pins = dict(pins)
        self.model.set_pins(pins)
        self.status.setText(f"{len(pins)} pin(s); press Assign to apply them.")

    def pin_nodes(self, node_ids: list[str], backend: str | None) -> None:
        """Pin ``node_ids`` to ``backend`` (None unpins) through the shared undo stack."""
        if not node_ids:
            return
        self.ctx.undo_stack.push(PinCommand(self.pins(), node_ids, backend, self._apply_pins))

    def _selected_ids(self) -> list[str]:
        rows = self.table.selectionModel().selectedRows()
        return [self.proxy.data(r, NODE_ID_ROLE) for r in rows]

    def _context_menu(self, pos: QPoint) -> None:
        ids = self._selected_ids()
        if not ids:
            return
        menu = QMenu(self)
        available = self.report.available() if self.report is not None else list(BACKENDS)
        for backend in BACKENDS:
            action = menu.addAction(f"Pin to {backend.upper()}")
            action.setEnabled(backend in available)
            if backend not in available and self.report is not None:
                action.setToolTip(self.report.backends.get(backend, {}).get("reason", ""))
            action.triggered.connect(lambda _c=False, b=backend: self.pin_nodes(ids, b))
        menu.addSeparator()
        unpin = menu.addAction("Unpin")
        unpin.setEnabled(any(i in self.pins() for i in ids))
        unpin.triggered.connect(lambda _c=False: self.pin_nodes(ids, None))
        menu.popup(self.table.viewport().mapToGlobal(pos))
