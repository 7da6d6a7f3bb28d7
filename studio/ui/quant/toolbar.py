"""The workspace's top row: actions, plan-wide defaults, undo/redo; and local shortcuts.

Plan-wide defaults (activation/weight bit widths, range method) are edits like any other: they go
through ``ws.set_defaults`` and so onto the undo stack.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QToolButton, QWidget

from studio.core.calibration import METHODS

TECHNIQUE_CHOICES = (
    ("No techniques", ""),
    ("Techniques: auto", "auto"),
    ("Bias correction", "bias-correction"),
    ("CLE + bias correction", "cle,bias-correction"),
    ("MSE scales + bias corr.", "seqmse,bias-correction"),
    ("AdaRound + bias corr.", "adaround,bias-correction"),
)


def build_toolbar(ws) -> QHBoxLayout:
    """Create the buttons and combos as attributes of ``ws`` and lay them out in one row."""
    row = QHBoxLayout()
    row.setSpacing(6)

    def button(text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
        b = QPushButton(text, ws)
        b.setToolTip(tip)
        b.clicked.connect(lambda _checked=False, f=slot: f())
        row.addWidget(b)
        return b

    ws.calibrate_button = button(
        "Calibrate…",
        "Run the model once over calibration data to learn tensor ranges",
        ws.calibrate_dialog,
    )
    ws.analyse_button = button(
        "Analyse", "Measure per-layer SQNR: float model vs the quantised plan", ws.analyse
    )
    ws.backend = QComboBox(ws)
    ws.backend.addItem("on CPU", "cpu")
    ws.backend.addItem("on QNN HTP", "htp")
    ws.backend.setToolTip(
        "Where the quantised model runs for SQNR: CPU (ORT QDQ) or QNN HTP (the simulator on "
        "x86-64, in the worker process)"
    )
    row.addWidget(ws.backend)
    ws.check_htp_button = button(
        "Check HTP",
        "Ask QNN which nodes of this plan's QDQ model the target's HTP would not take, and why "
        "(the editor's HTP column)",
        ws.check_htp,
    )
    ws.sim_vs_htp_button = button(
        "Sim vs HTP",
        "Per layer: SQNR on the CPU simulation and on the target's HTP, with the layers where "
        "they disagree flagged",
        ws.sim_vs_htp,
    )
    ws.automix_button = button(
        "Auto-mix…",
        "Raise the worst tensors to 16 bits until a target output SQNR is met",
        ws.automix_dialog,
    )
    row.addSpacing(12)
    ws.import_button = button(
        "Import…",
        "Import encodings (QNN overrides, AIMET 1.0.0/2.0.0, ORT, npu-studio)",
        ws.import_dialog,
    )
    ws.export_button = button("Export…", "Export the plan's encodings", ws.export_dialog)
    ws.build_button = button(
        "Build QDQ model…", "Write the QDQ ONNX model of this plan", ws.build_dialog
    )
    row.addStretch(1)

    ws.act_bits = QComboBox(ws)
    ws.act_bits.addItems(["A8", "A16"])
    ws.act_bits.setToolTip("Default activation bit width")
    ws.weight_bits = QComboBox(ws)
    # no W16: QNN HTP has no 16-bit Conv/Gemm/MatMul weights (studio.core.quantize.editing)
    ws.weight_bits.addItems(["W4", "W8"])
    ws.weight_bits.setCurrentText("W8")
    ws.weight_bits.setToolTip("Default weight bit width")
    ws.method = QComboBox(ws)
    ws.method.addItems(list(METHODS))
    ws.method.setToolTip("How a calibrated range is chosen from the histogram")
    # post-training techniques the "Build QDQ model…" action applies (core: quantize.techniques)
    ws.techniques = QComboBox(ws)
    for label, names in TECHNIQUE_CHOICES:
        ws.techniques.addItem(label, names)
    ws.techniques.setToolTip(
        "Post-training techniques for Build QDQ: cross-layer equalisation, bias correction, "
        "AdaRound, MSE weight scales; 'auto' keeps the best by output SQNR"
    )
    for combo in (ws.act_bits, ws.weight_bits, ws.method, ws.techniques):
        row.addWidget(combo)
    ws.act_bits.activated.connect(
        lambda _i: ws.set_defaults(activation_bitwidth=int(ws.act_bits.currentText()[1:]))
    )
    ws.weight_bits.activated.connect(
        lambda _i: ws.set_defaults(weight_bitwidth=int(ws.weight_bits.currentText()[1:]))
    )
    ws.method.activated.connect(lambda _i: ws.set_defaults(method=ws.method.currentText()))

    stack: QUndoStack = ws.ctx.undo_stack
    ws.undo_button = QToolButton(ws)
    ws.undo_button.setText("↶")
    ws.undo_button.setToolTip("Undo (Ctrl+Z)")
    ws.undo_button.clicked.connect(stack.undo)
    ws.redo_button = QToolButton(ws)
    ws.redo_button.setText("↷")
    ws.redo_button.setToolTip("Redo (Ctrl+Shift+Z)")
    ws.redo_button.clicked.connect(stack.redo)
    stack.canUndoChanged.connect(ws.undo_button.setEnabled)
    stack.canRedoChanged.connect(ws.redo_button.setEnabled)
    ws.undo_button.setEnabled(stack.canUndo())
    ws.redo_button.setEnabled(stack.canRedo())
    row.addWidget(ws.undo_button)
    row.addWidget(ws.redo_button)
    return row


def install_local_shortcuts(widget: QWidget, stack: QUndoStack) -> list[QAction]:
    """Ctrl+Z / Ctrl+Shift+Z (and Ctrl+Y) on ``widget`` unless its window already has an Undo
    action: two actions on the same keys in one window are ambiguous and neither would fire."""
    undo_keys = QKeySequence("Ctrl+Z")
    for action in widget.window().findChildren(QAction):
        if any(
            key.matches(undo_keys) == QKeySequence.SequenceMatch.ExactMatch
            for key in action.shortcuts()
        ):
            return []
    undo = QAction("Undo", widget)
    undo.setShortcuts([undo_keys])
    undo.triggered.connect(stack.undo)
    redo = QAction("Redo", widget)
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    redo.triggered.connect(stack.redo)
    for action in (undo, redo):
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        widget.addAction(action)
    return [undo, redo]
