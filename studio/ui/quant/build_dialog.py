"""The Build QDQ dialog: where the model goes, which techniques, and block-wise INT4 weights.

Block-wise INT4 (QNN BQ/LPBQ) is offered only where the target's HTP takes it: the dialog asks
the core (``quantize.blockwise.blockwise_preview``, the rule the build applies) which of the
plan's 4-bit weights would be written block-wise at each block size, and says why the others
stay per-channel. With no such weight the control is disabled with the reason. The choice goes
into the same quantise workflow ``npu-studio quantize --block-size`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.quantize.blockwise import BlockwiseChoice, blockwise_preview
from studio.ui.quant.style import color
from studio.ui.widgets.dialog_buttons import ok_cancel_buttons

BLOCK_SIZES = (16, 32, 64, 128, 256)


@dataclass
class BuildChoice:
    path: str
    techniques: str  # "" for none (the workflow's ``techniques``)
    block_size: int | None  # None: per-channel INT4 weights


class BuildQdqDialog(QDialog):
    """Collects a :class:`BuildChoice`; ``proto`` is the prepared float model, ``plan`` the plan
    being built, ``target`` the target device's catalogue entry (name, ``htp_arch``)."""

    def __init__(
        self,
        parent: QWidget | None,
        default_path: str,
        proto: Any,
        plan: Any,
        target: Any,
        techniques: tuple[tuple[str, str], ...],
        technique: str = "",
    ) -> None:
        super().__init__(parent)
        self.setObjectName("buildQdqDialog")
        self.setWindowTitle("Build QDQ model")
        self.setMinimumWidth(600)
        self.proto, self.plan, self.target = proto, plan, target
        self.path = QLineEdit(default_path, self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        self.techniques = QComboBox(self)
        for label, names in techniques:
            self.techniques.addItem(label, names)
        self.techniques.setCurrentIndex(max(0, self.techniques.findData(technique)))
        self.blockwise = QCheckBox("Block-wise INT4 weights (QNN BQ/LPBQ)", self)
        self.block_size = QComboBox(self)
        for size in BLOCK_SIZES:
            self.block_size.addItem(f"{size} input channels per block", size)
        self.block_size.setCurrentIndex(self.block_size.findData(32))
        self.block_note = QLabel(self)
        self.block_note.setObjectName("quantChartCaption")
        self.block_note.setWordWrap(True)
        self.check_note = QLabel(
            f"The result is checked on {target.name}'s QNN HTP (v{target.htp_arch}) with CPU "
            "fallback disabled; any node it would not take is named.",
            self,
        )
        self.check_note.setObjectName("quantChartCaption")
        self.check_note.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        block_row = QHBoxLayout()
        block_row.addWidget(self.blockwise)
        block_row.addWidget(self.block_size, 1)
        form = QFormLayout()
        form.addRow("File", row)
        form.addRow("Techniques", self.techniques)
        form.addRow("4-bit weights", block_row)
        form.addRow("", self.block_note)
        form.addRow("", self.check_note)
        self.buttons = ok_cancel_buttons(self, "Build")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.preview: list[BlockwiseChoice] = []
        self.blockwise.toggled.connect(self._update)
        self.block_size.currentIndexChanged.connect(self._update)
        self.path.textChanged.connect(self._update)
        size = getattr(plan, "weight_block_size", None)
        if size and self.block_size.findData(size) >= 0:
            self.block_size.setCurrentIndex(self.block_size.findData(size))
        self._update()
        self.blockwise.setChecked(bool(size) and self.blockwise.isEnabled())

    def eligible(self) -> list[BlockwiseChoice]:
        """The 4-bit weights HTP would take block-wise at the chosen block size."""
        return [c for c in self.preview if c.reason is None]

    def choice(self) -> BuildChoice:
        block = None
        if self.blockwise.isEnabled() and self.blockwise.isChecked():
            block = int(self.block_size.currentData())
        return BuildChoice(self.path.text().strip(), self.techniques.currentData() or "", block)

    def _update(self) -> None:
        size = int(self.block_size.currentData())
        self.preview = blockwise_preview(self.proto, self.plan, int(self.target.htp_arch), size)
        # any block size at all: offered if some size works for some weight
        usable = any(
            c.reason is None
            for s in BLOCK_SIZES
            for c in blockwise_preview(self.proto, self.plan, int(self.target.htp_arch), s)
        )
        self.blockwise.setEnabled(usable)
        self.block_size.setEnabled(usable and self.blockwise.isChecked())
        if not usable:
            self.blockwise.setChecked(False)
        self.block_note.setText(self._note(usable))
        self.block_note.setStyleSheet("" if usable else f"color: {color('muted')};")
        self.blockwise.setToolTip(self.block_note.text())
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(self.path.text().strip()))
        self.adjustSize()

    def _note(self, usable: bool) -> str:
        arch = f"HTP v{self.target.htp_arch}"
        if not self.preview and self.plan.weight_bitwidth != 4:
            return (
                "Block-wise weights are INT4: set the weights to W4 (or some Conv/Gemm/MatMul "
                "weights to 4 bits) first."
            )
        if not usable:
            reasons = sorted({c.reason for c in self.preview if c.reason})
            first = reasons[0] if reasons else "no 4-bit Conv/Gemm/MatMul weight"
            return f"Not offered on {self.target.name} ({arch}): {first}."
        eligible = self.eligible()
        text = (
            f"{len(eligible)} of {len(self.preview)} 4-bit weights run block-wise on {arch} at "
            f"block {self.block_size.currentData()}"
        )
        if eligible:
            text += " (" + ", ".join(c.tensor for c in eligible[:4])
            text += ", …)" if len(eligible) > 4 else ")"
        others = [c for c in self.preview if c.reason]
        if others:
            text += f"; the others stay per-channel INT4: {others[0].tensor}: {others[0].reason}"
        return text + "."

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Build QDQ model", self.path.text(), "ONNX (*.onnx)"
        )
        if path:
            self.path.setText(path)
