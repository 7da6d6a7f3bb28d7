"""A newcomer's first presses: Calibrate with the dialog's defaults works on the demo, and a model
without sample data defaults to random:N with its warning on screen (never the current folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog

from studio.core.calibration.samples import (
    default_calibration_source,
    find_sample_data,
    heldout_source,
)
from studio.core.model.graph import ModelGraph
from studio.resources import demo_model_path
from studio.ui.quant import dialogs as quant_dialogs
from studio.ui.quant.workspace import QuantizationWorkspace
from studio.ui.shell.context import StudioContext

DEMO = demo_model_path()


def test_demo_ships_real_sample_images():
    samples = find_sample_data(DEMO)
    assert samples is not None
    calib = sorted(samples.calibration.iterdir())
    held = sorted(samples.heldout.iterdir())
    assert len(calib) >= 8 and len(held) >= 4
    assert {p.name for p in calib}.isdisjoint({p.name for p in held})
    from PIL import Image

    with Image.open(calib[0]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    spec, warning = default_calibration_source(DEMO)
    assert Path(spec) == samples.calibration and warning is None
    assert heldout_source(DEMO) == str(samples.heldout)


def test_model_without_data_defaults_to_random(conv_model):
    spec, warning = default_calibration_source(conv_model)
    assert spec.startswith("random:") and "random data" in warning
    assert default_calibration_source(None)[0].startswith("random:")
    assert heldout_source(conv_model) is None


def _workspace(qtbot, path: Path, tmp_path, monkeypatch) -> QuantizationWorkspace:
    monkeypatch.setenv("NPU_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # a folder without calibration files, as a fresh shell has
    ctx = StudioContext()
    ctx.set_model(ModelGraph.load(path), str(path))
    ws = QuantizationWorkspace(ctx)
    qtbot.addWidget(ws)
    ws.show()
    qtbot.waitUntil(lambda: not ws.session.preparing, timeout=20000)
    return ws


@pytest.mark.parametrize("which", ["demo", "no-data"])
def test_calibrate_with_dialog_defaults_is_green(qtbot, tmp_path, monkeypatch, conv_model, which):
    model = DEMO if which == "demo" else conv_model
    ws = _workspace(qtbot, model, tmp_path, monkeypatch)
    seen = {}

    def accept_defaults(dialog):
        seen["data"] = dialog.choice().data
        seen["warning"] = dialog.warning.isVisibleTo(dialog)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(quant_dialogs.CalibrateDialog, "exec", accept_defaults)
    with qtbot.waitSignal(ws.runner.finished, timeout=60000):
        ws.calibrate_button.click()
    assert ws.session.stats is not None, ws.message.text() if hasattr(ws, "message") else ""
    if which == "demo":
        assert seen == {"data": str(find_sample_data(DEMO).calibration), "warning": False}
        assert ws.session.stats.num_samples == len(
            list(find_sample_data(DEMO).calibration.iterdir())
        )
    else:
        assert seen["data"].startswith("random:") and seen["warning"] is True
    assert ws.data_spec == seen["data"]
    ws.runner.wait(5000)
