"""The Profiling workspace driven like a user would: real profiles of real models, real clicks.

Every profile here runs the core profile job in the worker process (the same path as the GUI) on
a small model, with few runs so the module stays well under a minute.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from studio.core.errors import StudioError
from studio.core.model.graph import ModelGraph
from studio.core.profiling.records import ProfileRun
from studio.ui.profiling.workspace import ProfilingWorkspace
from studio.ui.shell.context import StudioContext
from studio.ui.widgets.theme import apply_theme
from tests import builders

SHOTS = Path("/tmp/shots")
JOB_TIMEOUT_MS = 60_000


def _cancelled(state: str) -> bool:
    return state == "cancelled"


def _workspace(qtbot, model_path: Path, project=None) -> tuple[StudioContext, ProfilingWorkspace]:
    apply_theme(QApplication.instance())  # the main window's look, for readable screenshots
    ctx = StudioContext()
    ctx.project = project
    ctx.set_model(ModelGraph.load(model_path), str(model_path))
    w = ProfilingWorkspace(ctx)
    w._probed = True  # availability is probed explicitly where a test needs it
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    return ctx, w


def _profile(qtbot, w: ProfilingWorkspace, backend: str, runs: int, warmup: int = 2) -> ProfileRun:
    w.controls.available[backend] = True
    assert w.controls.select_backend(backend)
    w.controls.runs.setValue(runs)
    w.controls.warmup.setValue(warmup)
    # the dashboard fills over several event-loop turns after the result: run_shown ends them
    with qtbot.waitSignal(w.run_shown, timeout=JOB_TIMEOUT_MS) as shown:
        with qtbot.waitSignal(w.runner.result, timeout=JOB_TIMEOUT_MS) as blocker:
            qtbot.mouseClick(w.controls.start_btn, Qt.MouseButton.LeftButton)
            assert w.controls.cancel_btn.isEnabled()
        assert not w.controls.cancel_btn.isEnabled()
    qtbot.wait(50)  # let the dashboard's posted layout settle (bar counts follow plot height)
    run = w.run
    assert run is not None and run.id == blocker.args[0]["id"] == shown.args[0]
    return run


def _click_bar(qtbot, w: ProfilingWorkspace, index: int) -> None:
    plot = w.slowest
    scene_pos = plot.bar_center(index)
    view_pos = plot.mapFromScene(scene_pos)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(view_pos))


def _save_shot(qtbot, w, name: str) -> Path:
    qtbot.wait(50)  # let posted layout requests settle, as a user's screen would
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert w.grab().save(str(path))
    return path


@pytest.fixture
def cnn_path(tmp_path) -> Path:
    return builders.save(builders.small_cnn(), tmp_path / "small_cnn.onnx")


def test_cpu_profile_fills_every_view_and_drives_selection(qtbot, cnn_path, tmp_path):
    ctx, w = _workspace(qtbot, cnn_path)
    graph = ctx.graph
    run = _profile(qtbot, w, "cpu", runs=25)

    # The plots carry the measured data, not placeholders.
    assert sum(w.hist.counts) == 25 == run.stats.count
    xs, ys = w.latency.per_run.getData()
    k = 1000.0 if run.stats.p50_ms < 1.0 else 1.0  # sub-ms latencies are plotted in µs
    assert len(ys) == 25 and np.allclose(ys, np.asarray(run.latencies_ms) * k)
    assert w.hist.markers["p95"].value() == pytest.approx(run.stats.p95_ms * k)
    assert w.figures.cards["p50"].value.text() != "—"
    assert w.figures.cards["setup"].value.text() != "—"
    ranked = run.ranked()
    assert ranked, "ORT's profiler gave no per-node times"
    shown = len(w.slowest.node_ids)  # as many as fit the plot's height, at least 3
    assert 3 <= shown <= w.slowest.top_n
    assert w.slowest.node_ids == [r.node_id for r in ranked[:shown]]
    assert w.slowest.values == pytest.approx([r.time_us for r in ranked[:shown]])
    assert w.table.model.rowCount() == len(run.all_rows)
    assert w.optypes.labels and "Conv" in w.optypes.labels[0]

    # Clicking a bar selects that ONNX node everywhere (the first real node in the ranking).
    index = next(i for i, ins in enumerate(w.slowest.inserted) if not ins)
    expected = w.slowest.node_ids[index]
    with qtbot.waitSignal(ctx.node_selected, timeout=2000) as sel:
        _click_bar(qtbot, w, index)
    assert sel.args == [expected] and expected in graph.node_by_id
    current = w.table.view.currentIndex()
    assert w.table.model.rows[w.table.proxy.mapToSource(current).row()].node_id == expected
    assert w.slowest.selected == expected

    # A table row selects too; an inserted bar (no ONNX node) does not.
    other = next(r for r in run.layers if r.node_id != expected)
    with qtbot.waitSignal(ctx.node_selected, timeout=2000) as sel2:
        row = w.table.model.row_of(other.node_id)
        w.table.view.setCurrentIndex(w.table.proxy.mapFromSource(w.table.model.index(row, 0)))
    assert sel2.args == [other.node_id]

    # A suggestion that names a node selects it.
    card = next(c for c in w.suggestions.cards if c.node and c.node != other.node_id)
    with qtbot.waitSignal(ctx.node_selected, timeout=2000) as sel3:
        qtbot.mouseClick(card, Qt.MouseButton.LeftButton)
    assert sel3.args == [card.node] and card.node == card.suggestion.nodes[0]

    # Heat overlay: kernel time per node in ms, keyed by real node ids.
    with qtbot.waitSignal(ctx.overlay_changed, timeout=2000) as ov:
        w.overlay_btn.click()
    name, values, cmap, unit = ov.args
    assert (name, cmap, unit) == ("time", "inferno", "ms")
    assert set(values) <= set(graph.node_by_id) and values
    for r in run.layers:
        if r.time_us is not None:
            assert values[r.node_id] == pytest.approx(r.time_us / 1000.0)
    with qtbot.waitSignal(ctx.overlay_cleared, timeout=2000):
        w.overlay_btn.click()

    # Exports: the per-layer CSV and the run JSON hold the shown run.
    out = w.export("layers", tmp_path / "layers.csv")
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["node_id"] for r in rows] == [r.node_id for r in run.all_rows]
    conv = next(r for r in rows if r["node_id"] == "/block/conv/Conv")
    assert float(conv["macs"]) == graph.node_by_id["/block/conv/Conv"].macs
    lat = w.export("latencies", tmp_path / "lat.csv").read_text().splitlines()
    assert len(lat) == 1 + 25
    again = ProfileRun.load(w.export("json", tmp_path / "run.json"))
    assert again.latencies_ms == run.latencies_ms

    w.tabs.setCurrentIndex(0)
    _save_shot(qtbot, w, "profiling_cpu.png")


def test_history_and_comparison_of_two_runs(qtbot, cnn_path, tmp_path):
    from studio.core.project import Project

    project = Project.new(cnn_path)
    project.save(tmp_path / "demo.npustudio")
    ctx, w = _workspace(qtbot, cnn_path, project=project)
    first = _profile(qtbot, w, "cpu", runs=12)
    second = _profile(qtbot, w, "cpu", runs=18)

    # Both runs are in the project, readable from its runs folder, newest listed first.
    assert [ref.id for ref in project.runs] == [first.id, second.id]
    assert ProfileRun.from_json(project.load_run(first.id)).stats.count == 12
    assert w.history.list.count() == 2
    assert w.history.list.item(0).data(Qt.ItemDataRole.UserRole) == second.id

    # Pick the older run: the dashboard shows it.
    with qtbot.waitSignal(w.run_shown, timeout=5000) as shown:
        w.history.list.setCurrentRow(1)
    assert shown.args == [first.id]
    assert w.run.id == first.id and sum(w.hist.counts) == 12

    w.history.select_ids([first.id, second.id])
    assert w.history.compare_btn.isEnabled()
    qtbot.mouseClick(w.history.compare_btn, Qt.MouseButton.LeftButton)
    assert w.tabs.currentWidget() is w.compare
    comp = w.compare.comparison
    assert comp is not None and [r["id"] for r in comp.runs] == [first.id, second.id]
    assert comp.rows and w.compare.model.rowCount() == len(comp.rows)
    node_rows = [r for r in comp.rows if not r.inserted]
    assert node_rows and all(r.cells[0] is not None and r.cells[1] is not None for r in node_rows)
    ratio = node_rows[0].value_ratio[1]
    assert ratio == pytest.approx(node_rows[0].cells[1].value / node_rows[0].cells[0].value)
    counts = [int(np.sum(c.getData()[1])) for c in w.compare.hist.curves[:2]]
    assert counts == [12, 18]
    w.compare.baseline.setCurrentIndex(1)  # the newer run as the baseline
    assert w.compare.comparison.baseline == 1
    assert w.compare.comparison.runs[0]["mean_ratio_vs_baseline"] == pytest.approx(
        first.stats.mean_ms / second.stats.mean_ms
    )

    # A fresh workspace on the same project lists the saved runs.
    ctx2 = StudioContext()
    ctx2.project = project
    w2 = ProfilingWorkspace(ctx2)
    qtbot.addWidget(w2)
    assert w2.history.list.count() == 2
    out = w.export("compare", tmp_path / "compare.csv")
    assert len(out.read_text().splitlines()) == 1 + len(comp.rows)

    # The HTML report holds the shown run first and the compared one after it.
    html = w.export("html", tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    assert f"run {first.id}" in html and second.label in html
    # Export ▸ PDF report…: the same report printed by QtWebEngine, nothing left beside it.
    pdf = w.export("pdf", tmp_path / "pdf" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.count(b"/Type /Page") >= 2
    assert [p.name for p in (tmp_path / "pdf").iterdir()] == ["report.pdf"]
    _save_shot(qtbot, w, "profiling_compare.png")


def _edit_label(qtbot, w: ProfilingWorkspace, row: int, text: str, how: str) -> None:
    """Rename the history's ``row`` as a user would: F2, double-click or the context menu."""
    from PySide6.QtWidgets import QLineEdit

    lst = w.history.list
    item = lst.item(row)
    lst.setCurrentItem(item)
    lst.setFocus()
    rect = lst.visualItemRect(item)
    if how == "f2":
        qtbot.keyClick(lst, Qt.Key.Key_F2)
    elif how == "double-click":
        # A real double-click: press, release, then the double-click event on the same item.
        qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    else:
        lst.customContextMenuRequested.emit(rect.center())
        action = next(a for a in w.history.context_menu.actions() if a.text() == "Rename…")
        action.trigger()
        w.history.context_menu.close()
    qtbot.waitUntil(lambda: lst.findChild(QLineEdit) is not None, timeout=2000)
    editor = lst.findChild(QLineEdit)
    assert editor.text() == item.data(Qt.ItemDataRole.UserRole + 1)  # the label alone
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def test_rename_runs_in_the_history_undoably(qtbot, cnn_path, tmp_path):
    from studio.core.project import Project

    project = Project.new(cnn_path)
    saved = project.save(tmp_path / "demo.npustudio")
    ctx, w = _workspace(qtbot, cnn_path, project=project)
    run = _profile(qtbot, w, "cpu", runs=5)
    before = run.label
    project.dirty = False

    # In a project: Project.rename_run relabels it (dirty, saved with the project).
    _edit_label(qtbot, w, 0, "  baseline fp32 ", "f2")
    qtbot.waitUntil(lambda: project.runs[0].label == "baseline fp32", timeout=2000)
    assert project.dirty and w.history.list.item(0).text().startswith("baseline fp32\n")
    assert ctx.undo_stack.count() == 1 and "baseline fp32" in ctx.undo_stack.undoText()
    ctx.undo_stack.undo()
    assert project.runs[0].label == before and w.history.list.item(0).text().startswith(before)
    ctx.undo_stack.redo()
    project.save()
    assert Project.load(saved).runs[0].label == "baseline fp32"
    assert w.store.get(run.id).label == "baseline fp32"  # exports name it so too
    fresh = StudioContext()
    fresh.project = Project.load(saved)
    fresh_ws = ProfilingWorkspace(fresh)
    qtbot.addWidget(fresh_ws)
    assert fresh_ws.store.get(run.id).label == "baseline fp32"  # read back from the project

    # An empty label or the same one is no edit.
    _edit_label(qtbot, w, 0, "   ", "double-click")
    qtbot.wait(50)
    assert project.runs[0].label == "baseline fp32" and ctx.undo_stack.count() == 1

    # Without a project: the session's in-memory record is relabelled, by the context menu.
    ctx2, w2 = _workspace(qtbot, cnn_path)
    mem = _profile(qtbot, w2, "cpu", runs=5)
    mem_before = mem.label
    _edit_label(qtbot, w2, 0, "quick look", "menu")
    qtbot.waitUntil(lambda: w2.store.get(mem.id).label == "quick look", timeout=2000)
    assert w2.history.list.item(0).data(Qt.ItemDataRole.UserRole + 1) == "quick look"
    ctx2.undo_stack.undo()
    assert w2.store.get(mem.id).label == mem_before
    assert w2.history.list.item(0).data(Qt.ItemDataRole.UserRole + 1) == mem_before


