"""The studio's small dialogs: errors, about, unsaved changes, recovery, running jobs, shortcuts.

Each prompt is a plain function returning a plain value so the main window reads like the decision
it makes, and tests can replace one function (or ``ErrorDialog.exec``) instead of driving a modal.
The error dialog shows the one-line message a user can act on; the traceback, if any, stays behind
"Show details" (DESIGN.md: no traceback reaches a user unless they ask).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio import __version__


class ErrorDialog(QDialog):
    """A one-line message, the full text beneath it, and expandable technical details."""

    def __init__(
        self, title: str, message: str, details: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("errorDialog")
        self.setWindowTitle(title)
        self.title_text = title
        self.message = message
        self.details = details
        self.setMinimumWidth(480)

        icon = QLabel(self)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical).pixmap(40, 40)
        )
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        headline = QLabel(title, self)
        headline.setObjectName("errorHeadline")
        body = QLabel(message, self)
        body.setObjectName("errorMessage")
        body.setWordWrap(True)
        body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        text_col = QVBoxLayout()
        text_col.setSpacing(6)
        text_col.addWidget(headline)
        text_col.addWidget(body)
        top = QHBoxLayout()
        top.setSpacing(14)
        top.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        top.addLayout(text_col, 1)

        self.details_view = QPlainTextEdit(details, self)
        self.details_view.setObjectName("errorDetails")
        self.details_view.setReadOnly(True)
        self.details_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details_view.setMinimumHeight(180)
        self.details_view.setVisible(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, self)
        buttons.accepted.connect(self.accept)
        self.details_button = QPushButton("Show details", self)
        self.details_button.setCheckable(True)
        self.details_button.setEnabled(bool(details))
        self.details_button.toggled.connect(self._toggle_details)
        copy = QPushButton("Copy", self)
        copy.setToolTip("Copy the message and details to the clipboard")
        copy.clicked.connect(self._copy)
        row = QHBoxLayout()
        row.addWidget(self.details_button)
        row.addWidget(copy)
        row.addStretch(1)
        row.addWidget(buttons)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 14)
        layout.setSpacing(12)
        layout.addLayout(top)
        layout.addWidget(self.details_view, 1)
        layout.addLayout(row)

    def _toggle_details(self, shown: bool) -> None:
        self.details_view.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")
        self.adjustSize()

    def _copy(self) -> None:
        text = f"{self.title_text}\n{self.message}"
        if self.details:
            text += f"\n\n{self.details}"
        QGuiApplication.clipboard().setText(text)


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> ErrorDialog:
    """Show a modal error; returns the dialog (after it closed) so callers and tests can read it."""
    dialog = ErrorDialog(title, message, details, parent)
    dialog.exec()
    return dialog


def ask_unsaved_changes(parent: QWidget | None, name: str) -> str:
    """Ask what to do with unsaved work: returns "save", "discard" or "cancel"."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Unsaved changes")
    box.setText(f"Save the changes to {name}?")
    box.setInformativeText("Your changes will be lost if you don't save them.")
    box.setStandardButtons(
        QMessageBox.StandardButton.Save
        | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel
    )
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    if answer == QMessageBox.StandardButton.Save:
        return "save"
    if answer == QMessageBox.StandardButton.Discard:
        return "discard"
    return "cancel"


