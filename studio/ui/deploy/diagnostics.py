"""Help -> Diagnostics: ``npu-studio doctor`` in a window (run as a job, never on the UI thread)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

_COLOURS = {"ok": "#15803d", "missing": "#b91c1c", "warning": "#b45309", "info": "#4b5563"}


def checks_html(checks: list[dict[str, Any]]) -> str:
    rows, group = [], None
    for c in checks:
        if c["group"] != group:
            group = c["group"]
            rows.append(f"<tr><td colspan=3><h3>{html.escape(group)}</h3></td></tr>")
        fix = (
            f"<br><i>→ {html.escape(c['fix'])}</i>" if c.get("fix") and c["status"] != "ok" else ""
        )
        rows.append(
            f"<tr><td style='color:{_COLOURS.get(c['status'], '#000')}'><b>{c['status']}</b></td>"
            f"<td>{html.escape(c['name'])}</td><td>{html.escape(c['detail'])}{fix}</td></tr>"
        )
    return "<table cellspacing=4>" + "".join(rows) + "</table>"


class DiagnosticsDialog(QDialog):
    """The installation check, each item with what to do when it is missing."""

    def __init__(self, jobs: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Diagnostics")
        self.resize(900, 640)
        self.view = QTextBrowser(self)
        self.view.setObjectName("diagnostics")
        self.view.setHtml("<p>Checking QNN tools, libraries, versions and adb…</p>")
        self.checks: list[dict[str, Any]] | None = None
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        layout.addWidget(buttons)

        def work(ctx: Any) -> Any:
            from studio.core.toolchain.doctor import run_doctor

            return [c.to_json() for c in run_doctor()]

        if jobs is None:
            self._show(work(None))
            return
        self.handle = jobs.submit_callable(work, title="Diagnostics", lane="diagnostics")
        self.handle.result.connect(self._show)
        self.handle.error.connect(lambda t, m: self.view.setPlainText(f"{t}: {m}"))

    def _show(self, checks: Any) -> None:
        self.checks = list(checks)
        self.view.setHtml(checks_html(self.checks))


def show_diagnostics(window: Any) -> DiagnosticsDialog:
    dialog = DiagnosticsDialog(getattr(window.ctx, "jobs", None), window)
    dialog.open()
    return dialog
