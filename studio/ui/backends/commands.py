"""Undoable edits of the Backends workspace (one QUndoStack for the whole studio)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand


class PinCommand(QUndoCommand):
    """Pin (backend) or unpin (None) a set of nodes; ``apply`` receives the full pins dict."""

    def __init__(
        self,
        before: dict[str, str],
        node_ids: list[str],
        backend: str | None,
        apply: Callable[[dict[str, str]], None],
    ) -> None:
        what = f"to {backend.upper()}" if backend else "(unpin)"
        label = node_ids[0] if len(node_ids) == 1 else f"{len(node_ids)} nodes"
        super().__init__(f"Pin {label} {what}" if backend else f"Unpin {label}")
        self.before = dict(before)
        self.after = dict(before)
        for node_id in node_ids:
            if backend:
                self.after[node_id] = backend
            else:
                self.after.pop(node_id, None)
        self._apply = apply

    def redo(self) -> None:
        self._apply(dict(self.after))

    def undo(self) -> None:
        self._apply(dict(self.before))
