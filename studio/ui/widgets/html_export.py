"""Print a self-contained HTML file (the report) to PDF or PNG with QtWebEngine, offscreen.

Why Chromium and not QTextDocument: the report uses CSS grid, flex and inline SVG, which only a
browser engine lays out as the reader sees it. Works headless (``QT_QPA_PLATFORM=offscreen``);
creates the QApplication itself when there is none (the CLI), which needs QtWebEngine imported
and, as root, Chromium's --no-sandbox flag set first (``studio.app.prepare_environment``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from studio.core.errors import BackendUnavailableError


def _app():
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.app import prepare_environment

    prepare_environment()
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(sys.argv[:1])


def _wait(app, done, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > end:
            raise BackendUnavailableError(f"QtWebEngine did not finish {what} in {timeout_s:g} s")
        app.processEvents()
        time.sleep(0.01)


def export_html(
    html_path: str | Path,
    *,
    pdf: str | Path | None = None,
    png: str | Path | None = None,
    width: int = 1150,
    max_height: int = 20000,
    timeout_s: float = 90.0,
) -> dict[str, str]:
    """Load ``html_path`` and write ``pdf`` (A4, backgrounds printed) and/or ``png`` (full page,
    ``width`` px wide, at most ``max_height`` tall). Returns the paths written."""
    app = _app()
    try:
        from PySide6.QtCore import QMarginsF, QUrl
        from PySide6.QtGui import QPageLayout, QPageSize
        from PySide6.QtWebEngineCore import QWebEngineSettings
        from PySide6.QtWebEngineWidgets import QWebEngineView
    except ImportError as exc:
        raise BackendUnavailableError(f"QtWebEngine is not available: {exc}") from exc
    view = QWebEngineView()
    view.settings().setAttribute(QWebEngineSettings.WebAttribute.PrintElementBackgrounds, True)
    view.resize(width, 900)
    view.show()
    loaded: list[bool] = []
    view.loadFinished.connect(loaded.append)
    view.setUrl(QUrl.fromLocalFile(str(Path(html_path).resolve())))
    _wait(app, lambda: bool(loaded), timeout_s, f"loading {html_path}")
    if not loaded[0]:
        raise BackendUnavailableError(f"QtWebEngine could not load {html_path}")
    written: dict[str, str] = {}
    if png is not None:
        height: list[int] = []
        view.page().runJavaScript(
            "document.documentElement.scrollHeight", 0, lambda h: height.append(int(h or 0))
        )
        _wait(app, lambda: bool(height), timeout_s, "measuring the page")
        view.resize(width, max(200, min(height[0], max_height)))
        end = time.monotonic() + 3.0  # let Chromium lay out and paint the resized page
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        view.grab().save(str(png))
        written["png"] = str(png)
    if pdf is not None:
        done: list[bool] = []
        view.page().pdfPrintingFinished.connect(lambda _path, ok: done.append(ok))
        layout = QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(10, 10, 10, 10),
            QPageLayout.Unit.Millimeter,
        )
        Path(pdf).parent.mkdir(parents=True, exist_ok=True)
        view.page().printToPdf(str(Path(pdf).resolve()), layout)
        _wait(app, lambda: bool(done), timeout_s, "printing the PDF")
        if not done[0]:
            raise BackendUnavailableError(f"QtWebEngine could not print {pdf}")
        written["pdf"] = str(pdf)
    view.close()
    view.deleteLater()
    app.processEvents()
    return written
