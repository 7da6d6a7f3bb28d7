"""The Profiling workspace: run a profile, read it, put it on the graph, compare, export.

Layout: a control bar on top (model, backend, runs, warm-up, sustained, Start/Cancel); on the left
the run history and the suggestions; on the right a Dashboard tab (key figures, four plots, the
per-layer table) and a Compare tab, with Show on graph / Export / Presentation in the tab corner. Everything shown
comes from a core ``ProfileRun``; this class only wires panels to the context:

* a bar, a table row or a suggestion calls ``ctx.select_node``; ``ctx.node_selected`` moves the
  table selection and highlights the bar, so graph, chart and table always agree;
* "Show on graph" sends the run's per-node cost to the Graph workspace (``ctx.set_overlay``);
* finished runs go to the project (``Project.add_run``) or, without one, to this session's list.

A run reaches the dashboard over several event-loop turns (``show_run``: the table, then one plot
per turn, then the suggestions), each followed by its repaint, so the window never freezes while
a result lands (issue 15: no UI-thread stall above 50 ms); ``run_shown`` says it is complete.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.profiling.records import ProfileRun
from studio.ui.jobs.background import CANCELLED, Background
from studio.ui.profiling import exporting
from studio.ui.profiling.compare import ComparePanel
from studio.ui.profiling.controls import ControlBar
from studio.ui.profiling.figures import KeyFiguresPanel
from studio.ui.profiling.history import RunHistoryPanel, RunStore
from studio.ui.profiling.layer_table import LayerTablePanel
from studio.ui.profiling.plots import HistogramPlot, LatencyPlot, OpTypePlot, SlowestLayersPlot
from studio.ui.profiling.runner import PROFILE_KIND, GraphCache
from studio.ui.profiling.suggestions import SuggestionsPanel
from studio.ui.profiling.view_data import LiveLatencies, overlay_for
from studio.ui.widgets import progress
from studio.ui.widgets.theme import COLORS
from studio.ui.widgets.turns import TurnSteps

LIVE_MS = 250  # live latency plots refreshed at most this often

log = logging.getLogger(__name__)

QSS = f"""
QLabel#profilingMuted {{ color: {COLORS["muted"]}; }}
QPushButton#primaryButton {{ background: {COLORS["accent"]}; color: white; font-weight: 600;
                             border: none; border-radius: 4px; padding: 4px 14px; }}
