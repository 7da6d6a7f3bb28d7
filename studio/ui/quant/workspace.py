"""The Quantization workspace: calibrate, edit per-tensor encodings, analyse SQNR, export, build.

Thin over the core: the state is a :class:`studio.core.quantize.QuantPlan` (held by
:class:`QuantSession`), every edit is an undo command on ``ctx.undo_stack``, every long action
(calibration, analysis, auto-mix, QDQ build) is a core call run by a :class:`~studio.ui.jobs.background.Background` off the UI
thread with progress and cancel. The plan is written to ``ctx.project`` after each change so the
project's autosave keeps it, and rebuilt from the project when a model is opened.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.quantize.plan import QuantPlan, TensorOverride
from studio.ui.jobs.background import CANCELLED, DONE, Background
from studio.ui.quant import building, calibrating, edits, evaluation
from studio.ui.quant.charts import MixCurve, SqnrChart
from studio.ui.quant.editor import EditorPanel
from studio.ui.quant.histogram import HistogramView
from studio.ui.quant.prepare import prepared_with_rows
from studio.ui.quant.session import QuantSession
from studio.ui.quant.simcheck_view import SimVsHtpView
from studio.ui.quant.style import color
from studio.ui.quant.technique_view import TechniqueEffectsView
from studio.ui.quant.toolbar import build_toolbar, install_local_shortcuts
from studio.ui.widgets import progress

log = logging.getLogger(__name__)

STYLE = f"""
#quantBanner {{ background: #3a2f1a; color: {color("warning")}; border: 1px solid #5a4620;
  border-radius: 4px; padding: 5px 8px; }}
