"""The Netron tab: the same model in Netron, served on 127.0.0.1 and shown in a QWebEngineView.

Netron's Python package runs a small HTTP server for one file. We bind it to the loopback
interface on an ephemeral port only (never 0.0.0.0: the model must not be reachable from the
network), start it the first time the tab is shown (it costs nothing for users who never look),
and stop it when the model changes or the window closes. Netron's page costs a renderer process
of several GB on a large model, so when the tab stays hidden for :data:`RELEASE_AFTER_MS` the web
view and the server are released; showing the tab again reloads them. Where QtWebEngine is missing or its
Chromium process cannot start (REFERENCE §6: root without --no-sandbox, no GPU, locked-down
machines), the tab offers to open the same local address in the system browser instead.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
RELEASE_AFTER_MS = 60_000  # a hidden Netron page is freed after this long


def webengine_available() -> bool:
    """True when QtWebEngineWidgets imports (and the user has not turned it off)."""
    if os.environ.get("NPU_STUDIO_NO_WEBENGINE"):
        return False
    try:
        import PySide6.QtWebEngineWidgets  # noqa: F401
    except ImportError:
        return False
    return True


class NetronServer:
    """One netron HTTP server for one file, on 127.0.0.1 and a port the OS picks."""

    def __init__(self) -> None:
        self.address: tuple[str, int] | None = None
        self.path: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}/" if self.address else ""

    def start(self, path: str) -> tuple[str, int]:
        import netron

        self.stop()
        address = netron.start(str(path), address=(LOOPBACK, 0), browse=False)
        host, port = address
        if host != LOOPBACK:  # netron must never be asked to listen elsewhere
            netron.stop(address)
            raise RuntimeError(f"netron bound {host}, expected {LOOPBACK}")
        self.address = (host, int(port))
        self.path = str(path)
        return self.address

    def stop(self) -> None:
        if self.address is None:
            return
        try:
            import netron

            netron.stop(self.address)
        except Exception:  # noqa: BLE001 - stopping must never fail a close
            log.exception("stopping netron at %s", self.address)
        self.address = None
        self.path = None

    def running(self) -> bool:
        if self.address is None:
            return False
        import netron

        return bool(netron.status(self.address))


class NetronTab(QWidget):
    """Starts netron lazily on first show; web view where possible, browser button otherwise."""

    started = Signal(str)  # url

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("netronTab")
        self.server = NetronServer()
        self.model_path: str | None = None
        self.web_view: Any = None
        self.use_webengine = webengine_available()
        self.stack = QStackedWidget(self)
        self.message = QLabel("Open a model to see it in Netron.", self)
        self.message.setObjectName("netronMessage")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.fallback = QWidget(self)
        self.fallback_label = QLabel(self.fallback)
        self.fallback_label.setWordWrap(True)
        self.fallback_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.fallback_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.browser_button = QPushButton("Open Netron in the system browser", self.fallback)
        self.browser_button.setObjectName("netronBrowserButton")
        self.browser_button.clicked.connect(self.open_in_browser)
        fb = QVBoxLayout(self.fallback)
        fb.addStretch(1)
        fb.addWidget(self.fallback_label)
        fb.addWidget(self.browser_button, 0, Qt.AlignmentFlag.AlignHCenter)
        fb.addStretch(2)
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.fallback)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.released = 0  # how many times a hidden page was freed (tests, the benchmark)
        self._release_timer = QTimer(self)
        self._release_timer.setSingleShot(True)
        self._release_timer.setInterval(RELEASE_AFTER_MS)
        self._release_timer.timeout.connect(self.release)

    def set_model(self, path: str | None) -> None:
        """Point the tab at a new model; the server restarts when the tab is next shown."""
        if path == self.model_path:
            return
        self.server.stop()
        self.model_path = path
        if self.web_view is not None:
            self.web_view.setUrl(QUrl("about:blank"))
        self.message.setText("Open a model to see it in Netron." if not path else "Loading...")
        self.stack.setCurrentWidget(self.message)
        if path and self.isVisible():
            self.ensure_started()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._release_timer.stop()
        self.ensure_started()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().hideEvent(event)
        if self.web_view is not None or self.server.address is not None:
            self._release_timer.start()

    def set_release_after(self, msecs: int) -> None:
        self._release_timer.setInterval(int(msecs))

    def release(self) -> None:
        """Free the page (its renderer process) and the server while the tab is hidden."""
        if self.isVisible():
            return
        had_page = self.web_view is not None or self.server.address is not None
        self.shutdown()
        self.message.setText(
            "Loading..." if self.model_path else "Open a model to see it in Netron."
        )
        self.stack.setCurrentWidget(self.message)
        if had_page:
            self.released += 1

    def ensure_started(self) -> None:
        if not self.model_path or self.server.address is not None:
            return
        try:
            self.server.start(self.model_path)
        except Exception as exc:  # noqa: BLE001 - shown in the tab, never a crash
            self.message.setText(f"Netron could not start: {exc}")
            self.stack.setCurrentWidget(self.message)
            return
        if self.use_webengine and self._ensure_web_view():
            self.web_view.setUrl(QUrl(self.server.url))
            self.stack.setCurrentWidget(self.web_view)
        else:
            self._show_fallback("QtWebEngine is not available here.")
        self.started.emit(self.server.url)

    def _ensure_web_view(self) -> bool:
        if self.web_view is not None:
            return True
        try:
            from PySide6.QtWebEngineWidgets import QWebEngineView

            view = QWebEngineView(self)
        except Exception as exc:  # noqa: BLE001 - fall back to the system browser
            log.warning("QtWebEngine cannot start: %s", exc)
            self.use_webengine = False
            return False
        view.page().renderProcessTerminated.connect(self._on_render_died)
        self.web_view = view
        self.stack.addWidget(view)
        return True

    def _on_render_died(self, status: Any, code: int) -> None:
        log.warning("QtWebEngine render process ended (%s, %s)", status, code)
        self.use_webengine = False
        self._show_fallback("The embedded browser stopped (Chromium could not run here).")

    def _show_fallback(self, reason: str) -> None:
        self.fallback_label.setText(
            f"{reason}\nNetron is serving this model on your machine only, at\n{self.server.url}"
        )
        self.stack.setCurrentWidget(self.fallback)

    def open_in_browser(self) -> bool:
        if not self.server.url:
            self.ensure_started()
        return bool(self.server.url) and QDesktopServices.openUrl(QUrl(self.server.url))

    def shutdown(self) -> None:
        """Stop the server and destroy the web view now (Chromium must not outlive its profile)."""
        self._release_timer.stop()
        self.server.stop()
        view, self.web_view = self.web_view, None
        if view is not None:
            import shiboken6

            self.stack.removeWidget(view)
            view.stop()
            if shiboken6.isValid(view):
                shiboken6.delete(view)
