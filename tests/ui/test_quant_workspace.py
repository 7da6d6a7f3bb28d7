"""Quantization workspace on a real model: real calibration, real edits through the table's own
editing path, the shared undo stack, the histogram region, selection sync and encodings import."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit

from studio.core.encodings import Encoding, EncodingSet, load_encodings, save_encodings
from studio.core.model.graph import ModelGraph
from studio.core.quantize import QuantPlan
from studio.ui.quant.table import COL, TENSOR_ROLE
from studio.ui.quant.workspace import QuantizationWorkspace
from studio.ui.shell.context import StudioContext

DEMO = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo_cnn.onnx"
ADD = "/res/Add_output_0"  # an activation of the demo model (Add before a Relu)
SHOTS = Path(os.environ.get("NPU_STUDIO_SHOTS", "/tmp/shots"))


@pytest.fixture
def ctx(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE", str(tmp_path / "cache"))
    context = StudioContext()
    context.set_model(ModelGraph.load(DEMO), str(DEMO))
    return context


@pytest.fixture
def ws(qtbot, ctx):
    w = QuantizationWorkspace(ctx)
    qtbot.addWidget(w)
    w.resize(1500, 850)
    w.show()
    # rows come from the prepared (BatchNorm-folded) model, folded off the UI thread
    qtbot.waitUntil(lambda: not w.session.preparing, timeout=20000)
    yield w
    w.runner.cancel()
    w.runner.wait(10000)


def calibrate(qtbot, w, data="random:4"):
    with qtbot.waitSignal(w.runner.result, timeout=30000):
        w.calibrate(data)
    assert w.session.stats is not None


def index_of(w, name, key):
    row = w.editor.model.row_of(name)
    assert row is not None, name
    return w.editor.proxy.mapFromSource(w.editor.model.index(row, COL[key]))


def cell(w, name, key, role=Qt.ItemDataRole.DisplayRole):
    return w.editor.proxy.data(index_of(w, name, key), role)


def first_weight(w):
    return next(r.name for r in w.session.rows if r.kind == "param" and r.op_type == "Conv")


def test_opens_with_model_rows_then_calibrates(qtbot, ws):
    # before calibration: the model's quantisable tensors, no encodings yet
    assert len(ws.session.rows) > 20
    assert cell(ws, ADD, "bits") == "-"
    calibrate(qtbot, ws)
    stats = ws.session.stats
    enc = ws.session.encoding(ADD)
    assert enc is not None and enc.bitwidth == 8
    # the table shows the core's numbers for this tensor
    assert cell(ws, ADD, "scale") == f"{enc.scale[0]:.4g}"
    assert cell(ws, ADD, "offset") == str(enc.offset[0])
    assert stats.num_samples == 4
    assert "random" in ws.banner.text() and ws.banner.isVisible()
    weight = first_weight(ws)
    wenc = ws.session.encoding(weight)
    assert wenc.per_channel and wenc.symmetric
    assert cell(ws, weight, "per_channel", Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked


def test_bitwidth_edit_undo_redo(qtbot, ws, ctx):
    calibrate(qtbot, ws)
    before = ws.session.encoding(ADD)
    index = index_of(ws, ADD, "bits")
    assert ws.editor.proxy.flags(index) & Qt.ItemFlag.ItemIsEditable
    assert ws.editor.proxy.setData(index, "16", Qt.ItemDataRole.EditRole)
    after = ws.session.encoding(ADD)
    assert after.bitwidth == 16 and cell(ws, ADD, "bits") == "16"
    # a finer grid over the same folded range: the Relu after the Add still gives [0, max]
    lo, hi = ws.session.observed_range(ADD)
    assert lo < 0 and after.min[0] == 0.0
    assert after.scale[0] == pytest.approx(hi / 65535, rel=1e-3)
    assert after.scale[0] < before.scale[0] / 100
    assert ctx.undo_stack.count() == 1
    ctx.undo_stack.undo()
    assert ws.session.encoding(ADD).bitwidth == 8
    assert ws.session.encoding(ADD).same_as(before)
    assert cell(ws, ADD, "bits") == "8"
    ctx.undo_stack.redo()
    assert ws.session.encoding(ADD).bitwidth == 16
    # float fallback through the same cell
    assert ws.editor.proxy.setData(index, "float16", Qt.ItemDataRole.EditRole)
    assert ws.session.encoding(ADD).is_float
    assert cell(ws, ADD, "bits") == "float16"
    # 4-bit activations are refused with the reason shown
    assert not ws.editor.proxy.setData(index, "4", Qt.ItemDataRole.EditRole)
    assert "4-bit activations" in ws.message.text()
    assert ws.session.encoding(ADD).is_float
    # the checkbox path (what a click on the Sym cell does) on a weight
    weight = first_weight(ws)
    sym = index_of(ws, weight, "symmetric")
    assert ws.editor.proxy.flags(sym) & Qt.ItemFlag.ItemIsUserCheckable
    unchecked = Qt.CheckState.Unchecked.value
    assert ws.editor.proxy.setData(sym, unchecked, Qt.ItemDataRole.CheckStateRole)
    assert not ws.session.encoding(weight).symmetric
    assert cell(ws, weight, "symmetric", Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    ctx.undo_stack.undo()
    assert ws.session.encoding(weight).symmetric
    # the bit-width combo editor, as a user picks "16" in it
    relu = "/res/relu1/Relu_output_0"
    ws.editor.table.edit(index_of(ws, relu, "bits"))
    combo = ws.editor.table.findChild(QComboBox, "bitwidthEditor")
    assert combo is not None and combo.currentText() == "8"
    combo.setCurrentIndex(combo.findText("16"))
    combo.activated.emit(combo.currentIndex())
    assert ws.session.encoding(relu).bitwidth == 16


def test_bulk_edit_is_one_command(qtbot, ws, ctx, monkeypatch):
    from studio.core.engine.sessions import TARGET_ENV

    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S21|30|68")  # HTP v68: no 16-bit Conv weights
    calibrate(qtbot, ws)
    names = [r.name for r in ws.session.rows if r.kind != "bias"][:8]
    kinds = {ws.session.row(n).kind for n in names}
    assert kinds == {"activation", "param"}
    ws.editor.select_names(names)
    assert ws.editor.selected_names()[0] in names and len(ws.editor.selected_names()) == 8
    ws.editor.bulk_buttons["Set 16-bit"].click()
    assert ctx.undo_stack.count() == 1
    # HTP v68 has no 16-bit Conv/Gemm weights: those are skipped (and counted), activations widen
    for n in names:
        expected = 16 if ws.session.row(n).kind == "activation" else 8
        assert ws.session.encoding(n).bitwidth == expected, n
    assert "skipped" in ws.message.text()
    # 4-bit: weights change, activations are skipped and counted
    ws.editor.bulk_buttons["Set 4-bit"].click()
    assert ctx.undo_stack.count() == 2
    for n in names:
        expected = 4 if ws.session.row(n).kind == "param" else 16
        assert ws.session.encoding(n).bitwidth == expected, n
    assert "skipped" in ws.message.text()
    ctx.undo_stack.undo()
    ctx.undo_stack.undo()
    assert all(ws.session.encoding(n).bitwidth == 8 for n in names)
    assert not ws.session.plan.overrides
    # symmetric toggles on the whole selection (Clip's min/max scalars, which the build never
    # quantises, are no longer listed, so nothing keeps its setting here)
    ws.editor.request_bulk("symmetric")
    for n in names:
        assert ws.session.encoding(n).symmetric, n
    assert "kept their setting" not in ws.message.text()
    weight = first_weight(ws)
    ws.editor.select_names([weight, ADD])
    ws.editor.request_bulk("per_channel")
    assert not ws.session.encoding(weight).per_channel
    ov = ws.session.override(ADD)
    assert ov is None or ov.per_channel is None
    assert "skipped" in ws.message.text()


def test_sixteen_bit_weights_are_offered_only_under_16_bit_activations(qtbot, ws, ctx):
    """HTP (v75, the default target) runs 16-bit Conv weights only with 16-bit activations
    (studio.core.quantize.editing.HTP_WEIGHT_RULES): the editor offers and takes 16 bits for a
    Conv weight once the plan's activations are 16-bit, not before."""
    calibrate(qtbot, ws)
    weight = first_weight(ws)
    assert ws.session.allowed_bitwidths(weight) == (4, 8)
    assert not ws.editor.proxy.setData(index_of(ws, weight, "bits"), "16", Qt.ItemDataRole.EditRole)
    assert "only with 16-bit activations" in ws.message.text() and weight in ws.message.text()
    assert ctx.undo_stack.count() == 0
    assert ws.set_defaults(activation_bitwidth=16)
    assert ws.session.allowed_bitwidths(weight) == (4, 8, 16)
    assert ws.editor.proxy.setData(index_of(ws, weight, "bits"), "16", Qt.ItemDataRole.EditRole)
    assert ws.session.encoding(weight).bitwidth == 16