def ask_restore_recovery(parent: QWidget | None, project_name: str, when: str) -> bool:
    """Offer to restore autosaved work that is newer than the saved project."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Restore unsaved work?")
    box.setText(f"{project_name} has unsaved work from {when}.")
    box.setInformativeText(
        "The studio may have closed without saving. Restore the autosaved version?"
    )
    restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Open saved version", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(restore)
    box.exec()
    return box.clickedButton() is restore


def ask_model_problem(parent: QWidget | None, message: str, missing: bool) -> str:
    """A project's model moved or changed: "locate" it, "continue" with it, or "cancel"."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Model moved" if missing else "Model changed")
    box.setText(message[:1].upper() + message[1:] + ".")
    box.setInformativeText(
        "Locate the model file to keep this project's decisions."
        if missing
        else "Per-tensor edits, pins and runs were made on the earlier version: use them with the "
        "changed model, or locate the original file?"
    )
    locate = box.addButton("Locate model…", QMessageBox.ButtonRole.AcceptRole)
    keep = None if missing else box.addButton("Use changed model", QMessageBox.ButtonRole.YesRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(locate)
    box.exec()
    clicked = box.clickedButton()
    if clicked is locate:
        return "locate"
    return "continue" if keep is not None and clicked is keep else "cancel"


def ask_model_file(parent: QWidget | None, start: str) -> str:
    """Choose an ONNX file (empty string when the user cancels)."""
    from PySide6.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(parent, "Locate the model", start, "ONNX models (*.onnx)")
    return path


def ask_stop_jobs(parent: QWidget | None, count: int) -> bool:
    """Confirm quitting while jobs run (they are cancelled and their processes stopped)."""
    noun = "job is" if count == 1 else "jobs are"
    answer = QMessageBox.question(
        parent,
        "Jobs running",
        f"{count} {noun} still running. Quit and cancel {'it' if count == 1 else 'them'}?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class AboutDialog(QDialog):
    """Versions of everything that shapes a result: the studio, Qt, ONNX, ORT, onnxruntime-qnn
    and the QNN SDK it carries, the backends (with why each is or is not available) and the
    target device. The backends come from the window's probe; without one they are probed here,
    off the UI thread."""

    def __init__(self, parent: QWidget | None = None, backends: list | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About npu-studio")
        self.resize(640, 560)
        self.text = QTextBrowser(self)
        self.text.setObjectName("aboutText")
        self.text.setOpenLinks(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        copy = buttons.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.toPlainText()))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.backends = backends
        self.refresh()

    def facts(self) -> dict:
        import PySide6
        from PySide6.QtCore import qVersion

        from studio.core.workflows.about import about_facts

        facts = about_facts(self.backends)
        facts = {
            "npu-studio": facts.pop("npu-studio"),
            "Qt": qVersion(),
            "PySide6": PySide6.__version__,
            **facts,
        }
        return facts

    def refresh(self) -> None:
        import html

        facts = self.facts()
        rows = []
        for key, value in facts.items():
            if key == "backends":
                continue
            if key == "target device":
                name = value.get("name")
                value = name if name else value.get("reason", "not chosen")
            rows.append(
                f"<tr><th align='left'>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
            )
        if self.backends is None:
            backends = "<p><i>Probing backends…</i></p>"
        else:
            items = "".join(
                f"<li><b>{html.escape(b['name'])}</b>: "
                f"{'available' if b['available'] else 'not available'}"
                f"{' — ' + html.escape(b['why']) if b['why'] else ''}</li>"
                for b in facts["backends"]
            )
            backends = f"<ul>{items}</ul>"
        self.text.setHtml(
            f"<h3>npu-studio {html.escape(__version__)}</h3>"
            "<p>Take an ONNX model to a Qualcomm NPU (QNN HTP via onnxruntime-qnn) and see why it "
            "is fast or slow, accurate or not. Every action has an <code>npu-studio</code> "
            "command; run <code>npu-studio --help</code>.</p>"
            f"<table cellspacing='0' cellpadding='3'>{''.join(rows)}</table>"
            f"<h4>Backends</h4>{backends}"
        )

    def set_backends(self, statuses: list) -> None:
        self.backends = list(statuses)
        self.refresh()


def _known_backends(parent: QWidget | None) -> list | None:
    dock = getattr(parent, "backend_dock", None)
    panel = dock.widget() if dock is not None else None
    model = getattr(panel, "model", None)
    statuses = getattr(model, "statuses", None)
    return list(statuses) if statuses else None


def show_about(parent: QWidget | None) -> AboutDialog:
    """Open the About dialog (non-modal); backends are probed in the background if not known."""
    dialog = AboutDialog(parent, _known_backends(parent))
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if dialog.backends is None:
        import threading

        relay = _BackendRelay(dialog)
        relay.done.connect(dialog.set_backends)

        def probe() -> None:
            from studio.core.engine.registry import probe_backends

            try:
                statuses = probe_backends()
            except Exception:  # noqa: BLE001 - About must open whatever the probe does
                statuses = []
            try:
                relay.done.emit(statuses)
            except RuntimeError:  # the dialog was closed first
                pass

        threading.Thread(target=probe, daemon=True, name="about-probe").start()
    dialog.show()
    return dialog


class _BackendRelay(QObject):
    done = Signal(list)


class ShortcutsDialog(QDialog):
    """A read-only list of the window's keyboard shortcuts, taken from its actions."""

    def __init__(self, rows: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(440, 480)
        tree = QTreeWidget(self)
        tree.setHeaderLabels(["Action", "Shortcut"])
        tree.setRootIsDecorated(False)
        tree.setAlternatingRowColors(True)
        for action, keys in rows:
            QTreeWidgetItem(tree, [action, keys])
        tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree = tree
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tree)
        layout.addWidget(buttons)
