"""Small dialogs of the Quantization workspace: calibration data source, export format, auto-mix.

They only collect choices; the workspace runs the work. Random calibration data is allowed
(useful to try the pipeline) but the dialog says plainly, in the warning colour, that encodings
from random data say nothing about real inputs (the core's RANDOM_WARNING text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.calibration import METHODS, RANDOM_WARNING
from studio.core.calibration.methods import REGISTRY as METHOD_REGISTRY
from studio.core.encodings import FORMATS
from studio.core.encodings.formats import REGISTRY as FORMAT_REGISTRY
from studio.core.engine.registry import is_x86_host
from studio.core.profiling.cycles import DEFAULT_RUNS
from studio.ui.quant.style import color
from studio.ui.widgets.dialog_buttons import ok_cancel_buttons

SOURCE_KINDS = (
    ("folder", "Image or .npy folder"),
    ("file", ".npz / .npy file"),
    ("random", "Random data"),
)
METHOD_LABELS = {m.name: m.label for m in METHOD_REGISTRY.values()}
FORMAT_LABELS = {f.name: f.label for f in FORMAT_REGISTRY.values()}


@dataclass
class CalibrationChoice:
    data: str  # folder, file or "random:N"
    method: str
    percentile: float


class CalibrateDialog(QDialog):
    """Where the calibration samples come from and how ranges are chosen."""

    def __init__(
        self,
        parent: QWidget | None = None,
        data: str = "",
        method: str = "minmax",
        percentile: float = 99.99,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("calibrateDialog")
        self.setWindowTitle("Calibrate")
        self.setMinimumWidth(520)
        self.kind = QComboBox(self)
        for key, label in SOURCE_KINDS:
            self.kind.addItem(label, key)
        self.path = QLineEdit(self)
        self.path.setPlaceholderText("folder of images / .npy files, or an .npz file")
        self.browse = QPushButton("Browse…", self)
        self.browse.clicked.connect(self._browse)
        self.count = QSpinBox(self)
        self.count.setRange(1, 10000)
        self.count.setValue(16)
        self.count.setSuffix(" samples")
        self.warning = QLabel("⚠ " + RANDOM_WARNING[0].upper() + RANDOM_WARNING[1:], self)
        self.warning.setObjectName("quantWarning")
        self.warning.setStyleSheet(f"color: {color('warning')};")
        self.warning.setWordWrap(True)
        self.method = QComboBox(self)
        for m in METHODS:
            self.method.addItem(METHOD_LABELS.get(m, m), m)
        self.method.setCurrentIndex(max(0, self.method.findData(method)))
        self.percentile = QDoubleSpinBox(self)
        self.percentile.setDecimals(3)
        self.percentile.setRange(50.001, 100.0)
        self.percentile.setValue(percentile)
        self.percentile.setSuffix(" %")

        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("Source", self.kind)
        form.addRow("Path", path_row)
        form.addRow("Random", self.count)
        form.addRow("", self.warning)
        form.addRow("Range method", self.method)
        form.addRow("Percentile", self.percentile)
        self.buttons = ok_cancel_buttons(self, "Calibrate")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

        self.kind.currentIndexChanged.connect(self._update)
        self.method.currentIndexChanged.connect(self._update)
        self.path.textChanged.connect(self._update)
        if not data:  # nothing chosen: random data, warned, rather than the current folder
            data = f"random:{self.count.value()}"
        if data.startswith("random:"):
            self.kind.setCurrentIndex(2)
            self.count.setValue(int(data.split(":", 1)[1] or 16))
        elif data:
            self.kind.setCurrentIndex(1 if Path(data).is_file() else 0)
            self.path.setText(data)
        self._update()

    def choice(self) -> CalibrationChoice:
        key = self.kind.currentData()
        data = f"random:{self.count.value()}" if key == "random" else self.path.text().strip()
        return CalibrationChoice(data, self.method.currentData(), self.percentile.value())

    def _update(self) -> None:
        random = self.kind.currentData() == "random"
        self.path.setEnabled(not random)
        self.browse.setEnabled(not random)
        self.count.setEnabled(random)
        self.warning.setVisible(random)
        self.percentile.setEnabled(self.method.currentData() == "percentile")
        ok = random or bool(self.path.text().strip())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def _browse(self) -> None:
        if self.kind.currentData() == "folder":
            path = QFileDialog.getExistingDirectory(self, "Calibration folder")
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "Calibration data", "", "Arrays (*.npz *.npy);;All files (*)"
            )
        if path:
            self.path.setText(path)


class ExportDialog(QDialog):
    """Format and destination of an encodings export."""

    def __init__(self, parent: QWidget | None = None, default_path: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export encodings")
        self.setMinimumWidth(560)
        self.format = QComboBox(self)
        for fmt in FORMATS:
            self.format.addItem(FORMAT_LABELS.get(fmt, fmt), fmt)
        self.path = QLineEdit(default_path, self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("File", row)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def choice(self) -> tuple[str, str]:
        return self.path.text().strip(), self.format.currentData()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export encodings", self.path.text(), "JSON (*.json);;All files (*)"
        )
        if path:
            self.path.setText(path)


class AutoMixDialog(QDialog):
    """Target output SQNR of the auto-mix search, its latency budget on the target device's
    estimate, whether per-layer MSE scales are among its moves, and whether each point's HTP
    cycles are measured.

    The cycles box follows ``probe`` (a :class:`studio.ui.quant.htp_probe.HtpProbe`): enabled only
    once the backend probe says QNN HTP is available here, otherwise disabled with the reason,
    so the curve never promises a speed axis this machine cannot measure.
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        target_db: float = 30.0,
        probe=None,
        device: str = "",
        start_ms: float | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("autoMixDialog")
        self.setWindowTitle("Auto mixed precision")
        self.setMinimumWidth(460)
        self.target = QDoubleSpinBox(self)
        self.target.setRange(0.0, 150.0)
        self.target.setDecimals(1)
        self.target.setSuffix(" dB")
        self.target.setValue(target_db)
        self.steps = QSpinBox(self)
        self.steps.setRange(1, 100)
        self.steps.setValue(10)
        self.steps.setToolTip("Search steps: each widens the worst tensor and measures again")
        self.use_budget = QCheckBox("Latency budget", self)
        self.budget = QDoubleSpinBox(self)
        self.budget.setRange(0.001, 100000.0)
        self.budget.setDecimals(3)
        self.budget.setSuffix(" ms")
        self.budget.setValue(round((start_ms or 1.0) * 1.1, 3))
        self.budget.setEnabled(False)
        self.use_budget.toggled.connect(self.budget.setEnabled)
        where = device or "the target device"
        self.budget.setToolTip(
            f"Stop before a move whose estimated latency on {where} would exceed this "
            "(device estimate, not a measurement)"
        )
        self.speed_note = QLabel(
            f"Moves are ranked by SQNR gained per estimated ms on {where} (device estimate); "
            "every point shows its estimate."
            + (f" Now ≈{start_ms:.3g} ms (estimated)." if start_ms else ""),
            self,
        )
        self.speed_note.setObjectName("quantChartCaption")
        self.speed_note.setWordWrap(True)
        self.techniques = QCheckBox("Also try MSE-optimal weight scales per layer (seqmse)", self)
        self.techniques.setChecked(True)
        self.techniques.setToolTip(
            "A technique move changes a layer's weight scales, not its bit width: it costs no "
            "device time and is kept only where the measured output SQNR gains"
        )
        self.cycles = QCheckBox("Measure HTP cycles of each point", self)
        self.cycles_note = QLabel(self)
        self.cycles_note.setObjectName("quantChartCaption")
        self.cycles_note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Target output SQNR", self.target)
        form.addRow("Max steps", self.steps)
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.use_budget)
        budget_row.addWidget(self.budget, 1)
        form.addRow("Speed", budget_row)
        form.addRow("", self.speed_note)
        form.addRow("", self.techniques)
        form.addRow("", self.cycles)
        form.addRow("", self.cycles_note)
        self.buttons = ok_cancel_buttons(self, "Search")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.probe = probe
        if probe is not None:
            probe.changed.connect(self._update)
        self._update()

    def choice(self) -> tuple[float, int, bool]:
        """(target dB, max steps, measure HTP cycles)."""
        measure = self.cycles.isEnabled() and self.cycles.isChecked()
        return self.target.value(), self.steps.value(), measure

    def options(self) -> dict:
        """``latency_budget_ms`` (None: no budget) and ``techniques`` (per-layer moves)."""
        return {
            "latency_budget_ms": self.budget.value() if self.use_budget.isChecked() else None,
            "techniques": ("seqmse",) if self.techniques.isChecked() else (),
        }

    def _update(self) -> None:
        available = None if self.probe is None else self.probe.available
        self.cycles.setEnabled(bool(available))
        if available:
            self.cycles_note.setText(
                "Each point also runs on QNN HTP (CPU fallback off): accelerator cycles of one "
                f"inference, lowest of {DEFAULT_RUNS} profiled runs"
                + ("; simulated on this x86-64 host." if is_x86_host() else ".")
            )
        else:
            reason = self.probe.reason if self.probe is not None else "no backend probe"
            prefix = "" if available is None else "QNN HTP unavailable: "
            self.cycles_note.setText(prefix + reason)
            self.cycles.setChecked(False)
        self.cycles.setToolTip(self.cycles_note.text())
        self.adjustSize()  # the note's wrapped height changes with its text