#quantMessage[error="true"] {{ color: {color("error")}; }}
#quantMessage {{ color: {color("muted")}; }}
#quantWarning {{ color: {color("warning")}; }}
#quantHistTitle {{ font-weight: 600; }}
#quantHistInfo, #quantChartCaption {{ color: {color("muted")}; }}
QToolButton#quantBulkButton {{ padding: 3px 8px; }}
"""


class QuantizationWorkspace(QWidget):
    """The page of the main window's Quantization tab."""

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quantWorkspace")
        self.setStyleSheet(STYLE)
        self.ctx = ctx
        self.session = QuantSession(self)
        self.runner = Background(self, jobs=lambda: getattr(ctx, "jobs", None), lane="quant")
        self.preparer = Background(self, latest_only=False)  # folds each opened model
        self._restored = False
        self.data_spec = ""
        self.last_build: Any = None
        self.mix_result: Any = None  # (plan before the search, AutoMpResult)
        self.sqnr_report: Any = None
        self._evaluation: Any = None  # (key, Analyser, feeds), see evaluation._evaluation
        self._scratch = tempfile.TemporaryDirectory(prefix="npu-studio-quant-")
        self._syncing = False
        self._local_shortcuts: list[QAction] = []

        self.toolbar = build_toolbar(self)
        self.banner = QLabel(self)
        self.banner.setObjectName("quantBanner")
        self.banner.setWordWrap(True)
        self.banner.hide()

        self.editor = EditorPanel(self.session, self)
        self.histogram = HistogramView(self)
        self.sqnr_chart = SqnrChart(self)
        self.mix_curve = MixCurve(self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.sqnr_chart, "Per-layer SQNR")
        self.tabs.addTab(self.mix_curve, "Auto mixed precision")
        self.sim_vs_htp_view = SimVsHtpView(self)
        self.tabs.addTab(self.sim_vs_htp_view, "Sim vs HTP")
        self.technique_view = TechniqueEffectsView(self)
        self.tabs.addTab(self.technique_view, "Techniques")
        from studio.ui.sweeps.view import SweepsView

        self.sweeps = SweepsView(self)
        self.tabs.addTab(self.sweeps, "Sweeps")
        right = QSplitter(Qt.Orientation.Vertical, self)
        right.addWidget(self.histogram)
        right.addWidget(self.tabs)
        right.setSizes([320, 280])
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.editor)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([1000, 560])
        self.splitter = split

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress_text = QLabel(self)
        self._progress_stream = progress.Throttle(self._show_progress, self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.message = QLabel("Open a model, then Calibrate.", self)
        self.message.setObjectName("quantMessage")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        status = QHBoxLayout()
        status.addWidget(self.message, 1)
        status.addWidget(self.progress_text)
        status.addWidget(self.progress)
        status.addWidget(self.cancel_button)
        self._set_busy(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 6)
        layout.setSpacing(6)
        layout.addLayout(self.toolbar)
        layout.addWidget(self.banner)
        layout.addWidget(split, 1)
        layout.addLayout(status)

        # wiring
        self.editor.model.edit_fn = self.edit_field
        self.editor.bulk_requested.connect(self.bulk_edit)
        self.editor.selection_changed.connect(self._rows_selected)
        self.histogram.range_edited.connect(self.edit_range)
        self.sqnr_chart.tensor_clicked.connect(lambda n: self.editor.select_names([n]))
        self.mix_curve.point_clicked.connect(self.apply_mix_point)
        self.session.tensors_changed.connect(self._refresh_selected)
        self.session.rows_reset.connect(self._refresh_selected)
        self.session.rows_reset.connect(self._publish_badges)
        self.session.plan_changed.connect(self._plan_changed)
        self.session.sqnr_changed.connect(self._sqnr_changed)
        self.runner.started.connect(lambda t: self._set_busy(True, t))
        self.runner.progress.connect(self._progress)
        self.runner.log.connect(self._log_line)
        self.runner.error.connect(self._job_failed)
        self.runner.finished.connect(self._job_finished)
        ctx.model_changed.connect(self.open_model)
        ctx.node_selected.connect(self._node_selected)
        if getattr(ctx, "graph", None) is not None:
            self.open_model(ctx.graph)

    # ------------------------------------------------------------------ layout pieces
    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._local_shortcuts:
            self._local_shortcuts = install_local_shortcuts(self, self.ctx.undo_stack)

    # ------------------------------------------------------------------ model / project
    def open_model(self, graph: Any) -> None:
        """A model was opened (or closed): reset, then restore the project's plan and stats."""
        self.runner.cancel()
        self.mix_result = None
        self.sqnr_report = None
        self._evaluation = None
        self.last_build = None
        self.mix_curve.set_curve([], [])
        self.session.set_model(graph)
        if graph is not None:
            generation = self.session.generation
            self.preparer.start(
                "Prepare model",
                lambda _ctx: prepared_with_rows(graph),
                on_result=lambda result: self._prepared(generation, result[0], "", result[1]),
                on_error=lambda message, _details: self._prepared(generation, None, message),
            )
        project = getattr(self.ctx, "project", None)
        restored = calibrating.restore_from_project(self, project) if graph is not None else False
        self._restored = restored
        self._sync_default_widgets()
        self._update_banner()
        if graph is None:
            self.show_message("Open a model, then Calibrate.")
        elif not restored:
            self.show_message("Preparing the model (folding BatchNorm) to list its tensors...")

    def _prepared(self, generation: int, proto: Any, error: str, rows: Any = None) -> None:
        """The folded model arrived (with its rows, listed on the preparer's thread)."""
        if not self.session.set_prepared(proto, generation, rows):
            return
        if error:
            self.show_message(
                f"could not fold the model ({error}); listing the tensors of the model as opened",
                error=True,
            )
        elif not self._restored:
            self.show_message(
                f"{len(self.session.rows)} quantisable tensors. Calibrate to compute encodings."
            )

    def _plan_changed(self) -> None:
        project = getattr(self.ctx, "project", None)
        if project is not None:
            try:
                project.update("quant_plan", self.session.plan.to_json())
            except StudioError as exc:
                self.show_message(f"project not updated: {exc}", error=True)
        self._sync_default_widgets()
        self._publish_badges()
        self._update_banner()

    def _sync_default_widgets(self) -> None:
        plan = self.session.plan
        self.act_bits.setCurrentText(f"A{plan.activation_bitwidth}")
        self.weight_bits.setCurrentText(f"W{plan.weight_bitwidth}")
        self.method.setCurrentText(plan.method)

    def _update_banner(self) -> None:
        notes = []
        stats = self.session.stats
        if stats is not None and stats.warnings:
            notes.extend(stats.warnings)
        if self.session.plan.imported_source:
            notes.append(
                f"encodings imported from {Path(self.session.plan.imported_source).name} "
                "take precedence over calibrated ranges (your edits still win)"
            )
        if notes:
            self.banner.setText("⚠ " + "\n⚠ ".join(notes))
            self.banner.show()
        else:
            self.banner.hide()

    # ------------------------------------------------------------------ edits (edits.py)
    def push_overrides(
        self, changes: dict[str, TensorOverride | None], text: str, merge_key: str | None = None
    ) -> bool:
        return edits.push_overrides(self, changes, text, merge_key)

    def edit_field(self, name: str, key: str, value: Any) -> bool:
        return edits.edit_field(self, name, key, value)

    def bulk_edit(self, key: str, value: Any, names: list[str]) -> bool:
        return edits.bulk_edit(self, key, value, names)

    def edit_range(self, name: str, lo: float, hi: float) -> bool:
        return edits.edit_range(self, name, lo, hi)

    def set_defaults(self, **values: Any) -> bool:
        return edits.set_defaults(self, **values)

    # ------------------------------------------------------------------ selection
    def _rows_selected(self, names: list[str]) -> None:
        self._refresh_selected()
        if self._syncing or not names:
            return
        row = self.session.row(names[0])
        if row is not None and row.node_id:
            self._syncing = True
            try:
                self.ctx.select_node(row.node_id)
            finally:
                self._syncing = False

    def _node_selected(self, node_id: str) -> None:
        if self._syncing or not node_id:
            return
        names = [r.name for r in self.session.rows if r.node_id == node_id]
        if not names:
            return
        # the node's own output first, then its weights
        names.sort(key=lambda n: self.session.row(n).kind != "activation")
        self._syncing = True
        try:
            self.editor.select_names(names)
        finally:
            self._syncing = False

    def _refresh_selected(self, *_args) -> None:
        names = self.editor.selected_names()
        name = names[0] if names else ""
        if not name or self.session.row(name) is None:
            self.histogram.show_tensor("", None, None, None)
            return
        if name == self.histogram.tensor:
            self.histogram.set_encoding(self.session.encoding(name))
        else:
            hist = self.session.histogram(name)
            counts, edges = hist if hist is not None else (None, None)
            self.histogram.show_tensor(
                name, counts, edges, self.session.encoding(name), self.session.observed_range(name)
            )
        self.sqnr_chart.highlight(name)

    # ------------------------------------------------------------------ SQNR, overlay, badges
    def _sqnr_changed(self) -> None:
        order = [r.name for r in self.session.rows if r.name in self.session.sqnr]
        caption = ""
        if order and self.session.sqnr_stale:
            values = [self.session.sqnr[n] for n in order]
            caption = (
                f"{len(order)} tensors, measured before your last edits "
                f"(median {float(np.median(values)):.1f} dB): run Analyse again"
            )
        self.sqnr_chart.set_values(
            order, [self.session.sqnr[n] for n in order], caption, stale=self.session.sqnr_stale
        )
        self.editor.model.refresh()
        if self.session.sqnr and not self.session.sqnr_stale:
            self.ctx.set_overlay(
                "sqnr",
                self.session.node_values(self.session.sqnr),
                "RdYlGn",
                "dB",
                kind="measured",
                source="float vs QDQ on this host (ORT CPU)",
            )

    def _publish_badges(self) -> None:
        if self.session.rows:
            self.ctx.set_badges("bitwidth", self.session.badges())

    # ------------------------------------------- long actions (calibrating, evaluation, building)
    def calibrate_dialog(self) -> None:
        calibrating.calibrate_dialog(self)

    def calibrate(
        self, data: str, method: str | None = None, percentile: float | None = None
    ) -> None:
        calibrating.calibrate(self, data, method, percentile)

    def analyse(self, backend: str | None = None) -> None:
        evaluation.analyse(self, backend or self.backend.currentData())

    def check_htp(self) -> None:
        building.check_htp(self)

    def sim_vs_htp(self, threshold_db: float | None = None) -> None:
        evaluation.sim_vs_htp(self, threshold_db)

    def automix_dialog(self):
        return evaluation.automix_dialog(self)

    def auto_mix(
        self,
        target_db: float,
        max_steps: int = 10,
        backend: str = "cpu",
        cycles: bool = False,
        latency_budget_ms: float | None = None,
        techniques: tuple[str, ...] = ("seqmse",),
    ) -> None:
        evaluation.auto_mix(
            self, target_db, max_steps, backend, cycles, latency_budget_ms, techniques
        )

    def apply_mix_point(self, index: int) -> bool:
        return evaluation.apply_mix_point(self, index)

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import encodings", "", "Encodings (*.json *.encodings);;All files (*)"
        )
        if path:
            self.import_encodings(path)

    def import_encodings(self, path: str) -> bool:
        return building.import_encodings(self, path)

    def export_dialog(self) -> None:
        building.export_dialog(self)

    def export_encodings(self, path: str, fmt: str) -> bool:
        return building.export_encodings(self, path, fmt)

    def build_dialog(self):
        return building.build_dialog(self)

    def build_qdq(
        self, path: str, techniques: str | None = None, block_size: int | None = None
    ) -> None:
        building.build_qdq(self, path, techniques, block_size)

    # ------------------------------------------------------------------ status
    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setToolTip(text)
        self.message.setProperty("error", "true" if error else "false")
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        status = getattr(self.ctx, "status_message", None)
        if status is not None:
            status.emit(text)

    def _set_busy(self, busy: bool, title: str = "") -> None:
        for w in (self.progress, self.progress_text, self.cancel_button):
            w.setVisible(busy)
        for b in (
            self.calibrate_button,
            self.analyse_button,
            self.automix_button,
            self.build_button,
        ):
            b.setEnabled(not busy)
        self._progress_stream.drop()  # a late job message must not follow the final state
        if busy:
            progress.set_value(self.progress, 0)
            self.progress_text.setText(title)

    def _progress(self, fraction: float, _stage: str, text: str) -> None:
        """A job's progress, at most a few times a second (``widgets/progress``)."""
        self._progress_stream(fraction, text)

    def _show_progress(self, fraction: float, text: str) -> None:
        progress.set_value(self.progress, int(fraction * 1000))
        if text:
            self.progress_text.setText(text)

    def _log_line(self, line: str) -> None:
        log.info("%s: %s", self.runner.title, line)
        if line.startswith("warning:"):
            self.show_message(line)

    def _job_failed(self, title: str, message: str, details: str) -> None:
        self._set_busy(False)
        self.show_message(f"{title} failed: {message}", error=True)
        if getattr(self.ctx, "jobs", None) is None:  # the Jobs dock reports it otherwise
            self.ctx.show_error(f"{title} failed", message)

    def _job_finished(self, state: str) -> None:
        if state == DONE:
            self._set_busy(False)
        elif state == CANCELLED:
            self._set_busy(False)
            self.show_message(f"{self.runner.title} cancelled")

    def closeEvent(self, event) -> None:  # noqa: N802
        self.runner.cancel()
        self.runner.wait(5000)
        self.preparer.wait(5000)
        super().closeEvent(event)

    def scratch_path(self, name: str) -> str:
        """A file in this workspace's temporary folder (QDQ models built for analysis)."""
        return str(Path(self._scratch.name) / name)

    # ------------------------------------------------------------------ for tests / main window
    def plan(self) -> QuantPlan:
        return self.session.plan
