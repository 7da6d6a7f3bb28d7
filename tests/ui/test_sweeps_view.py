"""The Sweeps tab: a real two-point sweep on a local Ray from the Quantization workspace.

Checks the progress table, the Pareto plot (device estimates only), that a point becomes the
plan (undoably), that its profile run lands in the project's history, and the report section.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studio.core.model.graph import ModelGraph
from studio.core.project import Project
from studio.core.quantize.plan import QuantPlan
from studio.ui.jobs.manager import JobManager
from studio.ui.quant.workspace import QuantizationWorkspace
from studio.ui.shell.context import StudioContext

DEMO = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo_cnn.onnx"
SHOTS = Path(os.environ.get("NPU_STUDIO_SHOTS", "/tmp/shots"))


@pytest.fixture
def ws(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STUDIO_SWEEP_CACHE", str(tmp_path / "node-cache"))
    ctx = StudioContext()
    ctx.jobs = JobManager()
    ctx.project = Project.new(DEMO)
    ctx.set_model(ModelGraph.load(DEMO), str(DEMO))
    w = QuantizationWorkspace(ctx)
    qtbot.addWidget(w)
    w.resize(1500, 900)
    w.show()
    qtbot.waitUntil(lambda: not w.session.preparing, timeout=20000)
    yield w
    w.sweeps.cancel()
    ctx.jobs.wait(30)


@pytest.mark.htp
@pytest.mark.slow
def test_sweep_tab_runs_streams_and_picks_a_point(qtbot, ws):
    view = ws.sweeps
    ws.tabs.setCurrentWidget(view)
    # the grid: A8/A16 only (W8, per-channel on, minmax), built on the plan's settings
    for key, text, on in (("per_channel", "off", False),):
        view.findChild(type(view.checks[key][0][0]), f"sweep_{key}_{text}").setChecked(on)
    spec = view.spec()
    assert [(p["act_bw"], p["per_channel"]) for p in spec.expand()] == [(8, True), (16, True)]
    seen: list[str] = []
    view.model.rowsInserted.connect(lambda *a: seen.append("inserted"))
    view.run()
    assert not view.run_button.isEnabled() and view.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: view.handle.is_final, timeout=400_000)
    assert view.handle.state == "done", view.handle.error_message
    rows = view.model.rows
    assert [r["status"] for r in rows] == ["done", "done"]
    assert all(r["estimated_ms"] > 0 and r["device"] for r in rows)
    assert view.doc["engine"] == "ray" and view.doc["cluster"]["nodes"] == 1
    # the table says where each point ran and what its latency figure is
    col = view.model.columns.index("ran on")
    assert "pid" in view.model.index(0, col).data()
    assert "(estimated)" in view.model.index(0, view.model.columns.index("device ms")).data()
    # the plot shows both points; at least one is on the front
    xy = view.plot._xy
    assert set(xy) == {r["key"] for r in rows}
    assert any(r["pareto"] for r in rows)
    # profile records went into the project's history for the Profiling workspace
    assert {ref.id for ref in ws.ctx.project.runs} == {f"sweep-{r['key']}" for r in rows}
    record = ws.ctx.project.load_run(f"sweep-{rows[1]['key']}")
    assert record["backend"] == "htp"

    SHOTS.mkdir(parents=True, exist_ok=True)
    ws.grab().save(str(SHOTS / "sweeps_tab.png"))

    # choosing the A16 point makes it the plan; undo brings the A8 default back
    a16 = next(r for r in rows if r["params"]["act_bw"] == 16)
    before = ws.plan().activation_bitwidth
    assert view.apply_point(a16["key"]) is True
    assert ws.plan().activation_bitwidth == 16
    assert QuantPlan.from_json(a16["plan"]).activation_bitwidth == 16
    ws.ctx.undo_stack.undo()
    assert ws.plan().activation_bitwidth == before

    section = ws.ctx.sweep_report_section()
    assert "data:image/png;base64," in section and a16["label"] in section
