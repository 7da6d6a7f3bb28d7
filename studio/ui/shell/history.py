"""The History view: every edit on ``ctx.undo_stack``, clickable to jump back and forth.

One QUndoStack serves every workspace (StudioContext), so this single view covers them all.
"""

from __future__ import annotations

from PySide6.QtWidgets import QUndoView, QWidget


class HistoryView(QUndoView):
    """A QUndoView over the context's stack; the first row is the model as opened."""

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(ctx.undo_stack, parent)
        self.setObjectName("historyView")
        self.setEmptyLabel("Model as opened")
        self.setAlternatingRowColors(False)
