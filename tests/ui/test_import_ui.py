"""Opening a .tflite in the studio: inputs read in a job, shape dialog, conversion job, model opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QDialog

from studio.ui.shell import dialogs, importing
from studio.ui.shell.main_window import MainWindow

FACE = (
    Path(__file__).resolve().parents[2]
    / "resources"
    / "models"
    / "tflite"
    / "face_detection_short_range.tflite"
)


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NPU_STUDIO_NO_WEBENGINE", "1")
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, t, m, d="": shown.append((t, m)))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings)
    window.resize(1300, 850)
    window.show()
    window.shown_errors = shown
    yield window
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: "discard")
    window.close()
    window.deleteLater()


def test_drop_tflite_imports_and_opens_it(win, qtbot, tmp_path, monkeypatch):
    src = tmp_path / "face.tflite"
    src.write_bytes(FACE.read_bytes())
    seen: dict[str, object] = {}

    def accept(self):
        seen["shapes"] = self.input_shapes()
        self.adjustSize()
        self.grab().save(str(tmp_path / "import_dialog.png"))
        seen["png"] = tmp_path / "import_dialog.png"
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(importing.ImportDialog, "exec", accept)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(src))])
    drop = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    messages: list[str] = []  # status-bar messages are transient: keep every one shown
    win.statusBar().messageChanged.connect(messages.append)
    win.dropEvent(drop)
    qtbot.waitUntil(
        lambda: win.importer.last_record is not None or bool(win.shown_errors), timeout=120_000
    )
    assert not win.shown_errors, win.shown_errors
    assert seen["shapes"] == {"input": [1, 128, 128, 3]}  # prefilled from the model itself
    record = win.importer.last_record
    assert record["check"]["agrees"]
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=60_000)
    assert Path(record["output"]) == tmp_path / "face.onnx"
    saved = win.projects.project.to_json()["import"]
    assert saved["source_sha256"] == record["source_sha256"] and saved["settings"]["opset"] == 17
    qtbot.waitUntil(lambda: any("SQNR" in m for m in messages), timeout=10_000)
    win.grab().save(str(tmp_path / "imported_window.png"))
    import shutil

    shutil.copy(seen["png"], "/tmp/import_dialog.png")
    shutil.copy(tmp_path / "imported_window.png", "/tmp/imported_window.png")


def test_bad_import_shows_an_error(win, qtbot, tmp_path):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(FACE.read_bytes()[:4000])
    win.open_path(str(bad))
    qtbot.waitUntil(lambda: bool(win.shown_errors), timeout=60_000)
    title, message = win.shown_errors[0]
    assert title == "Cannot import model" and "cut.tflite" in message
    assert not (tmp_path / "cut.onnx").exists()


def test_project_reimports_when_the_source_changed(win, qtbot, tmp_path, monkeypatch):
    src = tmp_path / "face.tflite"
    src.write_bytes(FACE.read_bytes())
    handle = win.importer.convert(str(src), str(tmp_path / "face.onnx"), {}, "")
    qtbot.waitUntil(lambda: win.importer.last_record is not None, timeout=120_000)
    first = win.importer.last_record
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=60_000)
    assert win.projects.save_as(str(tmp_path / "p.npustudio"))
    src.write_bytes(FACE.read_bytes() + b"\0" * 8)  # the source changes on disk
    win.importer.last_record = None
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: "discard")
    win.open_path(str(tmp_path / "p.npustudio"))
    qtbot.waitUntil(lambda: win.importer.last_record is not None, timeout=120_000)
    assert win.importer.last_record["source_sha256"] != first["source_sha256"]
    assert handle is not None


def test_import_dialog_refuses_dims_that_are_not_positive_integers(qtbot):
    info = {"what": "TorchScript", "kind": "torchscript", "inputs": [{"name": "image"}]}
    dialog = importing.ImportDialog("net.pt", info, "")
    qtbot.addWidget(dialog)
    dialog.shape_edits["image"].setText("1,3,a,224")
    dialog.accept()
    assert "input 'image': '1,3,a,224' is not a list of positive integers" in dialog.error.text()
    assert dialog.result() != QDialog.DialogCode.Accepted
    dialog.shape_edits["image"].setText("1x3x224x224")
    assert dialog.input_shapes() == {"image": [1, 3, 224, 224]}
