"""The Deploy workspace: the end of Graph -> Quantization -> Backends -> Profiling.

Target device (shared through the context), the backend_config.json editor, Compile (the
Backends workspace's plan as a heterogeneous bundle, or the whole model) with progress and cancel,
a bundle browser that verifies checksums on open, and Run / Profile of the bundle, here or on a
phone over adb. Every action is a core job submitted to the studio's JobManager (worker process
for native code), so the window never blocks; results land here, and a profile also goes to the
Profiling workspace through ``ctx.profile_run_ready``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs.protocol import job_kind
from studio.ui.deploy.bundle_view import bundle_label, fill_bundle_tree
from studio.ui.deploy.config_editor import BackendConfigEditor
from studio.ui.deploy.monitor import MonitorPlot
from studio.ui.deploy.result_text import device_text, profiled_text, ran_text
from studio.ui.deploy.target_panel import TargetPanel

LANE = "deploy"


def _kinds() -> dict[str, str]:
    from studio.core.profiling.job import profile_model
    from studio.core.toolchain import jobs as toolchain_jobs
    from studio.core.workflows import device_run, plan_bundle

    return {
        "compile_plan": job_kind(plan_bundle.compile_plan_job),
        "compile": job_kind(toolchain_jobs.compile_bundle),
        "describe": job_kind(plan_bundle.describe_bundle_job),
        "run_chain": job_kind(plan_bundle.run_chain_job),
        "run": job_kind(toolchain_jobs.run),
        "profile": job_kind(profile_model),
        "device": job_kind(device_run.device_run_job),
    }


class DeployWorkspace(QWidget):
    """Fifth tab of the main window (``studio.ui.shell.workspaces``)."""

    def __init__(self, ctx: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("deployWorkspace")
        self.kinds = _kinds()
        self.bundle_info: dict[str, Any] | None = None
        self.last_result: dict[str, Any] | None = None
        self.last_error = ""
        self.handle: Any = None
        self.opened_folder: str | None = None
        self._build()
        ctx.model_changed.connect(self._model_changed)
        self._model_changed(getattr(ctx, "graph", None))
        self._load_project_config()

    # ----- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        self.target_panel = TargetPanel(self.ctx, self)
        self.target = self.target_panel.target  # tests and the status bar read them here
        self.refresh_button = self.target_panel.refresh_button

        config_box = QGroupBox("backend_config.json", self)
        self.editor = BackendConfigEditor(config_box)
        QVBoxLayout(config_box).addWidget(self.editor)

        compile_box = QGroupBox("Compile", self)
        self.model_label = QLabel("No model open", compile_box)
        self.model_label.setWordWrap(True)
        self.use_plan = QCheckBox(
            "Compile the Backends workspace's plan (HTP + CPU segments)", compile_box
        )
        self.use_plan.setChecked(True)
        self.plan_label = QLabel("", compile_box)
        self.plan_label.setWordWrap(True)
        self.output = QLineEdit(compile_box)
        self.output.setPlaceholderText("bundle folder")
        self.compile_button = QPushButton("Compile", compile_box)
        self.compile_button.setObjectName("compileButton")
        self.cancel_button = QPushButton("Cancel", compile_box)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(compile_box)
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.status = QLabel("", compile_box)
        self.status.setObjectName("deployStatus")
        self.status.setWordWrap(True)
        cl = QVBoxLayout(compile_box)
        cl.addWidget(self.model_label)
        cl.addWidget(self.use_plan)
        cl.addWidget(self.plan_label)
        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("Output", compile_box))
        out_row.addWidget(self.output, 1)
        cl.addLayout(out_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compile_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        cl.addLayout(buttons)
        cl.addWidget(self.status)

        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.target_panel)
        ll.addWidget(config_box)
        ll.addWidget(compile_box)
        ll.addStretch(1)

        bundle_box = QGroupBox("Bundle", self)
        self.bundle_label = QLabel("No bundle open", bundle_box)
        self.bundle_label.setObjectName("bundleLabel")
        self.bundle_label.setWordWrap(True)
        self.open_button = QPushButton("Open bundle…", bundle_box)
        self.folder_button = QPushButton("Open folder", bundle_box)
        self.run_button = QPushButton("Run", bundle_box)
        self.profile_button = QPushButton("Profile", bundle_box)
        for b in (self.folder_button, self.run_button, self.profile_button):
            b.setEnabled(False)
        self.tree = QTreeWidget(bundle_box)
        self.tree.setObjectName("bundleTree")
        self.tree.setHeaderLabels(["Item", "Value"])
        self.tree.setColumnWidth(0, 260)
        self.results = QTextBrowser(bundle_box)
        self.results.setObjectName("deployResults")
        br = QHBoxLayout()
        for b in (self.open_button, self.folder_button, self.run_button, self.profile_button):
            br.addWidget(b)
        br.addStretch(1)
        bl = QVBoxLayout(bundle_box)
        bl.addWidget(self.bundle_label)
        bl.addLayout(br)
        split = QSplitter(Qt.Orientation.Vertical, bundle_box)
        split.addWidget(self.tree)
        split.addWidget(self.results)
        self.monitor = MonitorPlot.create(split)
        self.monitor_plot = self.monitor.plot if self.monitor is not None else None
        split.setSizes([260, 160, 240])
        bl.addWidget(split, 1)

        outer = QSplitter(Qt.Orientation.Horizontal, self)
        # the target / config / compile column scrolls rather than setting the window's minimum
        # height (the Jobs dock must still be able to grow on a laptop screen)
        scroll = QScrollArea(outer)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(left)
        outer.addWidget(scroll)
        outer.addWidget(bundle_box)
        outer.setSizes([520, 880])
        layout = QVBoxLayout(self)
        layout.addWidget(outer)

        self.editor.changed.connect(self._config_changed)
        self.compile_button.clicked.connect(self.compile)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self._open_dialog)
        self.folder_button.clicked.connect(self.open_folder)
        self.run_button.clicked.connect(lambda: self.run_bundle(profile=False))
        self.profile_button.clicked.connect(lambda: self.run_bundle(profile=True))
        self.target_panel.fill()

    @property
    def _curves(self) -> dict[str, Any]:
        """The monitor's curves by series name (empty without pyqtgraph)."""
        return self.monitor.curves if self.monitor is not None else {}

    def target_options(self) -> dict[str, str]:
        return self.target_panel.options()

    def find_phones(self) -> None:
        self.target_panel.find_phones()

    # ----- model, plan, config ----------------------------------------------------------------
    def _model_changed(self, graph: Any) -> None:
        path = getattr(self.ctx, "model_path", None)
        if graph is None or not path:
            self.model_label.setText("No model open")
            self.compile_button.setEnabled(False)
            return
        self.model_label.setText(f"Model: {path}")
        self.output.setText(str(Path(path).with_name(Path(path).stem + "_bundle")))
        self.compile_button.setEnabled(True)
        self._refresh_plan()

    def _refresh_plan(self) -> None:
        plan = getattr(self.ctx, "plan", None)
        if plan is None:
            self.plan_label.setText("No plan yet: assign backends in the Backends workspace.")
            return
        s = plan.summary
        backends = sorted({d.backend.upper() for d in plan.decisions})
        self.plan_label.setText(
            f"Plan: {len(plan.decisions)} nodes on {'+'.join(backends)}, {s.get('segments')} "
            f"segment(s); pinned: {', '.join(d.node_id for d in plan.decisions if d.pinned) or 'none'}"
        )

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._refresh_plan()

    def _load_project_config(self) -> None:
        project = getattr(self.ctx, "project", None)
        data = getattr(project, "backend_config", None)
        if data:
            try:
                self.editor.set_json(data, source="the project's backend_config")
            except Exception as exc:  # noqa: BLE001 - a bad saved config must not stop the tab
                self.status.setText(f"project backend_config ignored: {exc}")

    def _config_changed(self, data: dict[str, Any]) -> None:
        project = getattr(self.ctx, "project", None)
        if project is not None and data != project.backend_config:
            project.update("backend_config", data)

    # ----- jobs -------------------------------------------------------------------------------
    def _submit(
        self, key: str, request: dict[str, Any], title: str, on_result: Any, **kw: Any
    ) -> Any:
        jobs = getattr(self.ctx, "jobs", None)
        if jobs is None:
            self.status.setText("no job manager: open the Deploy workspace in the studio window")
            return None
        handle = jobs.submit(self.kinds[key], request, title=title, lane=LANE, **kw)
        self.handle = handle
        self.last_error = ""
        handle.progress.connect(self._on_progress)
        handle.result.connect(on_result)
        handle.error.connect(self._on_error)
        handle.data.connect(self._on_data)
        handle.finished.connect(self._on_finished)
        self._set_busy(True, title)
        return handle

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self.cancel_button.setEnabled(busy)
        self.compile_button.setEnabled(not busy and getattr(self.ctx, "graph", None) is not None)
        has_bundle = self.bundle_info is not None
        for b in (self.run_button, self.profile_button):
            b.setEnabled(not busy and has_bundle)
        self.folder_button.setEnabled(has_bundle)
        if busy:
            self.progress.setValue(0)
            self.status.setText(f"{text}…")

    def _on_progress(self, fraction: float, stage: str, text: str) -> None:
        self.progress.setValue(int(100 * fraction))
        if text:
            self.status.setText(f"{stage}: {text}" if stage else text)

    def _on_error(self, title: str, message: str) -> None:
        self.last_error = message
        self.status.setText(f"{title} failed: {message.splitlines()[0]}")
        self.results.setPlainText(message)

    def _on_finished(self, state: str) -> None:
        self._set_busy(False)
        if state == "cancelled":
            self.status.setText("cancelled")

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def _on_data(self, payload: Any) -> None:
        sample = payload.get("monitor") if isinstance(payload, dict) else None
        if sample and self.monitor is not None:
            self.monitor.add_sample(sample)

    # ----- compile ----------------------------------------------------------------------------
    def compile(self) -> None:
        path = getattr(self.ctx, "model_path", None)
        if not path:
            return
        out = self.output.text().strip() or str(Path(path).with_name(Path(path).stem + "_bundle"))
        plan = getattr(self.ctx, "plan", None)
        options = {**self.target_options(), **self.editor.provider_options()}
        if self.use_plan.isChecked() and plan is not None:
            request = {
                "model": str(path),
                "plan": plan.to_json(),
                "output": out,
                "provider_options": {"htp": options},
                "input_shapes": dict(getattr(self.ctx, "input_shapes", {}) or {}) or None,
            }
            self._submit("compile_plan", request, "Compile plan bundle", self._on_compiled)
            return
        fd, config = tempfile.mkstemp(prefix="npu-studio-config-", suffix=".json")
        import os

        os.close(fd)
        self.editor.config.save(config)
        request = {"model": str(path), "output": out, "backend": "htp", "config": config}
        target = self.target_options()
        request.update({k: int(v) for k, v in target.items()})
        self._submit("compile", request, "Compile bundle", self._on_compiled)

    def _on_compiled(self, result: Any) -> None:
        self.status.setText(f"compiled: {result['bundle']}")
        self.open_bundle(result["bundle"])

    # ----- bundle browser ---------------------------------------------------------------------
    def _open_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open bundle folder")
        if path:
            self.open_bundle(path)

    def open_bundle(self, path: str) -> None:
        """Verify (every checksum, and the plan of a heterogeneous bundle) and show the bundle."""
        self._submit(
            "describe", {"bundle": str(path)}, "Open bundle", self._on_described, in_process=True
        )

    def _on_described(self, info: Any) -> None:
        self.bundle_info = info
        self.bundle_label.setText(bundle_label(info))
        fill_bundle_tree(self.tree, info)
        self._set_busy(False)

    def open_folder(self) -> None:
        if self.bundle_info is None:
            return
        self.opened_folder = self.bundle_info["bundle"]
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.opened_folder))

    # ----- run / profile ----------------------------------------------------------------------
    def run_bundle(self, profile: bool) -> None:
        if self.bundle_info is None:
            return
        bundle = self.bundle_info["bundle"]
        target = self.target.currentData()
        if TargetPanel.is_phone(target):
            if self.monitor is not None:
                self.monitor.reset()
            request = {"bundle": bundle, "serial": target[4:], "profile": profile}
            self._submit(
                "device", request, f"{'Profile' if profile else 'Run'} on {target}", self._on_device
            )
            return
        if self.bundle_info["kind"] == "heterogeneous":
            request = {"bundle": bundle, "runs": 10 if profile else 1, "warmup": 2}
            if profile:
                request["as_profile_run"] = True
                self._submit(
                    "run_chain", request, "Profile bundle chain", self._on_profiled, in_process=True
                )
            else:
                self._submit(
                    "run_chain", request, "Run bundle chain", self._on_ran, in_process=True
                )
            return
        if profile:
            request = {"model": bundle, "runs": 20, "warmup": 3, "layers": True, "layer_runs": 3}
            self._submit("profile", request, "Profile bundle", self._on_profiled)
        else:
            self._submit("run", {"model": bundle}, "Run bundle", self._on_ran)

    def _on_ran(self, result: Any) -> None:
        self.last_result = result
        self.results.setPlainText(ran_text(result))
        self.status.setText("ran the bundle")

    def _on_profiled(self, record: Any) -> None:
        self.last_result = record
        self.results.setPlainText(profiled_text(record))
        self.ctx.profile_run_ready.emit(record)
        self.status.setText("profiled: see the Profiling workspace")

    def _on_device(self, result: Any) -> None:
        self.last_result = result
        self.results.setPlainText(device_text(result))
        mon = result.get("monitor") or {}
        if mon.get("t_s") and self.monitor is not None:
            self.monitor.set_series(mon)
        self.status.setText(result["latency_label"])
