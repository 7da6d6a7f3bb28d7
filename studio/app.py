"""QApplication start-up: environment for QtWebEngine, theme, the main window, files to open.

Order matters (REFERENCE §6): Chromium's ``--no-sandbox`` flag must be in the environment, and
QtWebEngineWidgets imported, before the QApplication exists; otherwise the Netron tab cannot start
when running as root (CI, containers).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence


def prepare_environment() -> None:
    """Set what Qt reads at start-up; safe to call more than once."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
        if "--no-sandbox" not in flags.split():
            os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --no-sandbox").strip()
    try:  # noqa: SIM105 - optional: without it the Netron tab falls back to the browser
        import PySide6.QtWebEngineWidgets  # noqa: F401
    except ImportError:
        pass


def run_app(paths: Sequence[str] = ()) -> int:
    """Open the studio window (on ``paths`` if given) and run the event loop; returns exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prepare_environment()
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("npu-studio")
    QCoreApplication.setApplicationName("npu-studio")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from studio.ui.shell.main_window import MainWindow
    from studio.ui.widgets.theme import apply_theme

    apply_theme(app)
    window = open_window(MainWindow(), paths)  # noqa: F841 - kept alive by this frame
    return int(app.exec())


def open_window(window, paths: Sequence[str] = ()):  # noqa: ANN001 - a MainWindow
    """Show ``window`` on ``paths[0]`` (or, with none, the welcome page and any crashed work).

    Opening a model offers back its autosaved untitled project (ProjectController), so a crash
    is recovered whichever way the studio was started."""
    window.show()
    if paths:
        window.open_path(os.path.abspath(paths[0]))
    else:
        window.projects.offer_orphan_recovery()
    return window