def test_invalid_scale_rejected_with_message(qtbot, ws, ctx):
    calibrate(qtbot, ws)
    before = ws.session.encoding(ADD)
    index = index_of(ws, ADD, "scale")
    # the real editor: type into the delegate's line edit and commit
    ws.editor.table.setCurrentIndex(index)
    ws.editor.table.edit(index)
    editor = ws.editor.table.findChild(QLineEdit, "numberEditor")
    assert editor is not None
    editor.setText("-0.5")
    ws.editor.number_delegate.setModelData(editor, ws.editor.proxy, index)
    assert "not positive" in ws.message.text() and ADD in ws.message.text()
    assert ws.message.property("error") == "true"
    assert ws.session.encoding(ADD).same_as(before)
    assert ctx.undo_stack.count() == 0
    for bad in ("nan", "inf", "0"):
        assert not ws.editor.proxy.setData(index, bad, Qt.ItemDataRole.EditRole)
    assert ctx.undo_stack.count() == 0
    # a valid scale: min/max follow from scale/offset
    assert ws.editor.proxy.setData(index, "0.02", Qt.ItemDataRole.EditRole)
    enc = ws.session.encoding(ADD)
    assert enc.scale[0] == pytest.approx(0.02)
    assert enc.max[0] == pytest.approx(0.02 * (255 + enc.offset[0]))
    assert cell(ws, ADD, "max") == f"{enc.max[0]:.4g}"
    # min edit: scale and offset follow
    assert ws.editor.proxy.setData(index_of(ws, ADD, "min"), "-1.0", Qt.ItemDataRole.EditRole)
    enc = ws.session.encoding(ADD)
    assert enc.min[0] == pytest.approx(-1.0, abs=enc.scale[0])
    assert enc.offset[0] < 0
    assert not ws.editor.proxy.setData(index_of(ws, ADD, "min"), "99", Qt.ItemDataRole.EditRole)
    assert "below max" in ws.message.text()


