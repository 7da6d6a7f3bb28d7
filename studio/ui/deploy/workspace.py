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
    QComboBox,
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
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs.protocol import job_kind
from studio.ui.deploy.config_editor import BackendConfigEditor

LANE = "deploy"
# the monitor plot shows one unit at a time: series names end with their unit
MONITOR_GROUPS = {
    "Temperatures (°C), measured on the phone": "(°C)",
    "CPU / GPU clocks (MHz), measured on the phone": "(MHz)",
    "Battery current (mA), measured on the phone": "(mA)",
}


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
        self.monitor_points: dict[str, list[float]] = {}
        self._build()
        ctx.model_changed.connect(self._model_changed)
        self._model_changed(getattr(ctx, "graph", None))
        self._load_project_config()

    # ----- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        target_box = QGroupBox("Target device", self)
        self.target = QComboBox(target_box)
        self.target.setObjectName("targetDevice")
        self.refresh_button = QPushButton("Find phones (adb)", target_box)
        self.target_note = QLabel("", target_box)
        self.target_note.setWordWrap(True)
        target_layout = QVBoxLayout(target_box)
        row = QHBoxLayout()
        row.addWidget(self.target, 1)
        row.addWidget(self.refresh_button)
        target_layout.addLayout(row)
        target_layout.addWidget(self.target_note)

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
        ll.addWidget(target_box)
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
        self.monitor_plot = self._make_plot(split)
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

        self.refresh_button.clicked.connect(self.find_phones)
        self.target.currentIndexChanged.connect(self._target_changed)
        self.editor.changed.connect(self._config_changed)
        self.compile_button.clicked.connect(self.compile)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self._open_dialog)
        self.folder_button.clicked.connect(self.open_folder)
        self.run_button.clicked.connect(lambda: self.run_bundle(profile=False))
        self.profile_button.clicked.connect(lambda: self.run_bundle(profile=True))
        self._fill_targets()

    def _make_plot(self, parent: QWidget) -> Any:
        try:
            import pyqtgraph as pg
        except ImportError:  # the workspace works without the live plot
            return None
        box = QWidget(parent)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.monitor_group = QComboBox(box)
        self.monitor_group.addItems(list(MONITOR_GROUPS))
        self.monitor_group.currentIndexChanged.connect(self._redraw_monitor)
        layout.addWidget(self.monitor_group)
        plot = pg.PlotWidget(box)
        plot.setBackground("w")
        plot.setLabel("bottom", "time since the run started (s)")
        plot.addLegend(offset=(-10, 10))
        plot.setMinimumHeight(160)
        layout.addWidget(plot, 1)
        box.hide()
        parent.addWidget(box)
        self._monitor_box = box
        self._curves: dict[str, Any] = {}
        return plot

    # ----- target -----------------------------------------------------------------------------
    def _fill_targets(self, phones: list[dict[str, Any]] | None = None) -> None:
        from studio.core.devices.catalogue import default_device, load_catalogue

        current = getattr(self.ctx, "target_device", None) or default_device().name
        self.target.blockSignals(True)
        self.target.clear()
        for phone in phones or []:
            if phone.get("state") == "device":
                self.target.addItem(f"phone {phone['label']} (adb)", phone["target"])
        for device in load_catalogue().devices:
            self.target.addItem(device.label, device.name)
        index = max(0, self.target.findData(current))
        self.target.setCurrentIndex(index)
        self.target.blockSignals(False)
        self._target_changed()

    def _target_changed(self) -> None:
        value = self.target.currentData()
        self.ctx.target_device = value
        if isinstance(value, str) and value.startswith("adb:"):
            self.target_note.setText("Run and Profile push the bundle to this phone over adb.")
        else:
            self.target_note.setText(
                "Compiles target this device's HTP (soc_model, htp_arch); runs use this host's "
                "HTP emulator."
            )

    def target_options(self) -> dict[str, str]:
        """soc_model/htp_arch of the chosen catalogue device (a phone: its catalogue entry)."""
        from studio.core.devices.catalogue import resolve_device

        value = self.target.currentData()
        if not value or str(value).startswith("adb:"):
            phone = getattr(self, "_phones", {}).get(value) or {}
            entry = phone.get("catalogue")
            return (
                {"soc_model": str(entry["soc_model"]), "htp_arch": str(entry["htp_arch"])}
                if entry
                else {}
            )
        return resolve_device(str(value)).provider_options()

    def find_phones(self) -> None:
        from studio.core.toolchain.adb.phones import list_phones

        def work(ctx: Any) -> Any:
            return [p.to_json() for p in list_phones()]

        handle = self.ctx.jobs.submit_callable(work, title="Find phones (adb)", lane="deploy-adb")
        handle.result.connect(self._on_phones)
        handle.error.connect(lambda t, m: self.target_note.setText(m))

    def _on_phones(self, phones: Any) -> None:
        self._phones = {p["target"]: p for p in phones}
        self._fill_targets(phones)
        ready = [p for p in phones if p["state"] == "device"]
        others = [p["note"] for p in phones if p["state"] != "device"]
        self.target_note.setText(
            f"{len(ready)} phone(s) ready" + (": " + "; ".join(others) if others else "")
        )

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
        if sample:
            self.add_monitor_sample(sample)

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
        self.bundle_label.setText(
            f"<b>{info['bundle']}</b><br>{info['kind']} bundle, checksums verified "
            f"({len(info['files'])} files) · created {info.get('created')}"
        )
        self.tree.clear()
        root = self.tree.invisibleRootItem()
        files = QTreeWidgetItem(root, ["Files (sha256 verified)", str(len(info["files"]))])
        for rel, meta in info["files"].items():
            QTreeWidgetItem(files, [rel, f"{meta['bytes']:,} B  {meta['sha256'][:16]}…"])
        if info["segments"]:
            segs = QTreeWidgetItem(root, ["Segments (in order)", str(len(info["segments"]))])
            for seg in info["segments"]:
                item = QTreeWidgetItem(
                    segs,
                    [
                        f"{seg['index']} {seg['backend'].upper()}",
                        f"{seg['file']} · {seg['nodes']} nodes",
                    ],
                )
                for t in seg["inputs"]:
                    QTreeWidgetItem(item, [f"in  {t['name']}", f"{t['dtype']} {t['shape']}"])
                for t in seg["outputs"]:
                    QTreeWidgetItem(item, [f"out {t['name']}", f"{t['dtype']} {t['shape']}"])
                opts = seg.get("provider_options") or {}
                if opts:
                    QTreeWidgetItem(
                        item, ["provider options", ", ".join(f"{k}={v}" for k, v in opts.items())]
                    )
        specs = QTreeWidgetItem(root, ["Inputs / outputs", ""])
        for kind in ("inputs", "outputs"):
            for spec in info["specs"].get(kind, []):
                q = spec.get("quantization")
                qtext = (
                    f" · {q['qtype']} scale {q['scale'][0]:.4g} zp {q['zero_point'][0]}"
                    if q
                    else ""
                )
                QTreeWidgetItem(
                    specs,
                    [f"{kind[:-1]} {spec['name']}", f"{spec['dtype']} {spec['shape']}{qtext}"],
                )
        enc = info["encodings"]
        QTreeWidgetItem(
            root,
            [
                "Encodings (quantization_config.json)",
                f"{enc.get('activations', 0)} activations, {enc.get('params', 0)} params, "
                f"bit widths {enc.get('bitwidths', [])}"
                if enc["present"]
                else "none (float model)",
            ],
        )
        if info.get("plan"):
            s = info["plan"]["summary"]
            QTreeWidgetItem(
                root,
                [
                    "Plan (plan.json)",
                    f"{info['plan']['nodes']} nodes, {s.get('segments')} segments, "
                    f"{s.get('boundaries')} boundaries",
                ],
            )
        session = info.get("session") or {}
        if session.get("provider_options"):
            QTreeWidgetItem(
                root,
                [
                    "Compiled with",
                    ", ".join(f"{k}={v}" for k, v in session["provider_options"].items()),
                ],
            )
        self.tree.expandToDepth(0)
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
        if isinstance(target, str) and target.startswith("adb:"):
            self.monitor_points = {}
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
        lines = []
        if "timings" in result:
            lines.append(
                f"{len(result['timings'])} segment(s), {result['total_ms']:.3f} ms (emulated, this host)"
            )
            for t in result["timings"]:
                lines.append(
                    f"  segment {t['index']} {t['backend'].upper()}: {t['run_ms']:.3f} ms on "
                    f"{', '.join(t['providers'])}"
                )
        for name, info in result.get("outputs", {}).items():
            lines.append(f"output {name}: {info['dtype']} {info['shape']}")
        if result.get("note"):
            lines.append(f"note: {result['note']}")
        self.results.setPlainText("\n".join(lines))
        self.status.setText("ran the bundle")

    def _on_profiled(self, record: Any) -> None:
        self.last_result = record
        s = record["stats"]
        self.results.setPlainText(
            f"{record.get('label')}: p50 {s['p50_ms']:.3f} ms, mean {s['mean_ms']:.3f} ms over "
            f"{s['count']} runs (emulated: HTP on x86-64 is the emulator)\n"
            + "\n".join(record.get("notes", []))
            + "\n\nSent to the Profiling workspace."
        )
        self.ctx.profile_run_ready.emit(record)
        self.status.setText("profiled: see the Profiling workspace")

    def _on_device(self, result: Any) -> None:
        self.last_result = result
        est = result.get("estimate") or {}
        lines = [result["latency_label"]]
        if est.get("label"):
            lines.append(f"device estimate: {est['label']}")
        if est.get("error_text"):
            lines.append(f"estimate error on this model: {est['error_text']}")
        for row in sorted(result.get("layers") or [], key=lambda r: -(r.get("cycles") or 0))[:8]:
            lines.append(
                f"  {row.get('cycles') or 0:>12,.0f} cycles  {row['node_id']} ({result['measured']})"
            )
        lines += [f"note: {n}" for n in result.get("notes", [])]
        self.results.setPlainText("\n".join(lines))
        mon = result.get("monitor") or {}
        if mon.get("t_s"):
            self.monitor_points = {
                "t": list(mon["t_s"]),
                **{k: list(v) for k, v in mon["series"].items()},
            }
            self._redraw_monitor()
        self.status.setText(result["latency_label"])

    def add_monitor_sample(self, sample: dict[str, Any]) -> None:
        """One live monitor sample: the curves grow in place while the phone runs."""
        pts = self.monitor_points
        pts.setdefault("t", []).append(float(sample.get("t_s", 0)))
        n = len(pts["t"])
        for name, value in sample.get("values", {}).items():
            series = pts.setdefault(name, [])
            series.extend([None] * (n - 1 - len(series)))
            series.append(value)
        self._redraw_monitor()

    def _redraw_monitor(self) -> None:
        if self.monitor_plot is None:
            return
        import pyqtgraph as pg

        self._monitor_box.show()
        unit = MONITOR_GROUPS[self.monitor_group.currentText()]
        self.monitor_plot.setLabel("left", unit.strip("()"))
        t = self.monitor_points.get("t", [])
        colours = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"]
        series = [k for k in self.monitor_points.items() if k[0] != "t"]
        for i, (name, values) in enumerate(series):
            xs = [x for x, v in zip(t, values, strict=False) if v is not None]
            ys = [v for v in values if v is not None]
            curve = self._curves.get(name)
            if curve is None:
                curve = self.monitor_plot.plot(
                    [], [], name=name, pen=pg.mkPen(colours[i % 7], width=2)
                )
                self._curves[name] = curve
            curve.setData(xs, ys)
            curve.setVisible(name.endswith(unit))
        legend = self.monitor_plot.plotItem.legend
        if legend is not None:  # the legend names only the series of the unit shown
            legend.clear()
            for name, curve in self._curves.items():
                if curve.isVisible():
                    legend.addItem(curve, name)