def test_profile_through_the_main_windows_job_manager(qtbot, cnn_path):
    from studio.ui.jobs.manager import JobManager

    ctx, w = _workspace(qtbot, cnn_path)
    ctx.jobs = JobManager()
    try:
        run = _profile(qtbot, w, "cpu", runs=8)
        handle = ctx.jobs.jobs[-1]
        assert handle.state == "done" and handle.value["id"] == run.id
        assert run.label in handle.title and handle.lane == "profiling"
        assert sum(w.hist.counts) == 8
        # Cancel reaches the managed job too.
        w.controls.sustained.setChecked(True)
        w.controls.duration.setValue(60.0)
        with qtbot.waitSignal(w.live_shown, timeout=JOB_TIMEOUT_MS):
            w.controls.start_btn.click()
        assert "measuring" in w.latency.plotItem.titleLabel.text
        with qtbot.waitSignal(w.runner.finished, timeout=10_000, check_params_cb=_cancelled):
            w.controls.cancel_btn.click()
        qtbot.waitUntil(lambda: ctx.jobs.jobs[-1].state == "cancelled", timeout=10_000)
        assert ctx.jobs.jobs[-1].state == "cancelled" and w.run.id == run.id
        # A cancelled profile is no result: its partial curve gives way to the shown run's.
        assert sum(w.hist.counts) == 8 and len(w.latency.per_run.yData) == 8
    finally:
        ctx.jobs.shutdown()


def test_latency_plots_fill_while_the_profile_is_still_measuring(qtbot):
    from studio.ui.jobs.manager import JobManager

    # The shipped demo CNN (~0.2 ms a run on CPU): 20,000 runs (the most a record keeps for
    # its histogram) last a few seconds, so several live refreshes (at most every LIVE_MS) land
    # before the result. The small test CNN ran in well under a second on a fast host, and the
    # result could arrive before a second refresh.
    demo = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo_cnn.onnx"
    ctx, w = _workspace(qtbot, demo)
    ctx.jobs = JobManager()
    runs = 20_000
    try:
        w.controls.available["cpu"] = True
        assert w.controls.select_backend("cpu")
        w.controls.runs.setValue(runs)
        w.controls.warmup.setValue(1)
        handle_data: list[dict] = []
        # live latencies reach the plots a few times a second, over two turns: live_shown
        with qtbot.waitSignal(w.live_shown, timeout=JOB_TIMEOUT_MS):
            w.controls.start_btn.click()
            ctx.jobs.jobs[-1].data.connect(handle_data.append)
        handle = ctx.jobs.jobs[-1]
        # The JobManager's handle re-emitted the worker's data event; the job is still running.
        assert handle_data and handle.state == "running" and w.runner.busy
        first = len(w.latency.per_run.yData)
        assert first > 0 and sum(w.hist.counts) == first
        assert "measuring" in w.latency.plotItem.titleLabel.text
        assert w.live is not None and 0 < w.live.count < runs
        assert np.all(np.asarray(w.latency.per_run.yData) > 0)
        with qtbot.waitSignal(w.live_shown, timeout=JOB_TIMEOUT_MS):
            pass
        assert len(w.latency.per_run.yData) > first and handle.state == "running"
        _save_shot(qtbot, w, "profiling_live.png")
        with qtbot.waitSignal(w.run_shown, timeout=JOB_TIMEOUT_MS):
            pass
        # The record replaces the live points: every run, percentile markers shown.
        assert w.run is not None and w.run.stats.count == runs and w.live is None
        assert sum(w.hist.counts) == runs and "measuring" not in w.latency.plotItem.titleLabel.text
        assert w.hist.markers["p50"].isVisible()
    finally:
        ctx.jobs.shutdown()