def test_histogram_region_drag_changes_range(qtbot, ws, ctx):
    calibrate(qtbot, ws)
    ws.editor.select_names([ADD])
    hist = ws.histogram
    assert hist.tensor == ADD and hist.region.isVisible()
    counts, edges = ws.session.stats.histogram(ADD)
    x, _y = hist.curve.getData()
    assert np.allclose(x, edges)
    enc = ws.session.encoding(ADD)
    lo, hi = hist.region_values()
    assert (lo, hi) == pytest.approx((enc.min[0], enc.max[0]))
    # drag the lower edge to -1.5 as a mouse drag would (setRegion + change finished)
    hist.region.setRegion((-1.5, enc.max[0]))
    hist.region.sigRegionChangeFinished.emit(hist.region)
    new = ws.session.encoding(ADD)
    assert new.min[0] == pytest.approx(-1.5, abs=new.scale[0])
    assert cell(ws, ADD, "min") == f"{new.min[0]:.4g}"
    # the region snapped to the grid's real range
    assert hist.region_values()[0] == pytest.approx(new.min[0])
    # a second drag merges into the same undo step
    hist.region.setRegion((-1.0, enc.max[0]))
    hist.region.sigRegionChangeFinished.emit(hist.region)
    assert ctx.undo_stack.count() == 1
    ctx.undo_stack.undo()
    assert ws.session.encoding(ADD).same_as(enc)
    assert hist.region_values() == pytest.approx((enc.min[0], enc.max[0]))


