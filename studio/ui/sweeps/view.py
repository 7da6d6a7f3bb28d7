"""The Sweeps tab of the Quantization workspace: a grid built from the current settings, run on
Ray in a worker process, shown as a progress table and a Pareto plot.

The sweep's base is the workspace's plan (bit widths, method, percentile) and calibration data;
the checked values form the grid. Rows stream in as ``data`` events of the sweep job; finished
points' profile records go into the project's run history (the Profiling workspace lists them).
Choosing a point (click in the plot, double-click in the table, or "Use as plan") applies its
settings as the plan's defaults, one undoable edit.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.core.atomic import read_json_strict
from studio.core.errors import StudioError
from studio.core.jobs.protocol import job_kind
from studio.core.sweeps import SweepSpec, mark_pareto, records_dir
from studio.core.sweeps.jobs import sweep_job
from studio.ui.sweeps.model import SweepTableModel
from studio.ui.sweeps.plot import ParetoPlot

AXES: dict[str, tuple[str, list[tuple[str, Any, bool]]]] = {
    # grid key -> (label, [(text, value, checked by default)])
    "act_bw": ("activations", [("A8", 8, True), ("A16", 16, True)]),
    "weight_bw": ("weights", [("W8", 8, True), ("W4", 4, False)]),
    "per_channel": ("per-channel", [("on", True, True), ("off", False, True)]),
    "method": (
        "method",
        [
            ("minmax", "minmax", True),
            ("percentile", "percentile", False),
            ("entropy", "entropy", False),
            ("mse", "mse", False),
        ],
    ),
}


class SweepsView(QWidget):
    """Build, run, watch and pick from a sweep."""

    point_applied = Signal(str)  # key of the point made the current plan

    def __init__(self, ws: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.ctx = ws.ctx
        self.handle: Any = None
        self.doc: dict[str, Any] | None = None
        self.out_path: Path | None = None
        self._scratch = tempfile.TemporaryDirectory(prefix="npu-studio-sweeps-")
        self.checks: dict[str, list[tuple[QCheckBox, Any]]] = {}
        axes = QHBoxLayout()
        for key, (label, values) in AXES.items():
            axes.addWidget(QLabel(f"<b>{label}</b>", self))
            boxes = []
            for text, value, checked in values:
                box = QCheckBox(text, self)
                box.setChecked(checked)
                box.setObjectName(f"sweep_{key}_{text}")
                axes.addWidget(box)
                boxes.append((box, value))
            self.checks[key] = boxes
            axes.addSpacing(10)
        axes.addStretch(1)
        self.devices = QLineEdit(self)
        self.devices.setPlaceholderText("devices, comma-separated (default: the studio's target)")
        self.address = QLineEdit(self)
        self.address.setPlaceholderText("Ray address (empty: local Ray on this machine's cores)")
        self.run_button = QPushButton("Run sweep", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.apply_button = QPushButton("Use as plan", self)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.apply_button.clicked.connect(self._apply_selected)
        targets = QHBoxLayout()
        targets.addWidget(self.devices, 2)
        targets.addWidget(self.address, 2)
        targets.addWidget(self.run_button)
        targets.addWidget(self.cancel_button)
        targets.addWidget(self.apply_button)
        self.status = QLabel("", self)
        self.status.setObjectName("quantMessage")
        self.status.setWordWrap(True)

        self.model = SweepTableModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.doubleClicked.connect(
            lambda idx: self.apply_point(self.model.rows[idx.row()]["key"])
        )
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.plot = ParetoPlot(self)
        self.plot.point_clicked.connect(self._plot_clicked)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.setSizes([220, 260])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(axes)
        layout.addLayout(targets)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)
        self._set_running(False)
        self.ctx.sweep_report_section = self.report_section

    # ------------------------------------------------------------------ building and running
    def spec(self) -> SweepSpec:
        """The sweep the controls describe, on the open model with the plan's settings."""
        if not self.ctx.model_path:
            raise StudioError("open a model first")
        plan = self.ws.plan()
        base = {
            "act_bw": plan.activation_bitwidth,
            "weight_bw": plan.weight_bitwidth,
            "per_channel": plan.per_channel,
            "method": plan.method,
            "percentile": plan.percentile,
        }
        grid: dict[str, list[Any]] = {}
        for key, boxes in self.checks.items():
            values = [v for box, v in boxes if box.isChecked()]
            if values:
                grid[key] = values
        devices = [d.strip() for d in self.devices.text().split(",") if d.strip()]
        if devices:
            grid["device"] = devices
        spec = SweepSpec(
            models=[str(self.ctx.model_path)],
            grid=grid,
            base=base,
            calib=self.ws.data_spec or None,
        )
        spec.expand()  # check everything before starting anything
        return spec

    def output_path(self) -> Path:
        project = getattr(self.ctx, "project", None)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if project is not None:
            folder = project.runs_dir() / "sweeps"
        else:
            folder = Path(self._scratch.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"sweep-{stamp}.json"

    def run(self) -> None:
        jobs = getattr(self.ctx, "jobs", None)
        if jobs is None:
            self.status.setText("no job manager: sweeps run from the main window")
            return
        try:
            spec = self.spec()
        except StudioError as exc:
            self.status.setText(str(exc))
            return
        self.model.clear()
        self.doc = None
        self.out_path = self.output_path()
        request = {
            "spec": spec.to_json(),
            "out": str(self.out_path),
            "address": self.address.text().strip() or None,
        }
        self.handle = jobs.submit(job_kind(sweep_job), request, title="Sweep", lane="sweep")
        self.handle.data.connect(self._on_data)
        self.handle.finished.connect(self._on_finished)
        self._set_running(True)
        self.status.setText(f"starting Ray and {len(spec.expand())} points…")

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_data(self, payload: Any) -> None:
        row = payload.get("row") if isinstance(payload, dict) else None
        if not row:
            return
        self.model.upsert(row)
        if row["status"] == "done":
            self._add_profile_run(row)
        rows = [dict(r) for r in self.model.rows]
        mark_pareto(rows)
        self.model.set_pareto({r["key"]: r["pareto"] for r in rows})
        self.plot.set_rows(self.model.rows)
        self._show_counts()

    def _on_finished(self, state: str) -> None:
        self._set_running(False)
        if self.out_path is not None and self.out_path.is_file():
            try:
                self.load(self.out_path)
            except StudioError as exc:
                self.status.setText(str(exc))
                return
        if state == "failed" and self.handle is not None:
            self.status.setText(f"sweep failed: {self.handle.error_message}")
        elif state == "cancelled":
            self.status.setText(self.status.text() + " · cancelled (finished points kept)")

    def load(self, path: str | Path) -> None:
        """Show a sweep result file (a finished or cancelled sweep, or one from the CLI)."""
        from studio.core.sweeps import results

        self.doc = results.load(path)
        self.out_path = Path(path)
        self.model.clear()
        for row in self.doc["rows"]:
            self.model.upsert(row)
        self.plot.set_rows(self.model.rows)
        self._show_counts()

    def _show_counts(self) -> None:
        counts = self.model.counts()
        order = ("queued", "running", "done", "failed", "cancelled")
        text = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
        if self.doc:
            cl = self.doc.get("cluster", {})
            text += f" · Ray {self.doc.get('ray_version')}, {cl.get('nodes')} node(s)"
        self.status.setText(text)

    def _add_profile_run(self, row: dict[str, Any]) -> None:
        """The point's ProfileRun into the project's history, as any profile run is kept."""
        project = getattr(self.ctx, "project", None)
        rel = (row.get("records") or {}).get("profile")
        if project is None or not rel or self.out_path is None:
            return
        try:
            record = read_json_strict(self.out_path.parent / rel)
            project.add_run(f"sweep-{row['key']}", f"sweep · {row['label']}", record, backend="htp")
        except StudioError as exc:
            self.status.setText(f"could not keep the point's profile: {exc}")

    # ------------------------------------------------------------------ choosing a point
    def _selection_changed(self, *_args: Any) -> None:
        rows = self.table.selectionModel().selectedRows()
        key = self.model.rows[rows[0].row()]["key"] if rows else None
        self.plot.mark(key)

    def _plot_clicked(self, key: str) -> None:
        i = self.model.row_of(key)
        if i is not None:
            self.table.selectRow(i)
        self.apply_point(key)

    def _apply_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.apply_point(self.model.rows[rows[0].row()]["key"])

    def apply_point(self, key: str) -> bool:
        """Make the point's settings the current quantisation plan (one undoable edit)."""
        i = self.model.row_of(key)
        if i is None:
            return False
        row = self.model.rows[i]
        plan = row.get("plan")
        if row["status"] != "done" or not plan:
            self.status.setText(f"{row['label']}: only a finished point can become the plan")
            return False
        values = {
            k: plan[k]
            for k in (
                "activation_bitwidth",
                "weight_bitwidth",
                "per_channel",
                "method",
                "percentile",
            )
            if k in plan
        }
        self.ws.set_defaults(**values)
        self.plot.mark(key)
        self.status.setText(f"plan set to {row['label']} (undo with Ctrl+Z)")
        self.point_applied.emit(key)
        return True

    # ------------------------------------------------------------------ report
    def report_section(self) -> str | None:
        """The sweep section for the HTML report (the plot as shown, as PNG), or None."""
        if self.doc is None and not self.model.rows:
            return None
        from studio.core.sweeps.report import sweep_section

        doc = self.doc or {"rows": self.model.rows}
        return sweep_section(doc, png=self.plot.png())

    def records_folder(self) -> Path | None:
        return records_dir(self.out_path) if self.out_path else None
