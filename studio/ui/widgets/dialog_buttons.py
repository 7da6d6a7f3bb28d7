"""The OK/Cancel row of the studio's small choice dialogs.

Every such dialog wants the same box: OK (renamed after what the dialog does: "Build",
"Calibrate") and Cancel, wired to ``accept``/``reject``. The box is returned so a dialog can
enable OK only while its fields are valid (``button(QDialogButtonBox.StandardButton.Ok)``) or add
buttons of its own.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox


def ok_cancel_buttons(dialog: QDialog, ok_text: str | None = None) -> QDialogButtonBox:
    """An OK/Cancel box owned by ``dialog`` and wired to its accept/reject; ``ok_text`` renames
    OK. The caller still lays it out."""
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog
    )
    if ok_text is not None:
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons
