"""Backends workspace: real probe and assignment in the background, pins undoable, graph coloured."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.model.graph import ModelGraph
from studio.core.project import Project
from studio.ui.backends.table import COL_BACKEND, COL_GPU, COL_HTP, COL_PIN, COL_REASON
from studio.ui.backends.workspace import BackendsWorkspace
from studio.ui.shell.context import StudioContext
from tests import builders

pytestmark = pytest.mark.htp


@pytest.fixture
def setup(qtbot, tmp_path, tmp_path_factory, monkeypatch):
    # One probe cache for the module: the model is the same, so only the first test compiles.
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ui-cache"))
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))  # unsaved project's runs
    path = builders.save(builders.qdq_conv_erf(), tmp_path / "qdq.onnx")
    ctx = StudioContext()
    ctx.project = Project.new(path)
    badges: list[tuple[str, dict]] = []
    overlays: list[tuple[str, dict]] = []
    ctx.badges_changed.connect(lambda name, b: badges.append((name, b)))
    ctx.overlay_changed.connect(lambda name, v, cmap, unit: overlays.append((name, v)))
    w = BackendsWorkspace(ctx)
    qtbot.addWidget(w)
    w.resize(1400, 700)
    ctx.set_model(ModelGraph.load(path), str(path))
    return ctx, w, badges, overlays


def _cell(w, node_id, col):
    row = w.model.row_of(node_id)
    return w.model.data(w.model.index(row, col))


def _tip(w, node_id, col):
    from PySide6.QtCore import Qt

    row = w.model.row_of(node_id)
    return w.model.data(w.model.index(row, col), Qt.ItemDataRole.ToolTipRole)


def test_probe_then_assign_colours_the_graph(qtbot, setup):
    ctx, w, badges, overlays = setup
    w.probe_button.click()
    qtbot.waitUntil(lambda: w.report is not None, timeout=60000)
    assert _cell(w, "/tail/Erf", COL_HTP) == "rejected"
    assert "Erf" in _tip(w, "/tail/Erf", COL_HTP)
    assert _cell(w, "/conv/Conv", COL_HTP) == "supported"
    assert "GPU</b> unavailable: " in w.backends_label.text()
    assert _cell(w, "/conv/Conv", COL_GPU) == "unavailable"
    with qtbot.waitSignal(w.plan_shown, timeout=60000):  # shown over several turns
        w.assign_button.click()
    assert w.plan is not None
    assert _cell(w, "/tail/Erf", COL_BACKEND) == "CPU"
    assert _cell(w, "/conv/Conv", COL_BACKEND) == "HTP"
    assert "rejects it" in _cell(w, "/tail/Erf", COL_REASON)
    name, last = badges[-1]
    assert name == "backend" and last["/conv/Conv"] == "HTP" and last["/tail/Erf"] == "CPU"
    assert overlays[-1][0].startswith("Backend") and overlays[-1][1]["/tail/Erf"] == 2.0
    assert "segment(s)" in w.summary.toPlainText()
    # Selecting a row selects the node everywhere.
    w._select_row("/conv/Conv")
    assert ctx.selected_node == "/conv/Conv"
    assert "Runs on HTP" in w.details.toPlainText()
    # Run the plan: every segment on its backend, timed.
    assert w.run_button.isEnabled()
    w.run_button.click()
    qtbot.waitUntil(lambda: w.last_run is not None, timeout=60000)
    timings = w.last_run["timings"]
    assert [t["backend"] for t in timings] == [s.backend for s in _segments(w)]
    assert "Measured run" in w.summary.toPlainText()
    Path("/tmp/shots").mkdir(parents=True, exist_ok=True)
    w.grab().save("/tmp/shots/backends.png")


def _segments(w):
    from studio.core.assignment.partition import split_segments

    return split_segments(w.graph, w.plan.assignment)


def test_export_plan_reads_back(qtbot, setup, tmp_path):
    from studio.core.assignment.scoring import Plan
    from studio.core.atomic import read_json_strict

    _, w, _, _ = setup
    assert not w.export_button.isEnabled()
    with qtbot.waitSignal(w.plan_shown, timeout=60000):  # shown over several turns
        w.assign_button.click()
    assert w.plan is not None
    w.export_plan(str(tmp_path / "plan.json"))
    back = Plan.from_json(read_json_strict(tmp_path / "plan.json"), graph=w.graph)
    assert back.assignment == w.plan.assignment


def test_pins_are_undoable_and_saved_in_the_project(qtbot, setup):
    ctx, w, _, _ = setup
    w.pin_nodes(["/conv/Relu"], "cpu")
    assert ctx.project.constraints.pins == {"/conv/Relu": "cpu"}
    assert _cell(w, "/conv/Relu", COL_PIN) == "CPU" and ctx.undo_stack.count() == 1
    with qtbot.waitSignal(w.plan_shown, timeout=60000):  # shown over several turns
        w.assign_button.click()
    assert w.plan is not None
    assert w.plan.assignment["/conv/Relu"] == "cpu" and w.plan.decision("/conv/Relu").pinned
    ctx.undo_stack.undo()
    assert ctx.project.constraints.pins == {} and _cell(w, "/conv/Relu", COL_PIN) == ""
    ctx.undo_stack.redo()
    assert ctx.project.constraints.pins == {"/conv/Relu": "cpu"}


def test_constraint_controls_write_the_project(qtbot, setup):
    ctx, w, _, _ = setup
    w.power.setChecked(True)
    assert ctx.project.constraints.power_critical
    w.performance.setChecked(True)  # exclusive with power-critical
    assert not w.power.isChecked() and ctx.project.constraints.performance_critical
    w.budget.setValue(2.5)
    assert ctx.project.constraints.latency_budget_ms == 2.5
    w.budget.setValue(0)
    assert ctx.project.constraints.latency_budget_ms is None


def test_pin_to_unavailable_backend_fails_visibly(qtbot, setup):
    ctx, w, _, _ = setup
    errors: list[tuple[str, str]] = []
    ctx.error_raised.connect(lambda t, m: errors.append((t, m)))
    w.pin_nodes(["/conv/Conv"], "gpu")
    w.assign_button.click()
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert "gpu" in errors[0][1] and "not available" in errors[0][1]
    assert "failed" in w.status.text() and w.plan is None


def test_assign_never_takes_a_host_profile_for_a_device_measurement(qtbot, setup):
    """A profile run saved in the project, taken on this x86 host, describes no phone: the plan
    keeps the device estimate (and assumed CPU rates) and never calls a cost measured."""
    from studio.core.jobs.client import run_in_worker
    from studio.core.jobs.protocol import job_kind
    from studio.core.profiling.job import profile_model

    ctx, w, _, _ = setup
    record = run_in_worker(
        job_kind(profile_model),
        {"model": ctx.model_path, "backend": "cpu", "runs": 3, "warmup": 1, "layer_runs": 2},
        timeout_s=120,
    )
    ctx.project.add_run("cpu-1", "CPU profile", record, backend="cpu")
    with qtbot.waitSignal(w.plan_shown, timeout=60000):  # shown over several turns
        w.assign_button.click()
    assert w.plan is not None
    assert "measured" not in w.plan.summary["cost_sources"]
    assert w.plan.decision("/conv/Conv").scores["cpu"].cost_source != "measured"
    assert w.plan.decision("/conv/Conv").scores["htp"].cost_source == "estimated"
    assert "(measured)" not in w.summary.toPlainText()


def test_jobs_go_through_the_studio_job_manager(qtbot, setup):
    """With the main window's JobManager the probe is a tracked job (Jobs dock, cancel)."""
    from studio.ui.jobs.manager import JobManager

    ctx, w, _, _ = setup
    ctx.jobs = JobManager()
    w.probe_button.click()
    qtbot.waitUntil(lambda: w.report is not None, timeout=60000)
    (job,) = ctx.jobs.jobs
    assert job.title == "Probe op support" and job.lane == "backends"
    qtbot.waitUntil(lambda: job.is_final, timeout=10000)
    ctx.jobs.shutdown()


def test_assumptions_dialog_edits_the_project_and_moves_the_plan(
    qtbot, setup, tmp_path, monkeypatch
):
    """The assumed constants are visible and editable, saved in the project, used by Assign."""
    from studio.ui.backends.assumptions import AssumptionsDialog

    ctx, w, _, _ = setup
    with qtbot.waitSignal(w.plan_shown, timeout=60000):  # shown over several turns
        w.assign_button.click()
    assert w.plan is not None
    assert w.plan.assignment["/conv/Conv"] == "htp" and w.plan.summary["boundaries"] >= 1
    assert "all at their defaults" in w.summary.toPlainText()

    dialog = AssumptionsDialog(w.assumptions(), w)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert dialog.fields["boundary_sync_ms"].text() == "0.05" and dialog.overrides() == {}
    dialog.fields["boundary_sync_ms"].setText("-1")
    assert not ok.isEnabled()  # a negative hand-over cost is refused, not saved
    dialog.fields["boundary_sync_ms"].setText("2.5")
    assert ok.isEnabled() and dialog.overrides() == {"boundary_sync_ms": 2.5}
    dialog.grab().save(str(tmp_path / "assumptions.png"))

    # Through the button: the dialog (edited as above) is accepted, the project stores the change.
    def accept(self):
        self.fields["boundary_sync_ms"].setText("2.5")
        return True

    monkeypatch.setattr(AssumptionsDialog, "exec", accept)
    w.assumptions_button.click()
    assert ctx.project.constraints.assumptions == {"boundary_sync_ms": 2.5}
    assert w.assumptions_button.text() == "Assumptions… (1 changed)"
    w.plan = None
    with qtbot.waitSignal(w.plan_shown, timeout=60000):  # shown over several turns
        w.assign_button.click()
    assert w.plan is not None
    # Two hand-overs at 2.5 ms cost more than the whole model on the CPU: one segment now.
    assert w.plan.assignment["/conv/Conv"] == "cpu" and w.plan.summary["boundaries"] == 0
    assert w.plan.summary["assumptions"]["values"]["boundary_sync_ms"] == 2.5
    assert "changed: boundary_sync_ms = 2.5" in w.summary.toPlainText()
    w.grab().save(str(tmp_path / "backends.png"))
    # Saved with the project and read back.
    saved = ctx.project.save(tmp_path / "p.npustudio")
    assert Project.load(saved).constraints.assumptions == {"boundary_sync_ms": 2.5}
