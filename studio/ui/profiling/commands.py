"""Undoable edits of the Profiling workspace (pushed on the studio's one ``ctx.undo_stack``)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand


class RenameRunCommand(QUndoCommand):
    """Relabel a run in the history; ``apply(run_id, label)`` does the relabelling and the redraw.

    The label lives in the project (``Project.rename_run``) or, without one, in the in-memory
    record, so the command only carries the two labels and the run's id.
    """

    def __init__(
        self, run_id: str, before: str, after: str, apply: Callable[[str, str], None]
    ) -> None:
        super().__init__(f"Rename run '{before}' to '{after}'")
        self.run_id = run_id
        self.before = before
        self.after = after
        self._apply = apply

    def redo(self) -> None:
        self._apply(self.run_id, self.after)

    def undo(self) -> None:
        self._apply(self.run_id, self.before)