QPushButton#primaryButton:disabled {{ background: {COLORS["border"]}; color: {COLORS["muted"]}; }}
QProgressBar {{ background: {COLORS["base"]}; border: none; border-radius: 4px; }}
QProgressBar::chunk {{ background: {COLORS["accent"]}; border-radius: 4px; }}
"""


class ProfilingWorkspace(QWidget):
    """The Profiling tab of the main window (``studio.ui.shell.workspaces``)."""

    run_shown = Signal(str)  # run id: table, plots and suggestions now all show that run
    live_shown = Signal()  # the latency plots show the running profile's latencies so far

    def __init__(self, ctx: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._showing = TurnSteps(self)  # show_run's remaining steps, one per event-loop turn
        self._live_showing = TurnSteps(self)  # the two live plots, one per turn
        self._live_showing.done.connect(self.live_shown)
        self._first_paint = TurnSteps(self)  # the plots' first paint, one plot per turn
        self._first_paint_done = False
        # live latencies arrive several times a second; the plots follow at most 4 times a second
        self._live_refresh = progress.Throttle(self._show_live, self, interval_ms=LIVE_MS)
        self.setObjectName("profilingWorkspace")
        self.setStyleSheet(QSS)
        self.run: ProfileRun | None = None
        self.store = RunStore(ctx, on_write_failed=self._run_not_saved)
        self.runner = Background(self, jobs=lambda: getattr(ctx, "jobs", None), lane="profiling")
        self.graphs = GraphCache(self)
        self.graphs.ready.connect(self._graph_ready)
        self._probed = False
        self.live: LiveLatencies | None = None  # latencies so far of the running profile

        self.controls = ControlBar(self)
        self.overlay_btn = QToolButton(self)
        self.overlay_btn.setText("Show on graph")
        self.overlay_btn.setCheckable(True)
        self.overlay_btn.setToolTip("Colour the Graph workspace's nodes by this run's cost")
        self.overlay_btn.toggled.connect(self._overlay_toggled)
        self.export_btn = QToolButton(self)
        self.export_btn.setText("Export")
        self.export_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = exporting.export_menu(self, self.export_btn)
        self.export_btn.setMenu(menu)
        self.present_btn = QToolButton(self)
        self.present_btn.setText("Presentation")
        self.present_btn.setCheckable(True)
        self.present_btn.setToolTip("Large type, key figures only (for live demos)")
        self.present_btn.toggled.connect(self.set_presentation)

        self.figures = KeyFiguresPanel(self)
        self.latency = LatencyPlot(self)
        self.hist = HistogramPlot(self)
        self.slowest = SlowestLayersPlot(self)
        self.optypes = OpTypePlot(self)
        self.table = LayerTablePanel(self)
        self.history = RunHistoryPanel(self.store, self)
        self.suggestions = SuggestionsPanel(self)
        self.compare = ComparePanel(self)
        self._build_layout()

        self.controls.start_requested.connect(self.start_profile)
        self.controls.cancel_requested.connect(self.runner.cancel)
        self.runner.progress.connect(self.controls.report_progress)
        self.runner.data.connect(self._on_live_data)
        self.runner.result.connect(self._on_result)
        self.runner.error.connect(self._on_failed)
        self.runner.finished.connect(self._on_finished)
        self.slowest.node_clicked.connect(self.ctx.select_node)
        self.table.node_activated.connect(self.ctx.select_node)
        self.suggestions.node_activated.connect(self.ctx.select_node)
        self.compare.node_activated.connect(self.ctx.select_node)
        self.history.run_chosen.connect(self.show_run_id)
        self.history.compare_requested.connect(self.compare_ids)
        self.history.run_renamed.connect(self._run_renamed)
        self.ctx.node_selected.connect(self._follow_selection)
        self.ctx.model_changed.connect(self._model_changed)
        if hasattr(self.ctx, "profile_run_ready"):  # runs measured elsewhere (Deploy: a bundle)
            self.ctx.profile_run_ready.connect(self._on_result)
        self._clear_dashboard()
        self._model_changed(getattr(ctx, "graph", None))

    # ----- layout -------------------------------------------------------------------------
    def _build_layout(self) -> None:
        corner = QWidget(self)
        corner_layout = QHBoxLayout(corner)
        corner_layout.setContentsMargins(0, 0, 0, 2)
        for w in (self.overlay_btn, self.export_btn, self.present_btn):
            corner_layout.addWidget(w)

        self.plots = QWidget(self)
        grid = QGridLayout(self.plots)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        grid.addWidget(self.latency, 0, 0)
        grid.addWidget(self.hist, 0, 1)
        grid.addWidget(self.slowest, 1, 0)
        grid.addWidget(self.optypes, 1, 1)
        self.dash_split = QSplitter(Qt.Orientation.Vertical, self)
        self.dash_split.addWidget(self.plots)
        self.dash_split.addWidget(self.table)
        self.dash_split.setStretchFactor(0, 3)
        self.dash_split.setStretchFactor(1, 2)
        self.dash_split.setSizes([620, 300])
        dashboard = QWidget(self)
        dl = QVBoxLayout(dashboard)
        dl.setContentsMargins(6, 6, 6, 6)
        dl.addWidget(self.figures)
        dl.addWidget(self.dash_split, 1)

        self.tabs = QTabWidget(self)
        self.tabs.addTab(dashboard, "Dashboard")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.setCornerWidget(corner, Qt.Corner.TopRightCorner)

        self.side = QSplitter(Qt.Orientation.Vertical, self)
        self.side.addWidget(self.history)
        self.side.addWidget(self.suggestions)
        self.side.setSizes([300, 400])
        self.main_split = QSplitter(Qt.Orientation.Horizontal, self)
        self.main_split.addWidget(self.side)
        self.main_split.addWidget(self.tabs)
        self.main_split.setStretchFactor(1, 1)
        self.main_split.setSizes([300, 1200])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.controls)
        layout.addWidget(self.main_split, 1)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._probed:
            self._probed = True
            self.controls.probe()
        if not self._first_paint_done:
            self._first_paint_done = True
            self._stagger_first_paint()
        self.history.refresh(self.run.id if self.run else "")

    def _stagger_first_paint(self) -> None:
        """Paint the four plots on turns of their own the first time the tab shows.

        A plot's first paint lays out and draws both its axes (10-20 ms each on this host's
        software raster); four in the turn that shows the tab made one 60-80 ms stall. A plot
        whose updates are off is not painted (its space shows the background) until its turn.
        """
        plots = (self.latency, self.hist, self.slowest, self.optypes)
        for plot in plots:
            plot.setUpdatesEnabled(False)
        self._first_paint.run([lambda p=plot: p.setUpdatesEnabled(True) for plot in plots])

    # ----- model and runs -----------------------------------------------------------------
    def _model_changed(self, graph: Any) -> None:
        # A new model usually comes with a new project: its history replaces the list, and a
        # run that is not in it leaves the dashboard.
        ids = {e.id for e in self.store.entries()}
        if self.run is not None and self.run.id not in ids:
            self._showing.cancel()
            self.run = None
            self.figures.clear()
            self.table.set_run(None)
            self.suggestions.set_suggestions([])
            self._clear_dashboard()
        self.history.refresh(self.run.id if self.run else "")
        path = getattr(self.ctx, "model_path", None)
        if graph is None or not path:
            self.controls.set_open_model(None)
            return
        path = str(Path(path).resolve())
        self.controls.set_open_model(path)
        self.graphs.put(path, graph)
        quantized = any(n.op_type == "QuantizeLinear" for n in getattr(graph, "nodes", []))
        if quantized and self.controls.available.get("htp") is not False:
            self.controls.select_backend("htp")

    def request(self, options: dict[str, Any]) -> dict[str, Any]:
        """The profile job's request for the chosen model and the given control values."""
        path = self.controls.model_path() or str(self.ctx.model_path)
        req: dict[str, Any] = {"model": path, "layers": True, "layer_runs": 3, **options}
        shapes = getattr(self.ctx, "input_shapes", None)
        opened = getattr(self.ctx, "model_path", None)
        if shapes and opened and Path(opened).resolve() == Path(path).resolve():
            req["input_shapes"] = shapes
        if options.get("duration_s"):
            mode = f"{options['duration_s']:g} s"
        else:
            mode = f"{options['runs']} runs"
        req["label"] = f"{Path(path).stem} · {str(options['backend']).upper()} · {mode}"
        return req

    def start_profile(self, options: dict[str, Any] | None = None) -> None:
        if self.runner.busy or not self.controls.model_path():
            return
        req = self.request(options or self.controls.options())
        self.controls.set_running(True)
        self.controls.show_progress(0.0, "start", f"profiling on {req['backend'].upper()}…")
        self.live = LiveLatencies(sustained=bool(req.get("duration_s")))
        self.runner.submit(f"Profile {req['label']}", PROFILE_KIND, req)

    def _on_live_data(self, payload: Any) -> None:
        """Latencies so far: the latency curve and histogram fill in place while measuring."""
        if self.live is None or not self.live.add(payload):
            return
        if self.run is None:
            self.figures.note.setText(
                "Measuring: the latency plots fill as runs complete; key figures and per-layer "
                "results follow when the run ends."
            )
        self._live_refresh()

    def _show_live(self) -> None:
        live = self.live
        if live is None:
            return
        self._live_showing.run(
            [lambda: self.latency.show_live(live), lambda: self.hist.show_live(live)]
        )

    def _stop_live_updates(self) -> None:
        self._live_refresh.drop()
        self._live_showing.cancel()

    def _on_result(self, result: Any) -> None:
        self._stop_live_updates()
        self.live = None
        self.controls.set_running(False)
        try:
            run = ProfileRun.from_json(result)
        except StudioError as exc:
            self._on_failed("Profiling result unreadable", str(exc), "")
            return
        try:
            self.store.add(run)
        except (OSError, StudioError) as exc:
            self._run_not_saved(run, str(exc))
        self.history.refresh(run.id)
        self.show_run(run)
        self.controls.show_progress(1.0, "", f"done: {run.stats.count} runs")

    def _run_not_saved(self, run: ProfileRun, reason: str) -> None:
        """The measurement stands; only keeping it failed: say so, keep it for this session."""
        self.store.keep_in_memory(run)
        self.history.refresh(self.run.id if self.run else run.id)
        self.ctx.show_error("Run not saved in the project", f"{run.label}: {reason}")

    def _on_failed(self, title: str, message: str, _details: str = "") -> None:
        self._end_live()
        self.controls.set_running(False)
        self.controls.show_progress(0.0, "", f"failed: {message.splitlines()[0][:120]}")
        self.controls.status.setToolTip(message)
        self.ctx.show_error(title, message)

    def _on_finished(self, state: str) -> None:
        if state == CANCELLED:
            self._on_cancelled()

    def _on_cancelled(self) -> None:
        self._end_live()
        self.controls.set_running(False)
        self.controls.show_progress(0.0, "", "cancelled")

    def _end_live(self) -> None:
        """A failed or cancelled profile is no result: its partial curve leaves the plots."""
        had_points = self.live is not None and bool(self.live.values)
        self._stop_live_updates()
        self.live = None
        if not had_points:
            return
        if self.run is not None:
            self.latency.show_run(self.run)
            self.hist.show_run(self.run)
        else:
            self.figures.clear()
            self.latency.clear_data()
            self.hist.clear_data()

    def show_run_id(self, run_id: str) -> None:
        try:
            self.show_run(self.store.get(run_id))
        except StudioError as exc:
            self.ctx.show_error("Cannot open run", str(exc))

    def show_run(self, run: ProfileRun) -> None:
        """Put ``run`` on the dashboard; every plot updates its existing items in place.

        The key figures change at once; the table, each plot and the suggestions follow on
        turns of their own (``TurnSteps``), and ``run_shown`` is emitted after the last one.
        """
        self.run = run
        self.figures.show_run(run)
        self.overlay_btn.setEnabled(overlay_for(run) is not None)
        self._showing.run(
            [
                lambda: self.table.set_run(run),
                self.table.fit_columns,
                lambda: self.latency.show_run(run),
                lambda: self.hist.show_run(run),
                lambda: self.slowest.show_run(run),
                lambda: self.optypes.show_run(run),
                lambda: self._showing.insert_next(self._suggestion_steps(run)),
                lambda: self._run_on_dashboard(run),
            ]
        )

    def _run_on_dashboard(self, run: ProfileRun) -> None:
        """show_run's last step: the overlay and the selection follow, then ``run_shown``."""
        if self.overlay_btn.isChecked():
            self._send_overlay()
        if self.ctx.selected_node:
            self._follow_selection(self.ctx.selected_node)
        self.run_shown.emit(run.id)

    def finish_showing(self) -> None:
        """Complete a pending ``show_run`` now (an export reads the whole dashboard)."""
        self._showing.finish()

    def _clear_dashboard(self) -> None:
        for plot in (self.latency, self.hist, self.slowest, self.optypes):
            plot.clear_data()
        self.overlay_btn.setEnabled(False)

    def _update_suggestions(self, run: ProfileRun) -> None:
        """Suggestions now from the figures; again with structure once the graph is loaded."""
        for step in self._suggestion_steps(run):
            step()

    def _suggestion_steps(self, run: ProfileRun) -> list:
        """The suggestions of ``run`` (computed now) as card-building steps for ``TurnSteps``."""
        from studio.core.profiling.suggestions import suggest

        graph = self.graphs.get(run.model_path)
        if graph is not None:
            note = ""
        elif self.graphs.known(run.model_path):
            note = "Model file unreadable: structural rules skipped."
        else:
            note = "Reading the model for structural rules…"
        try:
            return self.suggestions.card_steps(suggest(run, graph), note)
        except StudioError as exc:
            return self.suggestions.card_steps([], str(exc))

    def _graph_ready(self, path: str) -> None:
        if self.run is not None and self.graphs.key(self.run.model_path) == path:
            self._update_suggestions(self.run)

    # ----- selection and overlay ----------------------------------------------------------
    def _follow_selection(self, node_id: str) -> None:
        self.table.select_node(node_id)
        self.slowest.highlight(node_id)

    def _overlay_toggled(self, on: bool) -> None:
        if on:
            self._send_overlay()
        else:
            self.ctx.clear_overlay()

    def _send_overlay(self) -> None:
        overlay = overlay_for(self.run) if self.run else None
        if overlay is not None:
            self.ctx.show_overlay(overlay)

    def _run_renamed(self, run_id: str) -> None:
        """A compared run's new label shows in the comparison at once."""
        if any(r.id == run_id for r in self.compare.runs):
            self.compare.show_runs(list(self.compare.runs))

    # ----- comparison ---------------------------------------------------------------------
    def compare_ids(self, ids: list[str]) -> None:
        order = [e.id for e in self.store.entries()]  # oldest first: the first is the baseline
        runs = []
        for run_id in sorted(ids, key=lambda i: order.index(i) if i in order else len(order)):
            try:
                runs.append(self.store.get(run_id))
            except StudioError as exc:
                self.ctx.show_error("Cannot open run", str(exc))
                return
        self.compare.show_runs(runs)
        self.tabs.setCurrentWidget(self.compare)

    # ----- export (exporting.py) -----------------------------------------------------------
    def export(self, kind: str, path: str | Path) -> Path:
        """Write the current run (or comparison) as ``kind``; raises StudioError if none."""
        return exporting.export(self, kind, path)

    def _ask_export(self, kind: str) -> None:
        exporting.ask_export(self, kind)

    # ----- presentation -------------------------------------------------------------------
    def set_presentation(self, on: bool) -> None:
        """Demo mode: key figures and the latency histogram only, in large type."""
        if self.present_btn.isChecked() != on:
            self.present_btn.setChecked(on)
            return
        self.figures.set_presentation(on)
        for w in (self.side, self.table, self.latency, self.slowest, self.optypes):
            w.setVisible(not on)
        for i in range(self.tabs.count()):
            self.tabs.setTabVisible(i, i == 0 or not on)
        if on:
            self.tabs.setCurrentIndex(0)
        for plot in (self.latency, self.hist, self.slowest, self.optypes):
            plot.set_font_size(16.0 if on else 9.0)
        if self.run is not None:
            self.hist.show_run(self.run)
