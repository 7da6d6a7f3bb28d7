"""The Auto-mix dialog's speed options (latency budget on the target device's estimate,
per-layer MSE scales) and the Techniques tab, on the demo CNN with real builds and sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studio.core.devices.catalogue import current_device
from studio.core.devices.estimate import estimate_model
from studio.core.quantize import build_qdq

DEMO = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo_cnn.onnx"
SHOTS = Path(os.environ.get("NPU_STUDIO_SHOTS", "/tmp/shots"))


@pytest.fixture
def ws(calibrated_quant_workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    return calibrated_quant_workspace(DEMO)


def test_latency_budget_from_the_dialog_and_the_techniques_tab(qtbot, ws, tmp_path):
    device = current_device()
    start = build_qdq(ws.session.stats, ws.session.plan, tmp_path / "start.onnx")
    start_ms = estimate_model(start.qdq_path, device).total_ms
    dialog = ws.automix_dialog()
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    assert device.name in dialog.speed_note.text() and "estimate" in dialog.speed_note.text()
    assert dialog.options() == {"latency_budget_ms": None, "techniques": ("seqmse",)}
    assert not dialog.budget.isEnabled()
    dialog.use_budget.setChecked(True)
    dialog.budget.setValue(round(start_ms, 3) + 0.001)  # no 16-bit tensor fits
    dialog.techniques.setChecked(False)
    dialog.target.setValue(150.0)
    dialog.steps.setValue(4)
    budget = dialog.budget.value()
    assert dialog.options() == {"latency_budget_ms": budget, "techniques": ()}
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SHOTS / "quant_automix_dialog.png"))
    with qtbot.waitSignal(ws.runner.result, timeout=120000):
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    _start, result = ws.mix_result
    assert result.latency_budget_ms == budget and result.stopped_by_budget
    assert all(p.estimated_ms <= budget for p in result.curve if p.kept)
    assert result.technique_effects == []  # the box was off: precision moves only
    assert ws.mix_curve.budget.isVisible() and ws.mix_curve.budget.value() == budget
    assert "budget" in ws.mix_curve.caption.text()
    # the same window, per-layer MSE scales on: the Techniques tab shows each layer
    _techniques_tab_shows_each_layer_before_and_after(qtbot, ws)


def _techniques_tab_shows_each_layer_before_and_after(qtbot, ws):
    with qtbot.waitSignal(ws.runner.result, timeout=120000):
        ws.auto_mix(150.0, max_steps=2, techniques=("seqmse",))
    _start, result = ws.mix_result
    view = ws.technique_view
    effects = {e["weight"]: e for e in result.technique_effects}
    assert effects and len(view.rows) == len(effects) == view.table.rowCount()
    for i, row in enumerate(view.rows):
        e = effects[row["name"]]
        assert view.table.item(i, 2).text() == f"{e['before_db']:.1f}"
        assert view.table.item(i, 3).text() == f"{e['after_db']:.1f}"
        assert (view.table.item(i, 5).text() == "chosen") == (row["name"] in result.techniques)
    gains = [float(view.table.item(i, 4).text()) for i in range(view.table.rowCount())]
    assert gains == sorted(gains, reverse=True)  # largest gain first
    ws.tabs.setCurrentWidget(view)
    SHOTS.mkdir(parents=True, exist_ok=True)
    ws.grab().save(str(SHOTS / "quant_techniques_tab.png"))
    ws.tabs.setCurrentWidget(ws.mix_curve)
    ws.grab().save(str(SHOTS / "quant_automix_pareto.png"))


def test_mix_curve_plots_sqnr_against_estimated_ms_with_pareto_points(qtbot):
    from studio.ui.quant.charts import MixCurve

    chart = MixCurve()
    qtbot.addWidget(chart)
    chart.show()
    chart.set_curve(
        [0, 1, 1, 2], [30.0, 29.0, 33.0, 34.0], 35.0, "c",
        estimated_ms=[0.20, 0.21, 0.21, 0.25], pareto=[0, 2, 3], estimated_for="Phone X",
        budget_ms=0.3, kept=[True, False, True, True],
    )  # fmt: skip
    x, y = chart.curve.getData()
    assert list(x) == [0.20, 0.21, 0.21, 0.25] and list(y) == [30.0, 29.0, 33.0, 34.0]
    px, py = chart.pareto_item.getData()
    assert list(px) == [0.20, 0.21, 0.25] and list(py) == [30.0, 33.0, 34.0]
    assert "estimated ms on Phone X" in chart.plot.plotItem.getAxis("bottom").labelText
    assert chart.budget.isVisible() and chart.budget.value() == 0.3
    chart.x_axis.setCurrentIndex(chart.x_axis.findData("count"))
    assert list(chart.curve.getData()[0]) == [0, 1, 1, 2]
    assert not chart.budget.isVisible() and len(chart.pareto_item.getData()[0]) == 0
    # a curve without estimates keeps the tensor count axis, and the choice is disabled
    chart.x_axis.setCurrentIndex(chart.x_axis.findData("ms"))
    chart.set_curve([0, 2], [30.0, 31.0], 35.0, estimated_ms=[None, None])
    assert list(chart.curve.getData()[0]) == [0, 2] and not chart.x_axis.isEnabled()
