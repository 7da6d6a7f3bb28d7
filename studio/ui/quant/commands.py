"""Undo commands for the Quantization workspace, pushed on the one shared ``ctx.undo_stack``.

Each command stores the core objects before and after (``TensorOverride`` copies, an imported
``EncodingSet``), never widget state, so undo/redo replays exactly what the core saw. A bulk edit
over many tensors is one command (one Ctrl+Z), as is applying an auto-mix configuration.

Commands belong to one model (``session.generation``): after another model is opened, an old
command left on the shared stack marks itself obsolete instead of editing the wrong plan.

The workspace applies a change first and pushes the command only if the core accepted it
(``applied`` makes the push's initial ``redo`` a no-op): a refused edit never enters the history.
"""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from studio.core.encodings import EncodingSet
from studio.core.quantize.plan import TensorOverride
from studio.ui.quant.session import QuantSession, copy_override


class _QuantCommand(QUndoCommand):
    """Base: remembers the model it was made for; on another model it does nothing."""

    def __init__(self, session: QuantSession, text: str) -> None:
        super().__init__(text)
        self.session = session
        self.generation = session.generation
        self.applied = False  # set when the caller already applied it (to catch core refusals)

    def _current(self) -> bool:
        if self.session.generation != self.generation:
            self.setObsolete(True)
            return False
        return True

    def redo(self) -> None:
        if self.applied:
            self.applied = False
        elif self._current():
            self._redo()

    def undo(self) -> None:
        if self._current():
            self._undo()

    def _redo(self) -> None:
        raise NotImplementedError

    def _undo(self) -> None:
        raise NotImplementedError


# QUndoCommand ids (mergeWith): consecutive drags of one histogram region merge into one step.
RANGE_DRAG_ID = 0x5154


class SetOverridesCommand(_QuantCommand):
    """Set or clear the overrides of one or many tensors in one step."""

    def __init__(
        self,
        session: QuantSession,
        changes: dict[str, TensorOverride | None],
        text: str,
        merge_key: str | None = None,
    ) -> None:
        super().__init__(session, text)
        self.before = {n: copy_override(session.override(n)) for n in changes}
        self.after = {n: copy_override(ov) for n, ov in changes.items()}
        self.merge_key = merge_key

    def _redo(self) -> None:
        self.session.apply_overrides(self.after)

    def _undo(self) -> None:
        self.session.apply_overrides(self.before)

    def id(self) -> int:  # noqa: A003 - Qt's name
        return RANGE_DRAG_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802
        if not isinstance(other, SetOverridesCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        return True


class ImportEncodingsCommand(_QuantCommand):
    """Replace the plan's imported encodings (undo restores the previous import, or none)."""

    def __init__(
        self, session: QuantSession, encset: EncodingSet | None, source: str | None, text: str
    ) -> None:
        super().__init__(session, text)
        old = session.plan.imported
        self.before = (old.copy() if old is not None else None, session.plan.imported_source)
        self.after = (encset.copy() if encset is not None else None, source)

    def _redo(self) -> None:
        self.session.apply_import(*self.after)

    def _undo(self) -> None:
        self.session.apply_import(*self.before)


class SetDefaultsCommand(_QuantCommand):
    """Plan-wide settings: default bit widths, calibration method."""

    def __init__(self, session: QuantSession, values: dict, text: str) -> None:
        super().__init__(session, text)
        self.before = {k: getattr(session.plan, k) for k in values}
        self.after = dict(values)

    def _redo(self) -> None:
        self.session.apply_defaults(self.after)

    def _undo(self) -> None:
        self.session.apply_defaults(self.before)
