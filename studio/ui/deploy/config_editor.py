"""The backend_config.json editor: only the options the QNN EP really takes, each checked.

Every field is validated by the core's own reader (:class:`studio.core.engine.config.BackendConfig`)
on each edit, so the editor cannot accept what ``npu-studio compile --config`` would refuse, and
shows beside it the provider or session option it becomes. Files load and save in the seed's
layout (``htp_config`` / ``gpu_config`` / ``cpu_config``); the Deploy workspace also keeps the
content in the project.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.engine.config import (
    GRAPH_OPT_LEVELS,
    PERFORMANCE_MODES,
    PRECISION_MODES,
    PROFILING_LEVELS,
    BackendConfig,
    field_option,
)
from studio.core.errors import StudioError

UNSET = "(default)"
# (section, key, kind, choices) in the order shown; kind "choice" or "int" with (min, max)
FIELDS: tuple[tuple[str, str, str, Any], ...] = (
    ("htp_config", "performance_mode", "choice", PERFORMANCE_MODES),
    ("htp_config", "precision_mode", "choice", PRECISION_MODES),
    ("htp_config", "vtcm_mb", "int", (1, 64)),
    ("htp_config", "graph_finalization_mode", "int", (0, 3)),
    ("htp_config", "profiling_level", "choice", PROFILING_LEVELS),
    ("cpu_config", "num_threads", "int", (0, 1024)),
    ("cpu_config", "graph_optimization_level", "choice", GRAPH_OPT_LEVELS),
)
LABELS = {
    "performance_mode": "Performance mode",
    "precision_mode": "Precision (fp16 / int8)",
    "vtcm_mb": "VTCM (MB)",
    "graph_finalization_mode": "Graph finalisation",
    "profiling_level": "Profiling level",
    "num_threads": "CPU threads",
    "graph_optimization_level": "ORT graph optimisation",
}


class BackendConfigEditor(QWidget):
    """Form over one BackendConfig; ``changed(dict)`` carries each valid state's JSON."""

    changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.widgets: dict[tuple[str, str], QWidget] = {}
        self.option_labels: dict[tuple[str, str], QLabel] = {}
        self.config = BackendConfig()
        self._extra: dict[str, dict[str, Any]] = {}  # fields the form does not show, kept as read
        self._loading = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for section, title in (
            ("htp_config", "HTP (htp_config)"),
            ("cpu_config", "CPU (cpu_config)"),
        ):
            box = QGroupBox(title, self)
            form = QFormLayout(box)
            for sec, key, kind, choices in FIELDS:
                if sec != section:
                    continue
                widget = self._make(kind, choices)
                widget.setObjectName(f"cfg_{key}")
                hint = QLabel(field_option(sec, key), box)
                hint.setObjectName("optionHint")
                hint.setStyleSheet("color: #6b7280; font-size: 11px;")
                row = QWidget(box)
                row_layout = QHBoxLayout(row)
                row_layout.setContentsMargins(0, 0, 0, 0)
                row_layout.addWidget(widget)
                row_layout.addWidget(hint, 1)
                form.addRow(LABELS[key], row)
                self.widgets[(sec, key)] = widget
                self.option_labels[(sec, key)] = hint
            layout.addWidget(box)
        self.status = QLabel("", self)
        self.status.setObjectName("configStatus")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        self.load_button = QPushButton("Load…", self)
        self.save_button = QPushButton("Save as…", self)
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.load_button.clicked.connect(self._load_dialog)
        self.save_button.clicked.connect(self._save_dialog)
        self._validate()

    def _make(self, kind: str, choices: Any) -> QWidget:
        if kind == "choice":
            combo = QComboBox(self)
            combo.addItems([UNSET, *[str(c) for c in choices]])
            combo.currentIndexChanged.connect(self._validate)
            return combo
        spin = QSpinBox(self)
        low, high = choices
        spin.setRange(low - 1, high)  # the value below the range means "default"
        spin.setSpecialValueText(UNSET)
        spin.setValue(low - 1)
        spin.valueChanged.connect(self._validate)
        return spin

    # ----- state ----------------------------------------------------------------------------
    def form_json(self) -> dict[str, Any]:
        """The file content the form shows (unset fields left out), plus fields it keeps as read."""
        data: dict[str, Any] = {"schema_version": 1}
        for (section, key), widget in self.widgets.items():
            value: Any = None
            if isinstance(widget, QComboBox):
                text = widget.currentText()
                value = None if text == UNSET else text
            elif isinstance(widget, QSpinBox) and widget.value() >= widget.minimum() + 1:
                value = int(widget.value())
            if value is not None:
                data.setdefault(section, {})[key] = value
        for section, extra in self._extra.items():
            data.setdefault(section, {}).update(extra)
        return data

    def set_value(self, section: str, key: str, value: Any) -> None:
        widget = self.widgets[(section, key)]
        if isinstance(widget, QComboBox):
            index = widget.findText(UNSET if value is None else str(value))
            widget.setCurrentIndex(max(0, index))
        else:
            assert isinstance(widget, QSpinBox)
            widget.setValue(widget.minimum() if value is None else int(value))

    def set_json(self, data: dict[str, Any], source: str = "backend_config.json") -> None:
        """Show a file's content (validated first: a bad file is refused, the form unchanged)."""
        checked = BackendConfig.from_json(data, source=source)
        self._loading = True
        try:
            shown = {(s, k) for s, k, _, _ in FIELDS}
            for section, key, _, _ in FIELDS:
                self.set_value(section, key, getattr(checked, section).get(key))
            self._extra = {}
            for section in ("htp_config", "gpu_config", "cpu_config"):
                rest = {
                    k: v for k, v in getattr(checked, section).items() if (section, k) not in shown
                }
                if rest:
                    self._extra[section] = rest
        finally:
            self._loading = False
        self._validate()

    def _validate(self) -> None:
        try:
            self.config = BackendConfig.from_json(self.form_json(), source="this form")
        except StudioError as exc:
            self.status.setText(f"<span style='color:#b91c1c'>{exc}</span>")
            return
        options = self.config.session_args("htp", quantized=True).provider_options
        shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "none (EP defaults)"
        self.status.setText(f"HTP provider options: {shown}")
        if not self._loading:
            self.changed.emit(self.config.to_json())

    def provider_options(self, quantized: bool = True) -> dict[str, str]:
        return dict(self.config.session_args("htp", quantized=quantized).provider_options)

    # ----- files ----------------------------------------------------------------------------
    def load_file(self, path: str) -> None:
        from studio.core.atomic import read_json_strict
        from studio.core.errors import ConfigError

        self.set_json(read_json_strict(path, error_type=ConfigError), source=path)
        self.changed.emit(self.config.to_json())

    def save_file(self, path: str) -> None:
        self.config.save(path)
        self.status.setText(f"saved {path}")

    def _load_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog, QMessageBox

        path, _ = QFileDialog.getOpenFileName(self, "Load backend config", "", "JSON (*.json)")
        if path:
            try:
                self.load_file(path)
            except StudioError as exc:
                QMessageBox.warning(self, "Backend config", str(exc))

    def _save_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self, "Save backend config", "backend_config.json", "JSON (*.json)"
        )
        if path:
            self.save_file(path)
