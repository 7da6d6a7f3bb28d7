"""Undo commands for the Quantization workspace, pushed on the one shared ``ctx.undo_stack``.

Each command stores the core objects before and after (``TensorOverride`` copies, an imported
``EncodingSet``), never widget state, so undo/redo replays exactly what the core saw. A bulk edit
over many tensors is one command (one Ctrl+Z), as is applying an auto-mix configuration.

The workspace applies a change first and pushes the command only if the core accepted it
(``applied`` makes the push's initial ``redo`` a no-op): a refused edit never enters the history.
"""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from studio.core.encodings import EncodingSet
from studio.core.quantize.plan import TensorOverride
from studio.ui.quant.session import QuantSession, copy_override

# QUndoCommand ids (mergeWith): consecutive drags of one histogram region merge into one step.
RANGE_DRAG_ID = 0x5154


class SetOverridesCommand(QUndoCommand):
    """Set or clear the overrides of one or many tensors in one step."""

    def __init__(
        self,
        session: QuantSession,
        changes: dict[str, TensorOverride | None],
        text: str,
        merge_key: str | None = None,
    ) -> None:
        super().__init__(text)
        self.session = session
        self.before = {n: copy_override(session.override(n)) for n in changes}
        self.after = {n: copy_override(ov) for n, ov in changes.items()}
        self.merge_key = merge_key
        self.applied = False  # set when the caller already applied it (to catch core refusals)

    def redo(self) -> None:
        if self.applied:
            self.applied = False
            return
        self.session.apply_overrides(self.after)

    def undo(self) -> None:
        self.session.apply_overrides(self.before)

    def id(self) -> int:  # noqa: A003 - Qt's name
        return RANGE_DRAG_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802
        if not isinstance(other, SetOverridesCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        return True


class ImportEncodingsCommand(QUndoCommand):
    """Replace the plan's imported encodings (undo restores the previous import, or none)."""

    def __init__(
        self, session: QuantSession, encset: EncodingSet | None, source: str | None, text: str
    ) -> None:
        super().__init__(text)
        self.session = session
        old = session.plan.imported
        self.before = (old.copy() if old is not None else None, session.plan.imported_source)
        self.after = (encset.copy() if encset is not None else None, source)
        self.applied = False

    def redo(self) -> None:
        if self.applied:
            self.applied = False
            return
        self.session.apply_import(*self.after)

    def undo(self) -> None:
        self.session.apply_import(*self.before)


class SetDefaultsCommand(QUndoCommand):
    """Plan-wide settings: default bit widths, calibration method."""

    def __init__(self, session: QuantSession, values: dict, text: str) -> None:
        super().__init__(text)
        self.session = session
        self.before = {k: getattr(session.plan, k) for k in values}
        self.after = dict(values)
        self.applied = False

    def redo(self) -> None:
        if self.applied:
            self.applied = False
            return
        self.session.apply_defaults(self.after)

    def undo(self) -> None:
        self.session.apply_defaults(self.before)
