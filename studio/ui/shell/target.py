"""The studio's one target device: chosen here, shown in the status bar, saved in the project.

Choosing a device makes it the HTP target of every session the studio creates from then on
(``set_htp_target``: compile, run, SQNR on HTP, profiling, in this process and its workers), and
stores it in the open project. "Estimate" computes the device estimate of the current model and
shows it as a per-node graph overlay, with its label (estimated, with its measured error).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

from studio.core.devices.catalogue import DEFAULT_DEVICE, load_catalogue, resolve_device
from studio.core.engine.sessions import set_htp_target
from studio.core.errors import StudioError


class TargetSelector(QWidget):
    """Status-bar widget: 'Target: [device ▾] [Estimate]' plus the last estimate's label."""

    def __init__(self, ctx: Any, projects: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.projects = projects
        self.setObjectName("targetSelector")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Target:", self))
        self.combo = QComboBox(self)
        self.combo.setObjectName("targetDevice")
        for dev in load_catalogue().devices:
            self.combo.addItem(dev.name)
            self.combo.setItemData(self.combo.count() - 1, dev.label, 3)  # tooltip role
        layout.addWidget(self.combo)
        self.estimate_button = QPushButton("Estimate", self)
        self.estimate_button.setObjectName("estimateButton")
        self.estimate_button.setToolTip("Estimated latency of the model on the target's NPU")
        layout.addWidget(self.estimate_button)
        self.estimate_label = QLabel("", self)
        self.estimate_label.setObjectName("estimateLabel")
        layout.addWidget(self.estimate_label)
        self.last_estimate: Any = None
        self.set_device(DEFAULT_DEVICE, save=False)
        self.combo.currentTextChanged.connect(lambda name: self.set_device(name, save=True))
        self.estimate_button.clicked.connect(self.estimate)
        projects.project_opened.connect(self._on_project)
        ctx.model_changed.connect(lambda _g: self.estimate_label.setText(""))

    @property
    def device(self) -> Any:
        return resolve_device(self.combo.currentText() or None)

    def set_device(self, name: str, *, save: bool = True) -> None:
        """Make ``name`` the target everywhere (sessions, project, status bar)."""
        dev = resolve_device(name)
        if self.combo.currentText() != dev.name:
            self.combo.blockSignals(True)
            self.combo.setCurrentText(dev.name)
            self.combo.blockSignals(False)
        set_htp_target(dev.name, dev.soc_model, dev.htp_arch)
        self.combo.setToolTip(dev.label)
        self.ctx.target_device = dev.name
        project = self.ctx.project
        if save and project is not None and project.target_device != dev.name:
            project.update("target_device", dev.name)
        self.estimate_label.setText("")

    def _on_project(self, project: Any) -> None:
        try:
            self.set_device(project.target_device or DEFAULT_DEVICE, save=False)
        except StudioError as exc:  # a project naming a device this catalogue lacks
            self.ctx.show_error("Unknown target device", str(exc))

    def estimate(self) -> Any:
        """Estimate the current model on the target; overlay per-node ms on the graph."""
        from studio.core.devices.estimate import estimate_model

        if not self.ctx.model_path:
            self.ctx.status_message.emit("Open a model first")
            return None
        try:
            project = self.ctx.project
            assumed = dict(project.constraints.assumptions) if project is not None else {}
            est = estimate_model(self.ctx.model_path, self.device, assumptions=assumed)
        except StudioError as exc:
            self.ctx.show_error("Estimate failed", str(exc))
            return None
        self.last_estimate = est
        self.estimate_label.setText(est.label)
        self.ctx.show_overlay(est.overlay())
        self.ctx.status_message.emit(est.label)
        return est
