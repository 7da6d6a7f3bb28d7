"""Cell editors of the tensor table: a bit-width combo and numeric editors that refuse bad text.

The editors only parse; the real validation is the core's (``Encoding.validate`` and the
``EncodingsError`` it raises), run when the model's ``setData`` builds the new encoding. A
rejected value leaves the cell unchanged and the error message is shown by the workspace, so the
user reads exactly what the core objected to ("scale[0] = -1.0 is not positive").
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QDoubleValidator, QIntValidator
from PySide6.QtWidgets import QComboBox, QLineEdit, QStyledItemDelegate, QWidget

BITWIDTH_CHOICES = ("4", "8", "16", "float16", "float32")


class BitwidthDelegate(QStyledItemDelegate):
    """A combo of the bit widths QNN HTP runs: 4/8/16-bit integers or a float fallback."""

    allowed_fn = None  # tensor name -> integer widths HTP takes (set by the editor)

    def createEditor(self, parent: QWidget, option, index: QModelIndex) -> QWidget:  # noqa: N802
        combo = QComboBox(parent)
        combo.setObjectName("bitwidthEditor")
        name = index.data(Qt.ItemDataRole.UserRole + 2)  # the table's TENSOR_ROLE
        allowed = self.allowed_fn(name) if self.allowed_fn and name else None
        choices = [
            c
            for c in BITWIDTH_CHOICES
            if allowed is None or c.startswith("float") or int(c) in allowed
        ]
        combo.addItems(choices)
        combo.activated.connect(lambda _i, c=combo: self._commit(c))
        return combo

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:  # noqa: N802
        current = str(index.data(Qt.ItemDataRole.EditRole) or "8")
        i = editor.findText(current)
        editor.setCurrentIndex(max(i, 0))

    def setModelData(self, editor: QWidget, model, index: QModelIndex) -> None:  # noqa: N802
        model.setData(index, editor.currentText(), Qt.ItemDataRole.EditRole)

    def _commit(self, editor: QWidget) -> None:
        self.commitData.emit(editor)
        self.closeEditor.emit(editor)


class NumberDelegate(QStyledItemDelegate):
    """A line edit with a validator: only numbers can be typed; ``integer`` for offsets."""

    def __init__(self, integer: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.integer = integer

    def createEditor(self, parent: QWidget, option, index: QModelIndex) -> QWidget:  # noqa: N802
        edit = QLineEdit(parent)
        edit.setObjectName("numberEditor")
        if self.integer:
            edit.setValidator(QIntValidator(-(2**31), 2**31 - 1, edit))
        else:
            validator = QDoubleValidator(edit)
            validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
            validator.setLocale(validator.locale().c())
            edit.setValidator(validator)
        return edit

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:  # noqa: N802
        value = index.data(Qt.ItemDataRole.EditRole)
        editor.setText(
            "" if value is None else repr(value) if isinstance(value, float) else str(value)
        )
        editor.selectAll()

    def setModelData(self, editor: QWidget, model, index: QModelIndex) -> None:  # noqa: N802
        # setData parses and validates through the core; a refusal is reported there.
        model.setData(index, editor.text(), Qt.ItemDataRole.EditRole)
