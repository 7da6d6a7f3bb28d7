"""Help > About names every version that shapes a result, the backends with their reasons, and
the target device."""

from __future__ import annotations

from importlib.metadata import version

import onnxruntime
import PySide6
from onnxruntime_qnn import build_and_package_info
from PySide6.QtCore import qVersion

from studio import __version__
from studio.core.workflows.about import about_facts
from studio.ui.shell import dialogs


def test_about_facts_are_the_installed_versions():
    facts = about_facts()
    assert facts["npu-studio"] == __version__
    assert facts["onnx"] == version("onnx")
    assert facts["onnxruntime"] == onnxruntime.__version__
    assert facts["onnxruntime-qnn"] == build_and_package_info.__version__
    assert facts["QNN SDK (in onnxruntime-qnn)"] == build_and_package_info.qnn_version
    assert "target device" in facts and "backends" not in facts


def test_about_dialog_lists_versions_backends_and_device(qtbot):
    dialog = dialogs.show_about(None)  # no window: it probes the backends itself
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.backends is not None, timeout=120000)
    text = dialog.text.toPlainText()
    for needle in (
        f"npu-studio {__version__}",
        qVersion(),
        PySide6.__version__,
        version("onnx"),
        onnxruntime.__version__,
        build_and_package_info.__version__,
        build_and_package_info.qnn_version,
        "target device",
    ):
        assert needle in text, needle
    names = {b.name for b in dialog.backends}
    assert {"cpu", "htp"} <= names
    htp = next(b for b in dialog.backends if b.name == "htp")
    assert ("htp: available" in text) == htp.available
    unavailable = [b for b in dialog.backends if not b.available]
    for b in unavailable:  # each one says why
        assert b.reason and b.reason[:30] in text
    dialog.grab().save("/tmp/ship_about.png")
