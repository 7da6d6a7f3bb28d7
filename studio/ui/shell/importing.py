"""Opening a PyTorch or TFLite file: read its inputs, ask for static shapes, convert, then open.

Both steps are core jobs (``studio.core.importers.jobs``) in the worker process, shown in the Jobs
dock with progress, the exporter's log and cancel. The dialog is prefilled with the source's own
example input shapes; the Python interpreter used for PyTorch is a setting (``import/python``),
empty meaning the studio's own. The converted model then opens like any ONNX file, and the import
record (settings, source hash, comparison) is saved in its project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import BadInputError
from studio.core.importers import jobs as import_jobs
from studio.core.jobs.protocol import job_kind
from studio.core.model.prepare import parse_dims
from studio.ui.widgets.dialog_buttons import ok_cancel_buttons

PYTHON_KEY = "import/python"
IMPORT_FILTER = "PyTorch / TFLite models (*.pt *.pt2 *.tflite)"


def python_setting(settings: QSettings) -> str:
    return str(settings.value(PYTHON_KEY, "") or "")


class PythonField(QWidget):
    """A line edit + Browse for the interpreter used to run PyTorch conversions."""

    def __init__(self, value: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit(value)
        self.edit.setPlaceholderText("the studio's own Python (needs the [torch] extra)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Python interpreter with torch")
        if path:
            self.edit.setText(path)

    def value(self) -> str:
        return self.edit.text().strip()


class ImportDialog(QDialog):
    """Static input shapes (prefilled from the source's examples), output path, interpreter."""

    def __init__(
        self, source: str, info: dict[str, Any], python: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Import {Path(source).name}")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{info.get('what', '')}: static input shapes for QNN"))
        form = QFormLayout()
        self.shape_edits: dict[str, QLineEdit] = {}
        for spec in info.get("inputs", []):
            dims = spec.get("example") or [
                d for d in (spec.get("shape") or []) if isinstance(d, int)
            ]
            edit = QLineEdit(",".join(str(d) for d in dims))
            edit.setPlaceholderText("e.g. 1,3,224,224")
            if info.get("kind") == "tflite":
                edit.setReadOnly(True)  # TFLite shapes are fixed in the flatbuffer
            form.addRow(f"{spec['name']} ({spec.get('dtype', 'float32')})", edit)
            self.shape_edits[spec["name"]] = edit
        self.output = QLineEdit(str(Path(source).with_suffix(".onnx")))
        form.addRow("ONNX file to write", self.output)
        self.python = PythonField(python)
        if info.get("kind") != "tflite":
            form.addRow("Python interpreter", self.python)
        layout.addLayout(form)
        layout.addWidget(ok_cancel_buttons(self, "Convert"))
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c0392b")
        layout.addWidget(self.error)

    def input_shapes(self) -> dict[str, list[int]]:
        """The shapes typed in; a BadInputError names the input that is not N,N,N."""
        return {
            name: parse_dims(edit.text().strip(), f"input '{name}'")
            for name, edit in self.shape_edits.items()
        }

    def accept(self) -> None:
        try:
            self.input_shapes()
        except BadInputError as exc:
            self.error.setText(str(exc))
            return
        super().accept()


class Importer:
    """Drives one import from the main window: inspect job -> dialog -> convert job -> open."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.last_record: dict[str, Any] | None = None

    def start(self, source: str) -> Any:
        python = python_setting(self.window.settings)
        handle = self.window.ctx.jobs.submit(
            job_kind(import_jobs.inspect),
            {"source": source, "python": python or None},
            title=f"Read inputs of {Path(source).name}",
            lane="import",
            supersede=True,
        )
        handle.result.connect(lambda info: self._ask(source, info))
        handle.error.connect(lambda title, message: self._failed(source, message))
        return handle

    def dialog_for(self, source: str, info: dict[str, Any]) -> ImportDialog:
        return ImportDialog(source, info, python_setting(self.window.settings), self.window)

    def _ask(self, source: str, info: dict[str, Any]) -> None:
        dialog = self.dialog_for(source, info)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.convert(source, dialog.output.text(), dialog.input_shapes(), dialog.python.value())

    def convert(self, source: str, output: str, shapes: dict[str, list[int]], python: str) -> Any:
        if python != python_setting(self.window.settings):
            self.window.settings.setValue(PYTHON_KEY, python)
        handle = self.window.ctx.jobs.submit(
            job_kind(import_jobs.convert),
            {"source": source, "output": output, "input_shapes": shapes, "python": python or None},
            title=f"Import {Path(source).name}",
            lane="import",
            supersede=True,
        )
        handle.result.connect(self._converted)
        handle.error.connect(lambda title, message: self._failed(source, message))
        return handle

    def _converted(self, record: dict[str, Any]) -> None:
        self.last_record = record
        self.window.projects.open_model_file(record["output"])
        project = self.window.projects.project
        if project is not None:  # kept verbatim in the project file (an extra section)
            project.extra["import"] = record
            self.window.projects.mark_dirty()
        summary = record["check"]["summary"]
        self.window.statusBar().showMessage(summary, 30000)

        def shown_after_load(_graph: Any = None) -> None:  # "Opened ..." would cover it
            self.window.ctx.model_changed.disconnect(shown_after_load)
            QTimer.singleShot(0, lambda: self.window.statusBar().showMessage(summary, 30000))

        self.window.ctx.model_changed.connect(shown_after_load)
        if not record["check"]["agrees"]:
            from studio.ui.shell import dialogs

            dialogs.show_error(
                self.window, "Converted model disagrees with its source", record["check"]["summary"]
            )

    def maybe_reimport(self, project: Any) -> Any:
        """Convert again, with the saved settings, when the project's import source changed."""
        from studio.core.importers.convert import needs_reimport

        record = (project.extra or {}).get("import") if project is not None else None
        if not isinstance(record, dict) or not needs_reimport(record):
            return None
        settings = record.get("settings", {})
        self.window.statusBar().showMessage(f"{Path(record['source']).name} changed: re-importing")
        return self.convert(
            record["source"],
            record["output"],
            settings.get("input_shapes") or {},
            settings.get("python") or "",
        )

    def _failed(self, source: str, message: str) -> None:
        from studio.ui.shell import dialogs

        self.window.statusBar().showMessage(f"Could not import {Path(source).name}", 6000)
        dialogs.show_error(self.window, "Cannot import model", message)


def ask_python(window: Any) -> None:
    """File ▸ Python for PyTorch import…: the interpreter setting on its own."""
    dialog = QDialog(window)
    dialog.setWindowTitle("Python interpreter for PyTorch import")
    layout = QVBoxLayout(dialog)
    layout.addWidget(
        QLabel("Interpreter with torch, onnx and onnxscript (empty: the studio's own)")
    )
    field = PythonField(python_setting(window.settings))
    layout.addWidget(field)
    layout.addWidget(ok_cancel_buttons(dialog))
    if dialog.exec() == QDialog.DialogCode.Accepted:
        window.settings.setValue(PYTHON_KEY, field.value())