def test_a_run_the_project_cannot_store_is_kept_and_the_user_told(qtbot, cnn_path, tmp_path):
    from studio.core.project import Project

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the runs folder's parent should be")
    project = Project.new(cnn_path)
    project.path = blocker / "demo.npustudio"  # its runs folder cannot be created
    ctx, w = _workspace(qtbot, cnn_path, project=project)
    errors: list[tuple[str, str]] = []
    ctx.error_raised.connect(lambda t, m: errors.append((t, m)))
    run = _profile(qtbot, w, "cpu", runs=5)
    assert errors and errors[0][0] == "Run not saved in the project"
    assert project.runs == [] and w.history.list.count() == 1
    assert w.history.list.item(0).data(Qt.ItemDataRole.UserRole) == run.id
    assert sum(w.hist.counts) == 5

    # Another project: the unsaved run belonged to the first one and leaves the list.
    ctx.project = Project.new(cnn_path)
    ctx.set_model(ModelGraph.load(cnn_path), str(cnn_path))
    assert w.history.list.count() == 0 and w.run is None


def test_a_record_write_that_fails_on_the_writer_thread_is_reported(
    qtbot, cnn_path, tmp_path, monkeypatch
):
    """The record is written off the UI thread; its failure still reaches the user."""
    import studio.core.project as project_module
    from studio.core.project import Project

    def disk_full(path, _data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(project_module, "atomic_write_json", disk_full)
    project = Project.new(cnn_path)
    project.path = tmp_path / "demo.npustudio"
    ctx, w = _workspace(qtbot, cnn_path, project=project)
    errors: list[tuple[str, str]] = []
    ctx.error_raised.connect(lambda t, m: errors.append((t, m)))
    run = _profile(qtbot, w, "cpu", runs=5)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert errors[0][0] == "Run not saved in the project" and "No space left" in errors[0][1]
    assert project.runs == [], "a run whose record was not written leaves the project"
    assert [w.history.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(1)] == [run.id]
    assert w.history.list.count() == 1 and w.run is not None and w.run.id == run.id


def test_the_plots_first_paint_is_spread_over_turns(qtbot, cnn_path):
    """Shown for the first time, the tab paints one plot per event-loop turn (issue 15)."""
    ctx = StudioContext()
    ctx.set_model(ModelGraph.load(cnn_path), str(cnn_path))
    w = ProfilingWorkspace(ctx)
    w._probed = True
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    plots = (w.latency, w.hist, w.slowest, w.optypes)
    w.show()
    assert not any(p.updatesEnabled() for p in plots), "nothing painted in the showing turn"
    with qtbot.waitSignal(w._first_paint.done, timeout=5000):
        pass
    assert all(p.updatesEnabled() for p in plots)
    w.hide()
    w.show()
    assert all(p.updatesEnabled() for p in plots), "only the first show is spread"


def test_gpu_is_shown_unavailable_with_the_probe_reason(qtbot, cnn_path):
    from studio.core.engine.registry import probe_backends

    _, w = _workspace(qtbot, cnn_path)
    statuses = {s.name: s for s in probe_backends()}
    w.controls.set_availability(list(statuses.values()))
    model = w.controls.backend.model()
    gpu_item = model.item(1)
    assert w.controls.backend.itemData(1) == "gpu"
    if not statuses["gpu"].available:
        assert not gpu_item.isEnabled()
        assert statuses["gpu"].reason and statuses["gpu"].reason in gpu_item.toolTip()
        assert not w.controls.select_backend("gpu")
    assert model.item(2).isEnabled()  # ORT CPU is always there


def test_a_run_forced_onto_an_absent_gpu_fails_and_shows_no_numbers(qtbot, cnn_path):
    """Even if the combo were bypassed, a GPU that is not there gives an error, never figures."""
    from studio.core.engine.registry import probe_backends

    if next(s for s in probe_backends() if s.name == "gpu").available:
        pytest.skip("this machine has a QNN GPU")
    ctx, w = _workspace(qtbot, cnn_path)
    errors: list[tuple[str, str]] = []
    ctx.error_raised.connect(lambda t, m: errors.append((t, m)))
    w.controls.available["gpu"] = True
    assert w.controls.select_backend("gpu")
    with qtbot.waitSignal(w.runner.error, timeout=JOB_TIMEOUT_MS):
        w.controls.start_btn.click()
    assert errors and "GPU" in errors[0][1]
    assert w.run is None and w.history.list.count() == 0
    assert all(c.value.text() == "—" for c in w.figures.cards.values())
    assert w.hist.counts == [] and w.slowest.values == []
    assert w.controls.start_btn.isEnabled()


def test_sustained_mode_plots_latency_over_time(qtbot, cnn_path):
    _, w = _workspace(qtbot, cnn_path)
    w.controls.select_backend("cpu")
    w.controls.sustained.setChecked(True)
    w.controls.duration.setValue(1.0)
    with qtbot.waitSignal(w.run_shown, timeout=JOB_TIMEOUT_MS):
        w.controls.start_btn.click()
    run = w.run
    assert run.options["duration_s"] == 1.0 and run.stats.wall_s >= 0.9
    assert len(run.timeline) >= 2
    t, mean = w.latency.tl_mean.getData()
    assert list(t) == [b["t_s"] for b in run.timeline]
    assert w.latency.tl_mean.isVisible() and not w.latency.per_run.isVisible()
    assert sum(w.hist.counts) == len(run.latencies_ms)


def test_selection_made_elsewhere_is_followed(qtbot, cnn_path):
    ctx, w = _workspace(qtbot, cnn_path)
    run = _profile(qtbot, w, "cpu", runs=5)
    target = run.ranked()[1] if not run.ranked()[1].inserted else run.layers[0]
    ctx.select_node(target.node_id)  # as the Graph workspace does on a click
    current = w.table.proxy.mapToSource(w.table.view.currentIndex()).row()
    assert w.table.model.rows[current].node_id == target.node_id
    assert w.slowest.selected == target.node_id


def test_without_a_model_nothing_can_start(qtbot):
    ctx = StudioContext()
    w = ProfilingWorkspace(ctx)
    qtbot.addWidget(w)
    assert not w.controls.start_btn.isEnabled()
    assert "model" in w.controls.start_btn.toolTip().lower()
    assert w.figures.cards["p50"].value.text() == "—"
    with pytest.raises(StudioError):
        w.export("layers", "/nonexistent/never_written.csv")


def test_cancel_stops_a_sustained_run(qtbot, cnn_path):
    _, w = _workspace(qtbot, cnn_path)
    w.controls.select_backend("cpu")
    w.controls.sustained.setChecked(True)
    w.controls.duration.setValue(60.0)
    with qtbot.waitSignal(w.runner.progress, timeout=JOB_TIMEOUT_MS):
        w.controls.start_btn.click()
    with qtbot.waitSignal(w.runner.finished, timeout=10_000, check_params_cb=_cancelled):
        w.controls.cancel_btn.click()
    assert w.run is None and w.controls.start_btn.isEnabled()
    assert w.controls.status.text() == "cancelled"


def test_presentation_mode_keeps_key_figures_only(qtbot, cnn_path):
    _, w = _workspace(qtbot, cnn_path)
    _profile(qtbot, w, "cpu", runs=10)
    w.present_btn.click()
    assert not w.table.isVisible() and not w.side.isVisible()
    assert w.hist.isVisible() and w.figures.isVisible()
    _save_shot(qtbot, w, "profiling_presentation.png")
    w.present_btn.click()
    assert w.table.isVisible() and w.side.isVisible()


def _report_images(text: str) -> list[str]:
    """The ``src`` of every <img> in the report (parsed, not grepped)."""
    from html.parser import HTMLParser

    class Images(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.srcs: list[str] = []

        def handle_starttag(self, tag, attrs):
            assert tag != "script"  # the report stays one self-contained, inert file
            if tag == "img":
                self.srcs.append(dict(attrs).get("src") or "")

    parser = Images()
    parser.feed(text)
    return parser.srcs


def test_html_report_embeds_the_graph_views_heat_picture(qtbot, cnn_path, tmp_path, monkeypatch):
    import base64

    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QFileDialog

    from studio.ui.graph import colormaps
    from studio.ui.graph.workspace import GraphWorkspace

    ctx, w = _workspace(qtbot, cnn_path)
    run = _profile(qtbot, w, "cpu", runs=5, warmup=1)
    # Without a graph view (headless-like) the report draws its own SVG of the graph.
    plain = w.export("html", tmp_path / "plain.html").read_text(encoding="utf-8")
    assert _report_images(plain) == [] and plain.count("<svg") == 5

    graph_ws = GraphWorkspace(ctx)
    qtbot.addWidget(graph_ws)
    graph_ws.resize(1200, 800)
    with qtbot.waitSignal(graph_ws.layout_ready, timeout=20_000):
        graph_ws.show()
    assert not w.overlay_btn.isChecked()
    out = tmp_path / "report.html"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    with qtbot.waitSignal(ctx.status_message, timeout=10_000):
        w._ask_export("html")  # Export ▸ HTML report…
    # The run's heat overlay went onto the graph (as "Show on graph" does) for the picture.
    assert w.overlay_btn.isChecked() and graph_ws.active_overlay == "time"
    text = out.read_text(encoding="utf-8")
    srcs = _report_images(text)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    data = base64.b64decode(srcs[0].split(",", 1)[1], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = QImage.fromData(data, "PNG").convertToFormat(QImage.Format.Format_RGB32)
    assert (image.width(), image.height()) == (1080, 1000)  # sized for the report's column
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(1000, image.bytesPerLine())
    rgb = rows[:, : 1080 * 4].reshape(1000, 1080, 4)[..., 2::-1].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 50  # a picture, not a blank
    top = colormaps.lut("inferno")[-1].astype(int)  # the hottest node's colour is in it
    assert (np.abs(rgb.astype(int) - top).max(axis=1) <= 10).any()
    assert text.count("<svg") == 4  # the drawn graph gave way to the picture
    assert "kernel time (ms)" in text and "graph view of small_cnn.onnx" in text
    assert run.label in text
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "report_graph.png").write_bytes(data)
    (SHOTS / "report_with_graph.html").write_text(text, encoding="utf-8")

    # A run of another model than the one in the graph view is not pictured with a wrong graph.
    ctx.model_path = str(tmp_path / "other.onnx")
    other = w.export("html", tmp_path / "other.html").read_text(encoding="utf-8")
    assert _report_images(other) == [] and other.count("<svg") == 5


def _qdq_model(tmp_path: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    float_path = builders.save(builders.small_cnn(), tmp_path / "small_cnn.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter(
                [{"input": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(4)]
            )

        def get_next(self):
            return next(self.items, None)

    qdq_path = tmp_path / "small_cnn_qdq.onnx"
    quantize(str(float_path), str(qdq_path), get_qnn_qdq_config(str(float_path), Reader()))
    return qdq_path


@pytest.mark.htp
def test_htp_profile_of_the_qdq_model_against_float_on_cpu(qtbot, tmp_path):
    qdq = _qdq_model(tmp_path)
    # Opening a quantized model proposes HTP.
    _, w0 = _workspace(qtbot, qdq)
    assert w0.controls.backend.currentData() == "htp"

    # The float model is open; its CPU run is the baseline.
    ctx, w = _workspace(qtbot, tmp_path / "small_cnn.onnx")
    cpu_run = _profile(qtbot, w, "cpu", runs=10)
    # a host CPU run leads with the phone CPU's figure, labelled as assumed, not the NPU's
    assert "CPU, assumed" in w.figures.cards["device"].sub.text()
    assert w.figures.cards["device"].value.text() != "—"
    assert cpu_run.device_lead()[0] == pytest.approx(cpu_run.device_estimate["cpu_total_ms"])
    # The QDQ file (as the Quantization workspace writes it) is chosen as another model.
    w.controls.add_model(str(qdq))
    assert w.controls.model_path() == str(qdq.resolve())
    run = _profile(qtbot, w, "htp", runs=15)
    assert Path(run.model_path) == qdq.resolve() and run.backend == "htp"
    assert "QNNExecutionProvider" in run.providers
    assert sum(w.hist.counts) == 15
    cycles = [r for r in run.layers if r.cycles is not None]
    assert cycles, "the QNN profiler gave no per-op cycles"
    assert w.slowest.values[0] == pytest.approx(max(r.cycles for r in run.all_rows if r.cycles))
    assert "simulator" in w.figures.note.text()
    # a simulated HTP run leads with the target device's estimate; its own p50 is emulated
    assert run.device_estimate["device"] == "Samsung Galaxy S24"
    assert w.figures.cards["device"].value.text() != "—"
    assert "Samsung Galaxy S24" in w.figures.cards["device"].sub.text()
    assert w.figures.cards["p50"].sub.text().startswith("emulated")

    # Cycles go on the graph, keyed by the float model's node ids (QDQ keeps the names).
    with qtbot.waitSignal(ctx.overlay_changed, timeout=2000) as ov:
        w.overlay_btn.click()
    name, values, cmap, unit = ov.args
    assert (name, unit) == ("cycles", "cycles")
    assert values == {r.node_id: pytest.approx(r.cycles) for r in cycles}
    assert "/block/conv/Conv" in values and "/block/conv/Conv" in ctx.graph.node_by_id
    # The QDQ file is read in the background; its structure then adds structural suggestions.
    qtbot.waitUntil(lambda: w.graphs.known(str(qdq)), timeout=10_000)

    def kinds() -> set[str]:
        return {c.suggestion.kind for c in w.suggestions.cards}

    # the cards are re-dealt over event-loop turns (three a turn) once the structure is known
    qtbot.waitUntil(lambda: "depthwise" in kinds(), timeout=5_000)
    assert "hotspot" in kinds()
    _save_shot(qtbot, w, "profiling.png")

    # Float on CPU against QDQ on HTP: shares compare, values only where units agree.
    w.compare_ids([cpu_run.id, run.id])
    comp = w.compare.comparison
    conv = next(r for r in comp.rows if r.node_id == "/block/conv/Conv")
    assert conv.cells[0].unit == "time_us" and conv.cells[1].unit == "cycles"
    assert conv.value_ratio[1] is None
    assert conv.share_delta_pp[1] == pytest.approx(
        (conv.cells[1].share - conv.cells[0].share) * 100
    )
    _save_shot(qtbot, w, "profiling_compare_htp.png")


def test_the_layer_table_sorts_its_rows_by_their_numbers_and_keeps_the_current_row(qtbot, cnn_path):
    """Sorting happens on the rows themselves (one list sort, not Qt's per-comparison data()
    calls, which stalled 700 ms on a 20k-node run); the current row follows its node."""
    from studio.ui.profiling.layer_table import _column_index, _columns

    _ctx, w = _workspace(qtbot, cnn_path)
    _profile(qtbot, w, "cpu", runs=5)
    table = w.table

    def shown() -> list:
        return [
            table.model.rows[table.proxy.mapToSource(table.proxy.index(i, 0)).row()]
            for i in range(table.proxy.rowCount())
        ]

    time_key = _columns()[_column_index("time_us")].sort_key
    keys = [time_key(r) for r in shown()]
    assert len(keys) > 5 and keys == sorted(keys, reverse=True) and keys[0] > keys[-1]
    chosen = shown()[3]
    table.view.setCurrentIndex(table.proxy.index(3, 0))
    node_col = _column_index("node_id")
    table.view.sortByColumn(node_col, Qt.SortOrder.AscendingOrder)
    node_key = _columns()[node_col].sort_key
    names = [node_key(r) for r in shown()]
    assert names == sorted(names) and names != [node_key(r) for r in sorted(shown(), key=time_key)]
    current = table.proxy.mapToSource(table.view.currentIndex()).row()
    assert table.model.rows[current] is chosen, "the current row followed its node"
    table.filter.setText("conv")
    filtered = [node_key(r) for r in shown()]
    assert filtered and all(
        "conv" in r.node_id.lower() or "conv" in r.op_type.lower() for r in shown()
    )
    assert filtered == sorted(filtered)