def drag(widget, start, end, steps=10):
    """A real pointer drag on a pyqtgraph view: press, moves with the button held, release."""
    vp = widget.viewport()

    def send(kind, point, buttons):
        event = QMouseEvent(
            kind,
            QPointF(point),
            QPointF(vp.mapToGlobal(point)),
            Qt.MouseButton.LeftButton,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(vp, event)

    send(QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton)
    for i in range(1, steps + 1):
        point = QPoint(start.x() + (end.x() - start.x()) * i // steps, start.y())
        send(QEvent.Type.MouseMove, point, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_histogram_mouse_drag_moves_max(qtbot, ws, ctx):
    name = "/res/bn2/BatchNormalization_output_0"
    calibrate(qtbot, ws)
    ws.editor.select_names([name])
    qtbot.wait(20)
    before = ws.session.encoding(name)
    plot = ws.histogram.plot
    vb = plot.plotItem.vb
    y = sum(vb.viewRange()[1]) / 2
    hi = before.max[0]

    def at(x):
        return plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))

    drag(plot, at(hi), at(hi + 0.5))
    after = ws.session.encoding(name)
    assert after.max[0] == pytest.approx(hi + 0.5, abs=0.05)
    assert after.min[0] == pytest.approx(before.min[0], abs=2 * after.scale[0])
    assert ctx.undo_stack.count() == 1
    assert cell(ws, name, "max") == f"{after.max[0]:.4g}"


def test_selection_sync_with_context(qtbot, ws, ctx):
    calibrate(qtbot, ws)
    selected = []
    ctx.node_selected.connect(selected.append)
    ws.editor.select_names([ADD])
    assert selected[-1] == "/res/Add" == ctx.graph.tensors[ADD].producer
    # graph -> table: a Conv node selects its output and its weight (and bias, listed too)
    ctx.select_node("/res/conv1/Conv")
    names = ws.editor.selected_names()
    kinds = sorted(ws.session.row(n).kind for n in names)
    assert "param" in kinds and set(kinds) <= {"activation", "param", "bias"}
    assert any(ws.session.row(n).kind == "param" for n in names)
    assert all(ws.session.row(n).node_id == "/res/conv1/Conv" for n in names)
    # a filtered table still selects what is visible
    ws.editor.filter.setText("relu_out/")
    assert ws.editor.proxy.rowCount() == 1
    assert ws.editor.proxy.data(ws.editor.proxy.index(0, 0), TENSOR_ROLE).endswith("Relu_output_0")


def test_badges_and_sqnr_overlay(qtbot, ws, ctx):
    badges, overlays = [], []
    ctx.badges_changed.connect(lambda name, b: badges.append((name, b)))
    ctx.overlay_changed.connect(lambda *a: overlays.append(a))
    calibrate(qtbot, ws)
    name, last = badges[-1]
    assert name == "bitwidth" and last["/res/Add"] == "A8"
    assert last["/res/conv1/Conv"].endswith("W8")
    ws.edit_field(ADD, "bits", "16")
    assert badges[-1][1]["/res/Add"] == "A16"
    with qtbot.waitSignal(ws.runner.result, timeout=60000):
        ws.analyse_button.click()
    report = ws.sqnr_report
    # the demo ships 8 held-out images: SQNR is measured on them, not on the 4 calibration samples
    assert report.backend == "cpu" and report.samples == 8 and report.layers
    assert "held-out" in report.data
    name, values, cmap, unit = overlays[-1]
    assert (name, cmap, unit) == ("sqnr", "RdYlGn", "dB")
    assert values and set(values) <= set(ctx.graph.node_by_id)
    # the overlay carries the measured per-layer values, keyed by the producing node
    relu = report.layer("/res/relu_out/Relu_output_0")
    assert values["/res/relu_out/Relu"] == pytest.approx(relu.sqnr_db)
    assert all(np.isfinite(v) for v in values.values())
    # the table column and the bar chart show the same numbers, sortable by SQNR
    assert cell(ws, "/res/relu_out/Relu_output_0", "sqnr") == f"{relu.sqnr_db:.1f}"
    assert len(ws.sqnr_chart.names) == len(ws.session.sqnr)
    ws.editor.table.sortByColumn(COL["sqnr"], Qt.SortOrder.AscendingOrder)
    first = ws.editor.proxy.data(ws.editor.proxy.index(0, 0), TENSOR_ROLE)
    assert ws.session.sqnr[first] == min(ws.session.sqnr.values())
    assert "model output" in ws.message.text()
    # a bar click selects its tensor in the table
    ws.sqnr_chart.tensor_clicked.emit(ws.sqnr_chart.names[3])
    assert ws.editor.selected_names() == [ws.sqnr_chart.names[3]]
    # an edit makes the numbers stale: said in the chart, no stale overlay sent to the graph
    sent = len(overlays)
    ws.edit_field(ADD, "bits", "8")
    assert ws.session.sqnr_stale and "run Analyse again" in ws.sqnr_chart.caption.text()
    assert len(overlays) == sent


def test_auto_mix_curve_points_apply(qtbot, ws, ctx):
    # calibrated on the demo's own images: SQNR is then scored on its held-out ones
    calibrate(qtbot, ws, str(DEMO.parent / "demo_cnn_data" / "calibration"))
    with qtbot.waitSignal(ws.runner.result, timeout=60000):
        ws.analyse()
    base = ws.sqnr_report.output_sqnr_db
    with qtbot.waitSignal(ws.runner.result, timeout=120000):
        ws.auto_mix(base + 40.0, max_steps=2)  # out of reach: the search runs every step
    _start, result = ws.mix_result
    assert len(result.curve) == 3 and not result.met
    # x: each point's estimated ms on the target device (the speed axis), Pareto points ringed
    from studio.core.devices.catalogue import current_device

    x, y = ws.mix_curve.curve.getData()
    assert list(x) == pytest.approx([p.estimated_ms for p in result.curve])
    assert all(v > 0 for v in x) and result.estimated_for == current_device().name
    assert list(y) == pytest.approx([p.output_sqnr_db for p in result.curve])
    assert y[0] == pytest.approx(base, abs=1e-6)
    px, py = ws.mix_curve.pareto_item.getData()
    pareto = [p for p in result.curve if p.step in {q.step for q in result.pareto()}]
    assert list(px) == pytest.approx([p.estimated_ms for p in pareto]) and len(px) >= 1
    assert "estimated ms" in ws.mix_curve.plot.plotItem.getAxis("bottom").labelText
    assert "Pareto" in ws.mix_curve.caption.text() and "estimate" in ws.mix_curve.caption.text()
    ws.mix_curve.x_axis.setCurrentIndex(ws.mix_curve.x_axis.findData("count"))
    assert list(ws.mix_curve.curve.getData()[0]) == [p.wide_tensors for p in result.curve]
    # every fitted per-layer technique is in the Techniques tab, the kept ones marked
    rows = ws.technique_view.rows
    assert {r["name"] for r in rows} == {e["weight"] for e in result.technique_effects}
    assert sum(r["chosen"] for r in rows) == len(result.techniques)
    # the last kept point was applied as one undo step
    promoted, techniques = result.promoted, set(result.techniques)
    assert (promoted or techniques) and ctx.undo_stack.count() == 1
    assert all(ws.session.override(n).bitwidth == 16 for n in promoted)
    assert all(ws.session.override(n).scale for n in techniques)  # the pinned MSE scales
    # ... and its measured SQNR is what the table shows now
    assert not ws.session.sqnr_stale and ws.sqnr_report is result.final_report
    # clicking the first point goes back to the starting plan (another undo step)
    ws.mix_curve.point_clicked.emit(0)
    assert all(ws.session.override(n) is None for n in [*promoted, *techniques])
    assert ctx.undo_stack.count() == 2
    ctx.undo_stack.undo()
    assert all(ws.session.override(n).bitwidth == 16 for n in promoted)
    assert "Cycles: not measured" in ws.mix_curve.caption.text()
    assert not ws.mix_curve.plot.plotItem.getAxis("right").isVisible()


def test_import_encodings_file(qtbot, ws, ctx, tmp_path):
    calibrate(qtbot, ws)
    weight = first_weight(ws)
    path = tmp_path / "overrides.json"
    imported = EncodingSet(
        [
            Encoding.from_range(ADD, -0.25, 3.0, 16),
            Encoding.float_fallback("/res/relu_out/Relu_output_0"),
        ]
    )
    save_encodings(imported, path, "qnn")
    assert load_encodings(path)[0][ADD].bitwidth == 16  # a real QNN file
    assert ws.import_encodings(str(path))
    enc = ws.session.encoding(ADD)
    assert enc.bitwidth == 16 and enc.min[0] == pytest.approx(-0.25, abs=1e-4)
    assert ws.session.encoding("/res/relu_out/Relu_output_0").is_float
    assert cell(ws, ADD, "bits") == "16"
    assert "overrides.json" in ws.banner.text()
    assert ws.session.encoding(weight).bitwidth == 8  # not in the file: calibrated default
    ctx.undo_stack.undo()
    assert ws.session.encoding(ADD).bitwidth == 8 and ws.session.plan.imported is None
    ctx.undo_stack.redo()
    assert ws.session.encoding(ADD).bitwidth == 16
    # a broken file: the core's message, nothing changes
    bad = tmp_path / "bad.json"
    bad.write_text('{"activation_encodings": {"x": [{"bitwidth": 8, "scale": -1, "offset": 0}]}}')
    count = ctx.undo_stack.count()
    assert not ws.import_encodings(str(bad))
    assert "import failed" in ws.message.text()
    assert ctx.undo_stack.count() == count


def test_export_roundtrip_and_project_autosave(qtbot, ws, ctx, tmp_path):
    from studio.core.project import Project

    ctx.project = Project.new(DEMO)
    calibrate(qtbot, ws)
    ws.edit_field(ADD, "bits", "16")
    saved = QuantPlan.from_json(ctx.project.quant_plan)
    assert saved.overrides[ADD].bitwidth == 16
    assert ctx.project.calibration["stats_dir"]
    out = tmp_path / "enc.json"
    assert ws.export_encodings(str(out), "aimet1")
    back, _warnings = load_encodings(out)
    assert back[ADD].bitwidth == 16 and back[ADD].same_as(ws.session.encoding(ADD), rtol=1e-6)
    # the project saved to disk and opened again: plan and cached stats come back, no recalibration
    saved_path = ctx.project.save(tmp_path / "demo.npustudio")
    ctx2 = StudioContext()
    ctx2.project = Project.load(saved_path)
    w2 = QuantizationWorkspace(ctx2)
    qtbot.addWidget(w2)
    calls = []
    w2.runner.started.connect(calls.append)
    ctx2.set_model(ModelGraph.load(DEMO), str(DEMO))
    assert not calls and w2.session.stats is not None
    assert w2.session.stats.num_samples == 4 and w2.data_spec == "random:4"
    assert w2.session.encoding(ADD).bitwidth == 16
    assert w2.session.encoding(ADD).same_as(ws.session.encoding(ADD))
    assert not ctx2.project.dirty  # restoring is not an edit


def test_screenshot(qtbot, ws, ctx):
    from PySide6.QtWidgets import QApplication

    from studio.ui.widgets.theme import palette

    QApplication.instance().setPalette(palette())
    QApplication.instance().setStyle("Fusion")
    calibrate(qtbot, ws)
    ws.edit_field(ADD, "bits", "16")
    ws.editor.select_names([ADD])
    qtbot.wait(50)
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert ws.grab().save(str(SHOTS / "quant.png"))


def test_jobs_go_through_the_job_manager(qtbot, ws, ctx):
    from studio.ui.jobs.manager import JobManager

    ctx.jobs = JobManager()
    progress = []
    ws.runner.progress.connect(lambda f, _s, _t: progress.append(f))
    calibrate(qtbot, ws, "random:3")
    handle = ctx.jobs.jobs[-1]
    assert handle.title == "Calibrate" and handle.state == "done" and handle.lane == "quant"
    assert ws.session.stats.num_samples == 3
    assert progress and progress[-1] == pytest.approx(1.0)
    # a failing job: the core's message reaches the workspace, nothing changes
    stats = ws.session.stats
    with qtbot.waitSignal(ws.runner.error, timeout=30000):
        ws.calibrate(str(DEMO.parent / "no-such-folder"))
    assert ws.session.stats is stats
    assert ws.message.property("error") == "true" and "no-such-folder" in ws.message.text()
    assert ctx.jobs.jobs[-1].state == "failed"


def test_calibrate_dialog_warns_about_random_data(qtbot):
    from studio.ui.quant.dialogs import CalibrateDialog

    dialog = CalibrateDialog(None, "random:7", "percentile", 99.9)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.warning.isVisible() and "random data" in dialog.warning.text()
    assert dialog.percentile.isEnabled()
    choice = dialog.choice()
    assert (choice.data, choice.method, choice.percentile) == ("random:7", "percentile", 99.9)
    dialog.kind.setCurrentIndex(1)  # a file: no warning, and a path is required
    assert not dialog.warning.isVisible()
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert not ok.isEnabled()
    dialog.path.setText(str(DEMO))
    assert ok.isEnabled() and dialog.choice().data == str(DEMO)


def test_build_qdq_model_and_cancel(qtbot, ws, ctx, tmp_path):
    import onnx

    from studio.core.quantize import encodings_of_qdq

    calibrate(qtbot, ws)
    ws.edit_field(ADD, "bits", "16")
    out = tmp_path / "demo.qdq.onnx"
    with qtbot.waitSignal(ws.runner.result, timeout=60000):
        ws.build_qdq(str(out))
    assert out.is_file() and str(out) in ws.message.text()
    built = encodings_of_qdq(onnx.load(str(out)))
    assert built[ADD].bitwidth == 16
    assert ADD in ws.last_build.wide_tensors
    # built in the worker and checked on the target's HTP (the demo CNN runs whole there)
    assert ws.last_offload["ok"] and "fully offloaded" in ws.message.text()
    # a long calibration cancelled from the Cancel button: old stats stay, UI idle again
    stats = ws.session.stats
    with qtbot.waitSignal(
        ws.runner.finished, timeout=30000, check_params_cb=lambda state: state == "cancelled"
    ):
        ws.calibrate("random:5000")
        assert ws.cancel_button.isVisible() and not ws.calibrate_button.isEnabled()
        ws.cancel_button.click()
    assert ws.session.stats is stats and not ws.runner.busy
    assert ws.calibrate_button.isEnabled() and "cancelled" in ws.message.text()
    ws.runner.wait(30000)


@pytest.mark.htp
def test_analyse_on_htp_runs_in_the_worker(qtbot, ws, ctx):
    overlays = []
    ctx.overlay_changed.connect(lambda *a: overlays.append(a))
    calibrate(qtbot, ws)
    ws.backend.setCurrentIndex(ws.backend.findData("htp"))
    with qtbot.waitSignal(ws.runner.result, timeout=120000):
        ws.analyse_button.click()
    report = ws.sqnr_report
    assert report.backend == "htp" and np.isfinite(report.output_sqnr_db)
    assert report.output_sqnr_db > 15  # a working 8-bit model, measured on the HTP simulator
    assert "HTP" in ws.message.text()
    name, values, _cmap, _unit = overlays[-1]
    assert name == "sqnr" and values
    assert report.htp_intermediates, report.notes  # per-layer figures really from HTP
    assert len(report.layers) > 5


def test_defaults_undoable_and_commands_stay_with_their_model(qtbot, ws, ctx, conv_model):
    calibrate(qtbot, ws)
    ws.act_bits.setCurrentText("A16")
    ws.act_bits.activated.emit(ws.act_bits.currentIndex())
    acts = [r.name for r in ws.session.rows if r.kind == "activation"]
    assert all(ws.session.encoding(n).bitwidth == 16 for n in acts)
    ws.edit_field(ADD, "bits", "8")
    assert ctx.undo_stack.count() == 2
    ctx.undo_stack.undo()
    ctx.undo_stack.undo()
    assert ws.act_bits.currentText() == "A8"
    assert all(ws.session.encoding(n).bitwidth == 8 for n in acts)
    ctx.undo_stack.redo()
    # another model: the old commands on the shared stack no longer touch the plan
    ctx.set_model(ModelGraph.load(conv_model), str(conv_model))
    assert ws.session.stats is None and ADD not in [r.name for r in ws.session.rows]
    assert not ws.session.plan.overrides and ws.act_bits.currentText() == "A8"
    plan_before = ws.session.plan.to_json()
    ctx.undo_stack.undo()
    assert ws.session.plan.to_json() == plan_before


def test_local_undo_shortcuts_when_standalone(qtbot, ws, ctx):
    calibrate(qtbot, ws)
    ws.edit_field(ADD, "bits", "16")
    ws.activateWindow()
    ws.editor.table.setFocus()
    qtbot.waitUntil(lambda: ws.editor.table.hasFocus(), timeout=2000)
    qtbot.keyClick(ws.editor.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ws.session.encoding(ADD).bitwidth == 8
    redo = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(ws.editor.table, Qt.Key.Key_Z, redo)
    assert ws.session.encoding(ADD).bitwidth == 16


def test_mix_curve_shows_cycles_axis_only_with_figures(qtbot):
    from studio.ui.quant.charts import MixCurve

    chart = MixCurve()
    qtbot.addWidget(chart)
    chart.show()
    chart.set_curve([0, 2, 4], [30.0, 33.5, 36.0], 35.0, cycles=[None, 1200.0, 1500.0])
    assert chart.plot.plotItem.getAxis("right").isVisible()
    x, y = chart.cycles_curve.getData()
    assert list(x) == [2.0, 4.0] and list(y) == [1200.0, 1500.0]
    clicked = []
    chart.point_clicked.connect(clicked.append)
    chart.curve.sigPointsClicked.emit(chart.curve, chart.curve.scatter.points()[1:2], None)
    assert clicked == [1]


@pytest.mark.htp
def test_auto_mix_on_htp_in_the_worker(qtbot, ws, ctx):
    calibrate(qtbot, ws)
    with qtbot.waitSignal(ws.runner.result, timeout=180000):
        ws.auto_mix(200.0, max_steps=1, backend="htp")  # unreachable: both points are measured
    _start, result = ws.mix_result
    assert result.backend == "htp" and len(result.curve) == 2
    assert all(np.isfinite(p.output_sqnr_db) for p in result.curve)
    assert "on HTP" in ws.mix_curve.caption.text()
    # the chosen plan is applied as one command when the search promoted anything (on the
    # default target's HTP v75 the one step may gain too little and be undone)
    assert ctx.undo_stack.count() == (1 if result.promoted else 0)


def test_histogram_draws_the_4bit_grid(qtbot, ws):
    calibrate(qtbot, ws)
    weight = first_weight(ws)
    ws.editor.select_names([weight])
    assert not ws.histogram.region.movable  # per-channel: the union of ranges, not draggable
    ws.editor.request_bulk("per_channel")  # off
    ws.editor.bulk_buttons["Set 4-bit"].click()
    enc = ws.session.encoding(weight)
    assert enc.bitwidth == 4 and not enc.per_channel
    assert ws.histogram.region.movable
    x, _y = ws.histogram.grid_lines.getData()
    codes = enc.scale[0] * (np.arange(enc.qmax + 1) + enc.offset[0])
    assert np.allclose(np.unique(x), codes)
    assert "4-bit" in ws.histogram.info.text()


def test_rows_are_what_the_qdq_build_quantises_from_the_start(qtbot, ws, tmp_path):
    """Before calibration the table lists the prepared model's tensors: BatchNorm folded into
    its Conv (no running_mean/var rows), no Clip min/max scalars as "weights"; the list does not
    change on calibration, and it is exactly what the built QDQ model quantises."""
    import onnx

    from studio.core.quantize import build_qdq

    rows = {r.name: r for r in ws.session.rows}
    assert not [n for n in rows if "bn." in n or "running_" in n], sorted(rows)
    assert not [n for n in rows if "clip_m" in n], sorted(rows)
    assert rows["stem.conv.weight"].kind == "param" and rows["stem.conv.bias"].kind == "bias"
    assert rows["stem.conv.weight"].node_id == "/stem/conv/Conv"  # selects the original Conv
    # the Conv's output carries the folded BatchNorm's name (and its node) in the prepared model
    assert rows["/stem/bn/BatchNormalization_output_0"].op_type == "Conv"
    assert "/stem/conv/Conv_output_0" not in rows
    assert ws.message.text().startswith(f"{len(rows)} quantisable tensors")
    calibrate(qtbot, ws)
    assert {r.name for r in ws.session.rows} == set(rows)
    result = build_qdq(ws.session.stats, ws.session.plan, tmp_path / "q.onnx")
    qdq = onnx.load(result.qdq_path)
    inits = {t.name for t in qdq.graph.initializer}
    dq_weights = {
        n.input[0].removesuffix("_quantized")
        for n in qdq.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits
    }
    assert dq_weights == {n for n, r in rows.items() if r.kind != "activation"}
    q_inputs = {
        n.input[0].removesuffix("_QuantizeLinear_Input")
        for n in qdq.graph.node
        if n.op_type == "QuantizeLinear"
    }
    assert q_inputs <= {n for n, r in rows.items() if r.kind == "activation"}
    # a bias has no editable encoding: the build derives it
    assert not ws.edit_field("stem.conv.bias", "bits", "16")
    assert "derives" in ws.message.text()


def test_auto_mix_dialog_offers_cycles_only_where_htp_is(qtbot, ws):
    from studio.ui.quant.dialogs import AutoMixDialog
    from studio.ui.quant.htp_probe import HtpProbe

    probe = HtpProbe(ws)  # not started: its answer is given below, as the probe would
    dialog = AutoMixDialog(ws, 35.0, probe)
    qtbot.addWidget(dialog)
    assert not dialog.cycles.isEnabled() and "checking" in dialog.cycles_note.text()
    probe.answer(False, "QNN HTP session failed: no device")
    assert not dialog.cycles.isEnabled() and "no device" in dialog.cycles.toolTip()
    dialog.cycles.setChecked(True)  # even forced, a disabled box measures nothing
    assert dialog.choice() == (35.0, 10, False)
    probe.answer(True, "")
    assert dialog.cycles.isEnabled()
    dialog.cycles.setChecked(True)
    assert dialog.choice() == (35.0, 10, True)


@pytest.mark.htp
def test_auto_mix_with_htp_cycles_plots_the_cycles_axis(qtbot, ws, monkeypatch):
    from studio.core.jobs import client as worker_client

    requests = []
    real = worker_client.run_in_worker

    def spy(kind, request, *args, **kwargs):
        requests.append((kind, dict(request)))
        return real(kind, request, *args, **kwargs)

    monkeypatch.setattr(worker_client, "run_in_worker", spy)
    calibrate(qtbot, ws)
    dialog = ws.automix_dialog()  # the real probe, in the worker process
    qtbot.waitUntil(lambda: dialog.probe.available is not None, timeout=120000)
    assert dialog.cycles.isEnabled(), dialog.probe.reason
    dialog.target.setValue(150.0)  # out of reach: every step is measured
    dialog.steps.setValue(2)
    dialog.cycles.setChecked(True)
    with qtbot.waitSignal(ws.runner.result, timeout=180000):
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    kind, request = requests[-1]
    assert kind.endswith(":auto_mp_job") and request["cycles"] == "htp"
    _start, result = ws.mix_result
    assert len(result.curve) == 3 and all(p.cycles > 10_000 for p in result.curve)
    assert ws.mix_curve.plot.plotItem.getAxis("right").isVisible()
    x, y = ws.mix_curve.cycles_curve.getData()
    assert list(x) == pytest.approx([p.estimated_ms for p in result.curve])  # the x axis
    assert list(y) == [p.cycles for p in result.curve]
    assert "HTP cycles per inference" in ws.mix_curve.caption.text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    ws.grab().save(str(SHOTS / "quant_mix_cycles.png"))


@pytest.mark.htp
def test_build_qdq_with_techniques_and_the_mse_column(qtbot, ws, tmp_path):
    calibrate(qtbot, ws, data="random:16")
    ws.techniques.setCurrentIndex(ws.techniques.findData("bias-correction"))
    out = tmp_path / "tech.qdq.onnx"
    with qtbot.waitSignal(ws.runner.finished, timeout=120000):
        ws.build_qdq(str(out))
    tech = ws.last_techniques
    assert out.is_file() and tech["techniques"] == ["bias-correction"]
    assert tech["layers"] and "techniques bias-correction" in ws.message.text()
    assert "random samples" in tech["data_label"]
    # each layer's effect, before and after, in the Techniques tab
    rows = ws.technique_view.rows
    assert {r["name"] for r in rows} == {f"{e['node']} / {e['weight']}" for e in tech["layers"]}
    assert ws.technique_view.table.rowCount() == len(tech["layers"])
    # the relative quantisation-MSE column: a number for quantised tensors
    from studio.ui.quant.table import COL

    model = ws.editor.table.model()
    col = COL["mse"]
    texts = [model.index(r, col).data() for r in range(model.rowCount())]
    assert any(t and "e-" in t for t in texts)
    ws.grab().save(str(tmp_path / "quant_techniques.png"))


@pytest.mark.htp
def test_sim_vs_htp_tab_flags_disagreeing_layers(qtbot, ws, ctx):
    """The Sim vs HTP button runs float vs CPU simulation vs HTP per layer as a background job
    (in the worker) and shows it in its own tab, disagreeing layers first and highlighted. On
    the demo HTP v75's 8-bit Softmax reads ~16 dB below the CPU simulation's: flagged at the
    default 3 dB threshold, while the convolutions agree."""
    from PySide6.QtWidgets import QApplication

    from studio.ui.jobs.manager import JobManager
    from studio.ui.widgets.theme import palette

    ctx.jobs = JobManager()
    calibrate(qtbot, ws)
    with qtbot.waitSignal(ws.runner.result, timeout=180000):
        ws.sim_vs_htp()
    assert ctx.jobs.jobs[-1].title == "Sim vs HTP" and ctx.jobs.jobs[-1].state == "done"
    view = ws.sim_vs_htp_view
    assert ws.tabs.currentWidget() is view
    result = view.result
    assert result["htp_per_layer"], result["notes"]  # per-layer figures really from HTP
    assert "HTP v" in result["target"] and "samples" in result["data"]
    assert view.table.rowCount() == len(result["layers"]) > 5
    flagged = [r["tensor"] for r in result["layers"] if r["flagged"]]
    ops = {r["tensor"]: r["op_type"] for r in result["layers"]}
    assert "Softmax" in {ops[t] for t in flagged}, result["layers"]
    assert not any(ops[t] == "Conv" for t in flagged)
    assert set(view.flagged_rows()) == set(flagged)
    assert view.table.item(0, 5).text() == "differs"  # disagreeing layers are listed first
    for r in result["layers"]:
        if r["htp_sqnr_db"] is not None and isinstance(r["diff_db"], float):
            assert r["flagged"] == (abs(r["diff_db"]) > 3.0)
    assert "differ by more than 3 dB" in view.summary.text()
    QApplication.instance().setPalette(palette())
    QApplication.instance().setStyle("Fusion")
    qtbot.wait(50)
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert ws.grab().save(str(SHOTS / "quant_sim_vs_htp.png"))


@pytest.mark.htp
def test_check_htp_names_the_node_that_falls_back_in_the_editor(qtbot, tmp_path, monkeypatch):
    """Check HTP builds the plan's QDQ model and asks QNN (in the worker) which nodes the
    target's HTP rejects: the Erf head's output row reads CPU with QNN's own reason; the
    convolutions read HTP. Editing the plan clears the column (it no longer holds)."""
    from PySide6.QtWidgets import QApplication

    from studio.ui.widgets.theme import palette
    from tests import builders

    monkeypatch.setenv("NPU_STUDIO_CACHE", str(tmp_path / "cache"))
    path = builders.save(builders.small_cnn_erf_head(), tmp_path / "erf.onnx")
    context = StudioContext()
    context.set_model(ModelGraph.load(path), str(path))
    w = QuantizationWorkspace(context)
    qtbot.addWidget(w)
    w.resize(1500, 850)
    w.show()
    qtbot.waitUntil(lambda: not w.session.preparing, timeout=20000)
    try:
        calibrate(qtbot, w, "random:2")
        with qtbot.waitSignal(w.runner.result, timeout=120000):
            w.check_htp_button.click()
        fallbacks = w.session.htp_fallbacks
        assert {fb["node"] for fb in fallbacks.values()} == {"/head/Erf"}
        erf_out = next(t for t, fb in fallbacks.items() if fb["op_type"] == "Erf")
        assert cell(w, erf_out, "htp") == "CPU"
        tip = cell(w, erf_out, "htp", Qt.ItemDataRole.ToolTipRole)
        assert "/head/Erf" in tip and "Erf" in tip and "QNN EP" in tip and "HTP v75" in tip
        conv_out = next(
            r.name for r in w.session.rows if r.op_type == "Conv" and r.kind == "activation"
        )
        assert cell(w, conv_out, "htp") == "HTP"
        assert "/head/Erf" in w.message.text()
        QApplication.instance().setPalette(palette())
        QApplication.instance().setStyle("Fusion")
        w.editor.select_names([erf_out])
        w.editor.table.scrollTo(index_of(w, erf_out, "htp"))  # the column is the last one
        qtbot.wait(50)
        SHOTS.mkdir(parents=True, exist_ok=True)
        assert w.grab().save(str(SHOTS / "quant_htp_fallback.png"))
        w.edit_field(conv_out, "bits", "16")
        assert cell(w, erf_out, "htp") == "" and not w.session.htp_checked
    finally:
        w.runner.cancel()
        w.runner.wait(10000)
