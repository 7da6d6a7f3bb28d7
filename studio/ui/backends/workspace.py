"""The Backends workspace: which backend can run each node, where each node goes, and why.

Thin by design: "Probe op support" runs :func:`studio.core.assignment.support.probe_op_support` (real QNN
compiles, in the worker) and "Assign" runs :func:`studio.core.assignment.scoring.plan_for` off the UI
thread; this page shows their results, edits constraints and pins (undoable, saved in the
project), and colours the graph by backend through the shared context.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio.ui.backends.constraints import ConstraintsEditing
from studio.ui.backends.summary import backend_status_html, run_html, summary_html
from studio.ui.backends.table import (
    COL_NODE,
    COL_REASON,
    COLUMNS,
    NODE_ID_ROLE,
    SORT_ROLE,
    NodeTableModel,
)
from studio.ui.jobs.background import Background
from studio.ui.widgets import progress
from studio.ui.widgets.turns import TurnSteps

OVERLAY_VALUE = {"htp": 0.0, "gpu": 1.0, "cpu": 2.0}
OVERLAY_NAME = "Backend (0 HTP, 1 GPU, 2 CPU)"


def project_measurements(project: Any, graph: Any) -> dict[str, dict[str, float]]:
    """Per-layer ms of the project's saved profile runs of this model (oldest first, newest wins).

    Runs that cannot be read are skipped: a damaged run file must not block an assignment.
    """
    from studio.core.assignment.scoring import measured_from_runs
    from studio.core.errors import StudioError

    if project is None or not getattr(project, "runs", None):
        return {}
    records = []
    for ref in sorted(project.runs, key=lambda r: r.created):
        try:
            records.append(project.load_run(ref.id))
        except StudioError:
            continue
    try:
        return measured_from_runs(records, graph.sha256())
    except StudioError:
        return {}


class BackendsWorkspace(ConstraintsEditing, QWidget):
    """Per-node table, constraint controls, probe/assign buttons and a summary panel."""

    plan_shown = Signal()  # an assignment is on the table, the summary and the graph

    def __init__(self, ctx: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._showing = TurnSteps(self)  # a new plan's display steps, one per turn
        self.graph: Any = None
        self.report: Any = None
        self.plan: Any = None
        self.local_pins: dict[str, str] = {}
        self.local_assumptions: dict[str, float] = {}
        self.last_run: dict[str, Any] | None = None
        self.background = Background(self, jobs=lambda: getattr(ctx, "jobs", None), lane="backends")
        self._build()
        self._progress_stream = progress.Throttle(self._show_progress, self)
        self.background.progress.connect(self._on_progress)
        self.background.error.connect(self._on_error)
        self.background.finished.connect(self._on_finished)
        ctx.model_changed.connect(self.set_graph)
        ctx.node_selected.connect(self._select_row)
        if getattr(ctx, "graph", None) is not None:
            self.set_graph(ctx.graph)

    # ----- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.power = QCheckBox("Power-critical")
        self.performance = QCheckBox("Performance-critical")
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.0, 1e6)
        self.budget.setDecimals(2)
        self.budget.setSuffix(" ms")
        self.budget.setSpecialValueText("no budget")
        self.budget.setToolTip("end-to-end latency budget; 0 = none")
        self.use_profiles = QCheckBox("Use measured profiles")
        self.use_profiles.setChecked(True)
        self.use_profiles.setToolTip(
            "use per-layer times of the project's profile runs instead of MAC-based estimates"
        )
        self.assumptions_button = QPushButton("Assumptions…")
        self.assumptions_button.setToolTip(
            "the assumed constants of the assignment (phone CPU/GPU rates, energy per ms, "
            "boundary costs): view and edit; saved in the project"
        )
        self.assumptions_button.clicked.connect(self.edit_assumptions)
        self.probe_button = QPushButton("Probe op support")
        self.probe_button.setToolTip("compile every node on QNN HTP (and GPU) to learn support")
        self.assign_button = QPushButton("Assign")
        self.assign_button.setToolTip("choose a backend per node under the constraints")
        self.run_button = QPushButton("Run plan")
        self.run_button.setToolTip(
            "run the assigned segments chained on their backends (10 timed runs) and time each "
            "segment and boundary"
        )
        self.export_button = QPushButton("Export plan…")
        self.export_button.setToolTip("save the plan as JSON for `npu-studio run --plan`")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(180)
        self.progress.hide()
        self.status = QLabel("Open a model, then probe op support.")
        self.status.setWordWrap(True)
        for box in (self.power, self.performance):
            box.toggled.connect(self._on_constraint_toggled)
        self.budget.valueChanged.connect(lambda _v: self._store_constraints())
        self.probe_button.clicked.connect(self.probe)
        self.assign_button.clicked.connect(self.assign)
        self.run_button.clicked.connect(self.run_plan)
        self.export_button.clicked.connect(self._export_dialog)

        bar = QHBoxLayout()
        for widget in (self.power, self.performance, QLabel("Latency budget"), self.budget):
            bar.addWidget(widget)
        bar.addWidget(self.use_profiles)
        bar.addWidget(self.assumptions_button)
        bar.addStretch(1)
        for widget in (
            self.progress,
            self.probe_button,
            self.assign_button,
            self.run_button,
            self.export_button,
        ):
            bar.addWidget(widget)

        self.model = NodeTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter nodes (id, op, backend, reason)…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setSortingEnabled(True)
        # Rows start in the model's topological order; a header click sorts.
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in zip(
            range(len(COLUMNS)), (150, 120, 80, 60, 90, 60, 70, 55), strict=False
        ):
            self.table.setColumnWidth(col, width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().currentRowChanged.connect(self._on_row_changed)

        self.backends_label = QLabel("")
        self.backends_label.setWordWrap(True)
        self.backends_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary = QTextBrowser()
        self.summary.setOpenLinks(False)
        self.details = QTextBrowser()
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.summary)
        right.addWidget(self.details)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.filter)
        left_layout.addWidget(self.table)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 2)
        right.setMinimumWidth(400)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.backends_label)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        self._update_buttons()

    # ----- model --------------------------------------------------------------------------------
    def set_graph(self, graph: Any) -> None:
        self.background.cancel()
        self._showing.cancel()  # a plan of the previous model no longer shows
        self.graph, self.report, self.plan, self.last_run = graph, None, None, None
        self.model.set_graph(graph)
        self._load_constraints()
        self.backends_label.setText("")
        self.summary.setHtml("")
        self.details.setHtml("")
        self.status.setText(
            "Probe op support to see which nodes each backend accepts." if graph is not None else ""
        )
        self.ctx.set_badges("backend", {})
        self._update_buttons()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        """A project opened while this page was hidden may carry other constraints and pins."""
        super().showEvent(event)
        self._load_constraints()

    # ----- background work ----------------------------------------------------------------------
    def probe(self) -> None:
        """Probe op support on HTP and GPU (real compiles in the worker process)."""
        if self.graph is None:
            return
        from studio.core.assignment.support import probe_op_support

        graph = self.graph
        self._run(
            "Probe op support",
            lambda ctx: probe_op_support(graph, ("htp", "gpu"), ctx=ctx),
            self._on_probed,
        )

    def assign(self) -> None:
        """Assign under the current constraints (probing first when nothing was probed yet)."""
        if self.graph is None:
            return
        from studio.core.assignment.scoring import plan_for
        from studio.core.assignment.support import probe_op_support

        graph, report, constraints = self.graph, self.report, self.constraints()
        project = getattr(self.ctx, "project", None) if self.use_profiles.isChecked() else None

        def work(ctx: Any) -> Any:
            found = report or probe_op_support(graph, ("htp", "gpu"), ctx=ctx)
            return found, plan_for(graph, found, constraints, project_measurements(project, graph))

        self._run("Assign backends", work, self._on_assigned)

    def run_plan(self) -> None:
        """Execute the plan: segments chained in the worker, timed per segment and boundary."""
        if self.graph is None or self.plan is None:
            return
        from studio.core.assignment.partitioned_run import profile_plan

        path, plan = str(self.graph.path), self.plan
        shapes = dict(getattr(self.ctx, "input_shapes", {}) or {}) or None

        def work(ctx: Any) -> Any:
            return profile_plan(path, plan, None, ctx, runs=10, warmup=2, input_shapes=shapes)

        self._run("Run plan", work, self._on_ran)

    def export_plan(self, path: str) -> None:
        """Write the plan (versioned JSON, atomically) for the CLI's ``--plan``."""
        from studio.core.atomic import atomic_write_json

        if self.plan is None:
            return
        atomic_write_json(path, self.plan.to_json())
        self.status.setText(f"Plan written to {path}")

    def _export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, "Export plan", "plan.json", "JSON (*.json)")
        if path:
            try:
                self.export_plan(path)
            except Exception as exc:  # noqa: BLE001 - StudioError or OSError: show, never crash
                self.ctx.show_error("Export plan", str(exc))

    def _on_ran(self, data: Any) -> None:
        self.last_run = data
        self.summary.setHtml(run_html(data) + summary_html(self.plan))
        self.status.setText(
            f"Ran {len(data['timings'])} segment(s): {data['total_ms']:.3f} ms median end to end."
        )

    def _run(self, title: str, fn: Any, on_done: Any) -> None:
        self.background.start(title, fn, on_result=on_done)  # a running one is cancelled first
        self._progress_stream.drop()
        progress.set_value(self.progress, 0)
        self.progress.show()
        self.status.setText(f"{title}…")
        self._update_buttons()

    def _on_progress(self, fraction: float, _stage: str, text: str) -> None:
        """A job's progress, at most a few times a second (``widgets/progress``)."""
        self._progress_stream(fraction, text)

    def _show_progress(self, fraction: float, text: str) -> None:
        progress.set_value(self.progress, int(fraction * 100))
        if text:
            self.status.setText(text)

    def _on_finished(self, _state: str) -> None:
        self._progress_stream.drop()
        self.progress.hide()
        self._update_buttons()

    def _on_error(self, title: str, message: str, _details: str) -> None:
        self.status.setText(f"{title} failed: {message}")
        self.ctx.show_error(title, message)

    def _on_probed(self, report: Any) -> None:
        self.report = report
        self.model.set_report(report)
        self.backends_label.setText(backend_status_html(report))
        rejected = {b: len(report.rejected(b)) for b in report.available() if b != "cpu"}
        parts = [f"{b.upper()} rejects {n} node(s)" for b, n in rejected.items()]
        source = " (from cache)" if report.from_cache else f" in {report.elapsed_s:.1f} s"
        self.status.setText(
            f"Probed {report.signatures} signature(s) with {report.probes} compile(s){source}. "
            + "; ".join(parts)
        )
        self.ctx.set_badges("backend", {})

    def _on_assigned(self, result: Any) -> None:
        """Show a plan over several event-loop turns (issue 15: no UI-thread stall > 50 ms).

        The table, the summary, the graph's badges and its overlay each take a turn of their
        own; ``self.plan`` is set in the last one, then ``plan_shown`` is emitted.
        """
        report, plan = result
        self._showing.run(
            [
                lambda: self._show_plan_table(report, plan),
                lambda: self.summary.setHtml(summary_html(plan)),
                lambda: self.ctx.set_badges(
                    "backend", {d.node_id: d.backend.upper() for d in plan.decisions}
                ),
                lambda: self.ctx.set_overlay(
                    OVERLAY_NAME,
                    {d.node_id: OVERLAY_VALUE[d.backend] for d in plan.decisions},
                    "coolwarm",
                    "",
                    kind="derived",
                    source="backend plan",
                ),
                lambda: self._plan_shown(plan),
            ]
        )

    def _show_plan_table(self, report: Any, plan: Any) -> None:
        if self.report is not report:
            self._on_probed(report)
        self.model.set_plan(plan)

    def _plan_shown(self, plan: Any) -> None:
        self.plan = plan
        self.ctx.plan = plan  # shared: the Deploy workspace compiles it
        s = plan.summary
        self.status.setText(
            f"Assigned: {s['segments']} segment(s), {s['boundaries']} boundary(ies), "
            f"{s['estimated_total_ms']:.3f} ms ({'/'.join(s['cost_sources'])})."
        )
        self._update_buttons()
        self.plan_shown.emit()

    def _update_buttons(self) -> None:
        has_model = self.graph is not None
        self.probe_button.setEnabled(has_model and not self.background.busy)
        self.assign_button.setEnabled(has_model and not self.background.busy)
        self.run_button.setEnabled(self.plan is not None and not self.background.busy)
        self.export_button.setEnabled(self.plan is not None)

    # ----- selection ----------------------------------------------------------------------------
    def _on_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        node_id = self.proxy.data(current, NODE_ID_ROLE)
        self._show_details(node_id)
        self.ctx.select_node(node_id)

    def _select_row(self, node_id: str) -> None:
        row = self.model.row_of(node_id)
        if row < 0:
            return
        index = self.proxy.mapFromSource(self.model.index(row, COL_NODE))
        if index.isValid() and self.table.currentIndex().row() != index.row():
            self.table.selectRow(index.row())
            self.table.scrollTo(index)

    def _show_details(self, node_id: str) -> None:
        from studio.ui.backends.summary import node_html

        row = self.model.row_of(node_id)
        reason = self.model.data(self.model.index(row, COL_REASON)) if row >= 0 else ""
        self.details.setHtml(node_html(node_id, self.report, self.plan, reason))
