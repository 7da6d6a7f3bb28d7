"""The Build QDQ dialog on a real pointwise model: block-wise INT4 (LPBQ) offered only where the
target's HTP takes it, and built through the same workflow as ``quantize --block-size``."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from studio.core.engine.sessions import TARGET_ENV
from tests import builders
from tests import real_graphs as rg

SHOTS = Path(os.environ.get("NPU_STUDIO_SHOTS", "/tmp/shots"))


@pytest.fixture
def ws(calibrated_quant_workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S24|57|75")
    path = builders.save(rg.pointwise_int4(), tmp_path / "pw.onnx")
    return calibrated_quant_workspace(path, size=(1400, 800))


def _dialog(qtbot, ws):
    dialog = ws.build_dialog()
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    return dialog


def test_blockwise_offered_only_where_htp_takes_it_and_built_so(qtbot, ws, monkeypatch, tmp_path):
    dialog = _dialog(qtbot, ws)  # A8W8: no 4-bit weight at all
    assert not dialog.blockwise.isEnabled() and "W4" in dialog.block_note.text()
    assert "Samsung Galaxy S24" in dialog.check_note.text()
    dialog.reject()
    ws.set_defaults(weight_bitwidth=4)  # A8W4: HTP's block kernels take 16-bit activations only
    dialog = _dialog(qtbot, ws)
    assert not dialog.blockwise.isEnabled() and "16-bit activations" in dialog.block_note.text()
    assert dialog.choice().block_size is None
    dialog.reject()
    ws.set_defaults(activation_bitwidth=16)  # A16W4 on HTP v75: the 1x1 Convs and the Gemm
    dialog = _dialog(qtbot, ws)
    assert dialog.blockwise.isEnabled()
    assert {c.tensor for c in dialog.eligible()} == {"pw1.w", "pw2.w", "fc.w"}
    assert "k3.w" in dialog.block_note.text() and "1x1" in dialog.block_note.text()
    dialog.blockwise.setChecked(True)
    dialog.block_size.setCurrentIndex(dialog.block_size.findData(128))  # > 64 channels
    assert dialog.eligible() == [] and "0 of 4" in dialog.block_note.text()
    dialog.block_size.setCurrentIndex(dialog.block_size.findData(32))
    assert dialog.choice().block_size == 32
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SHOTS / "quant_build_dialog.png"))
    dialog.reject()
    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S21|30|68")  # HTP v68: no block-scale path
    dialog = _dialog(qtbot, ws)
    assert not dialog.blockwise.isEnabled() and "v69" in dialog.block_note.text()
    dialog.reject()
    # the editor refuses what a v66 target cannot run: an INT4 Conv weight under A16
    monkeypatch.setenv(TARGET_ENV, "Google Pixel 4|12|66")
    assert not ws.edit_field("k3.w", "bits", "4")
    assert "v66 has no INT4 Conv" in ws.message.text()
    assert ws.edit_field("fc.w", "bits", "4")  # a Gemm weight: fine there
    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S24|57|75")
    _the_dialog_builds_blockwise_weights_through_the_workflow(qtbot, ws, tmp_path)


def _the_dialog_builds_blockwise_weights_through_the_workflow(qtbot, ws, tmp_path):
    dialog = _dialog(qtbot, ws)
    out = tmp_path / "pw.bq.onnx"
    dialog.path.setText(str(out))
    dialog.blockwise.setChecked(True)
    with qtbot.waitSignal(ws.runner.result, timeout=120000):
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert ws.last_build.blockwise == {"pw1.w": 32, "pw2.w": 32, "fc.w": 32}
    proto = onnx.load(str(out))
    blocked = [
        n
        for n in proto.graph.node
        if n.op_type == "DequantizeLinear"
        and any(a.name == "block_size" and a.i == 32 for a in n.attribute)
    ]
    assert len(blocked) == 3
    text = ws.message.text()
    assert "3 weights block-wise INT4 (block 32)" in text and "fully offloaded" in text
    assert ws.session.plan.weight_block_size is None  # a build option, not an edit of the plan
