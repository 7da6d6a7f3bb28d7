"""The control bar: backend (with availability), runs, warm-up, sustained duration, Start/Cancel.

Backend availability comes from the core's probe (a real session on each backend, in the worker
process). A backend that is not present here (QNN GPU needs an Adreno GPU) stays in the list,
disabled, with the probe's reason as its tooltip: the user sees why, and never a number for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from studio.core.assignment.plan import BACKEND_ORDER
from studio.core.engine.backends import REGISTRY
from studio.ui.jobs.background import Background
from studio.ui.widgets import progress

BACKENDS = tuple((name, REGISTRY[name].label) for name in BACKEND_ORDER)  # (name, label)
BROWSE = "__browse__"


def _probe(_ctx: Any) -> Any:
    """The core's backend probe (list[BackendStatus]), or the failure as text for the tooltip."""
    try:
        from studio.core.engine.registry import probe_backends

        return probe_backends()
    except Exception as exc:  # noqa: BLE001 - shown in the combo's tooltip
        return f"{type(exc).__name__}: {exc}"


class ControlBar(QWidget):
    """Emits ``start_requested(options)`` and ``cancel_requested``; shows the job's progress."""

    start_requested = Signal(dict)
    cancel_requested = Signal()
    availability_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.available: dict[str, bool | None] = {name: None for name, _ in BACKENDS}
        self.reasons: dict[str, str] = {}
        # Which file to profile: the open model, or another one (e.g. the QDQ model the
        # Quantization workspace built) so float-on-CPU and QDQ-on-HTP can be compared.
        self.model = QComboBox(self)
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(20)
        self.model.setToolTip("The ONNX file to profile")
        self.model.activated.connect(self._model_activated)
        self._open_model: str | None = None
        self._extra_models: list[str] = []
        self._current_model: str | None = None
        self._rebuild_models()
        self.backend = QComboBox(self)
        for name, label in BACKENDS:
            self.backend.addItem(label, name)
        self.backend.setCurrentIndex(2)
        self.backend.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.backend.setToolTip("Checking which backends this machine can run…")
        self.runs = QSpinBox(self)
        self.runs.setRange(1, 99_999)
        self.runs.setValue(100)
        self.runs.setToolTip("Measured inferences (after warm-up)")
        self.runs.setMaximumWidth(90)
        self.warmup = QSpinBox(self)
        self.warmup.setRange(0, 9_999)
        self.warmup.setValue(10)
        self.warmup.setToolTip("Inferences run and discarded before measuring")
        self.warmup.setMaximumWidth(70)
        self.sustained = QCheckBox("Sustained", self)
        self.sustained.setToolTip("Run for a fixed time instead of a number of runs")
        self.duration = QDoubleSpinBox(self)
        self.duration.setRange(0.5, 999.0)
        self.duration.setDecimals(1)
        self.duration.setValue(10.0)
        self.duration.setSuffix(" s")
        self.duration.setEnabled(False)
        self.duration.setMaximumWidth(90)
        self.sustained.toggled.connect(self.duration.setEnabled)
        self.sustained.toggled.connect(lambda on: self.runs.setEnabled(not on))
        self.start_btn = QPushButton("▶  Start", self)
        self.start_btn.setObjectName("primaryButton")
        self.start_btn.clicked.connect(self._start)
        self.cancel_btn = QPushButton("Cancel", self)
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel_requested)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedWidth(110)
        self.progress.setFixedHeight(8)
        self.status = QLabel("", self)
        self.status.setObjectName("profilingMuted")
        self.status.setMinimumWidth(60)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label, widget in (
            ("Model", self.model),
            ("Backend", self.backend),
            ("Runs", self.runs),
            ("Warm-up", self.warmup),
        ):
            layout.addWidget(QLabel(label, self))
            layout.addWidget(widget)
        layout.addWidget(self.sustained)
        layout.addWidget(self.duration)
        layout.addSpacing(8)
        layout.addWidget(self.start_btn)
        layout.addWidget(self.cancel_btn)
        layout.addWidget(self.progress)
        layout.addWidget(self.status, 1)
        self._progress_stream = progress.Throttle(self._show_progress, self)
        self._probe_background = Background(self)
        self._probing = False
        self._model_ready = False

    # ----- availability -------------------------------------------------------------------
    def probe(self) -> None:
        """Ask the core which backends run here (in the background; once per workspace)."""
        if self._probing:
            return
        self._probing = True
        self.status.setText("checking backends…")
        self._probe_background.start("Probe backends", _probe, on_result=self._probe_done)

    def set_availability(self, statuses: list[Any]) -> None:
        """Enable/disable each backend from the probe's BackendStatus list (reason as tooltip)."""
        model = self.backend.model()
        assert isinstance(model, QStandardItemModel)
        by_name = {s.name: s for s in statuses}
        for i, (name, label) in enumerate(BACKENDS):
            status = by_name.get(name)
            item = model.item(i)
            if status is None:
                continue
            self.available[name] = bool(status.available)
            self.reasons[name] = status.reason or ""
            item.setEnabled(bool(status.available))
            if status.available:
                tip = status.note or status.label
                item.setText(label + ("  (simulated)" if status.simulated else ""))
            else:
                tip = f"Not available on this machine: {status.reason or 'unknown reason'}"
                item.setText(f"{label}  — not available")
            item.setToolTip(tip)
        current = self.backend.currentData()
        if not self.available.get(current, True):
            self.backend.setCurrentIndex(2)
        self.backend.setToolTip("Hover a backend for its status")
        self.availability_changed.emit()

    def _probe_done(self, result: object) -> None:
        self._probing = False
        if isinstance(result, str):
            self.backend.setToolTip(f"Backend probe failed: {result}")
            self.status.setText("backend probe failed (see tooltip)")
            return
        self.set_availability(list(result))  # type: ignore[arg-type]
        if self.status.text() == "checking backends…":
            self.status.setText("")

    def select_backend(self, name: str) -> bool:
        for i, (n, _) in enumerate(BACKENDS):
            if n == name and self.available.get(n) is not False:
                self.backend.setCurrentIndex(i)
                return True
        return False

    # ----- model choice -------------------------------------------------------------------
    def set_open_model(self, path: str | None) -> None:
        """The studio opened another model: offer it first and select it."""
        self._open_model = path
        self._current_model = path or (self._extra_models[-1] if self._extra_models else None)
        self._rebuild_models()
        self._update_ready()

    def add_model(self, path: str) -> None:
        """Offer another ONNX file (and select it)."""
        path = str(Path(path).resolve())
        if path != self._open_model and path not in self._extra_models:
            self._extra_models.append(path)
        self._current_model = path
        self._rebuild_models()
        self._update_ready()

    def model_path(self) -> str | None:
        return self._current_model

    def _rebuild_models(self) -> None:
        self.model.blockSignals(True)
        self.model.clear()
        if self._open_model:
            self.model.addItem(f"{Path(self._open_model).name}  (open)", self._open_model)
            self.model.setItemData(0, self._open_model, Qt.ItemDataRole.ToolTipRole)
        for path in self._extra_models:
            self.model.addItem(Path(path).name, path)
            self.model.setItemData(self.model.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self.model.addItem("Other ONNX file…", BROWSE)
        index = self.model.findData(self._current_model) if self._current_model else -1
        self.model.setCurrentIndex(max(0, index) if self._current_model else self.model.count() - 1)
        self.model.blockSignals(False)

    def _model_activated(self, index: int) -> None:
        data = self.model.itemData(index)
        if data == BROWSE:
            start = str(Path(self._current_model).parent) if self._current_model else ""
            path, _ = QFileDialog.getOpenFileName(
                self, "Model to profile", start, "ONNX models (*.onnx);;All files (*)"
            )
            if path:
                self.add_model(path)
            else:
                self._rebuild_models()  # back to the previous choice
            return
        self._current_model = data
        self._update_ready()

    # ----- running ------------------------------------------------------------------------
    def _update_ready(self) -> None:
        self.set_model_ready(
            self._current_model is not None, "Open a model first, or choose an ONNX file"
        )

    def set_model_ready(self, ready: bool, why: str = "") -> None:
        self._model_ready = ready
        self.start_btn.setEnabled(ready and not self.cancel_btn.isEnabled())
        self.start_btn.setToolTip("" if ready else why)

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "backend": self.backend.currentData(),
            "warmup": self.warmup.value(),
        }
        if self.sustained.isChecked():
            opts["duration_s"] = self.duration.value()
            opts["runs"] = 0
        else:
            opts["runs"] = self.runs.value()
        return opts

    def _start(self) -> None:
        self.start_requested.emit(self.options())

    def set_running(self, running: bool) -> None:
        self.start_btn.setEnabled(not running and self._model_ready)
        self.cancel_btn.setEnabled(running)
        for w in (self.model, self.backend, self.warmup, self.sustained):
            w.setEnabled(not running)
        self.runs.setEnabled(not running and not self.sustained.isChecked())
        self.duration.setEnabled(not running and self.sustained.isChecked())
        if running:
            progress.set_value(self.progress, 0)

    def report_progress(self, fraction: float, stage: str, text: str) -> None:
        """A running job's progress: shown at most a few times a second (``Throttle``)."""
        self._progress_stream(fraction, stage, text)

    def show_progress(self, fraction: float, stage: str, text: str) -> None:
        """Show a state now (start, done, failed); a pending job message is dropped."""
        self._progress_stream.drop()
        self._show_progress(fraction, stage, text)

    def _show_progress(self, fraction: float, stage: str, text: str) -> None:
        progress.set_value(self.progress, int(fraction * 1000))
        self.status.setText(f"{stage}: {text}" if stage else text)
