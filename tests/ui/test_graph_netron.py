"""The Netron tab: served on 127.0.0.1 only, lazily, shown embedded or opened in the browser."""

from __future__ import annotations

import threading
import urllib.request

import pytest
from PySide6.QtGui import QDesktopServices

from studio.core.model.graph import ModelGraph
from studio.ui.graph import netron_tab
from studio.ui.graph.workspace import GraphWorkspace
from studio.ui.shell.context import StudioContext


def _server_socket_host(address):
    """The host the netron server's listening socket is really bound to."""
    import netron.server as server

    for thread in threading.enumerate():
        if isinstance(thread, server._HTTPServerThread) and thread.address == address:
            return thread.server.socket.getsockname()[0]
    raise AssertionError(f"no netron server thread at {address}")


@pytest.fixture
def workspace(qtbot, monkeypatch, conv_model):
    monkeypatch.setenv("NPU_STUDIO_NO_WEBENGINE", "1")
    ctx = StudioContext()
    ws = GraphWorkspace(ctx)
    qtbot.addWidget(ws)
    ws.resize(1000, 700)
    ws.show()
    with qtbot.waitSignal(ws.layout_ready, timeout=10000):
        ctx.set_model(ModelGraph.load(conv_model), str(conv_model))
    yield ws
    ws.shutdown()


def test_lazy_loopback_server_and_browser_fallback(qtbot, workspace, monkeypatch, conv_model):
    tab = workspace.netron
    assert tab.server.address is None  # nothing runs until the tab is shown
    with qtbot.waitSignal(tab.started, timeout=10000) as started:
        workspace.tabs.setCurrentWidget(tab)
    url = started.args[0]
    host, port = tab.server.address
    assert host == "127.0.0.1" and port > 0
    assert url == f"http://127.0.0.1:{port}/"
    assert _server_socket_host(tab.server.address) == "127.0.0.1"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert b"netron" in response.read().lower()
    with urllib.request.urlopen(url + "data/" + conv_model.name, timeout=5) as response:
        assert response.read() == conv_model.read_bytes()
    assert tab.stack.currentWidget() is tab.fallback
    assert "127.0.0.1" in tab.fallback_label.text()
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda u: opened.append(u.toString()) or True)
    tab.browser_button.click()
    assert opened == [url]
    # a new model restarts the server on the next show; shutdown stops it
    tab.set_model(None)
    assert tab.server.address is None
    tab.set_model(str(conv_model))
    assert tab.server.address is not None  # visible: restarted at once
    address = tab.server.address
    workspace.shutdown()
    import netron

    qtbot.waitUntil(lambda: not netron.status(address), timeout=3000)


def test_embedded_view_loads_netron(qtbot, workspace, monkeypatch):
    monkeypatch.delenv("NPU_STUDIO_NO_WEBENGINE")
    if not netron_tab.webengine_available():
        pytest.skip("QtWebEngine is not installed here")
    tab = workspace.netron
    tab.use_webengine = True
    with qtbot.waitSignal(tab.started, timeout=10000):
        workspace.tabs.setCurrentWidget(tab)
    if not tab.use_webengine:  # Chromium could not start: the fallback must be on screen
        assert tab.stack.currentWidget() is tab.fallback
        return
    view = tab.web_view
    assert tab.stack.currentWidget() is view
    with qtbot.waitSignal(view.loadFinished, timeout=30000) as loaded:
        pass
    assert loaded.args[0] is True
    assert view.url().host() == "127.0.0.1"


def test_hidden_tab_releases_its_page_and_reloads_when_shown(qtbot, workspace):
    tab = workspace.netron
    tab.set_release_after(50)
    with qtbot.waitSignal(tab.started, timeout=10000):
        workspace.tabs.setCurrentWidget(tab)
    address = tab.server.address
    assert address is not None
    workspace.tabs.setCurrentIndex(0)  # back to the graph: the Netron tab is hidden
    qtbot.waitUntil(lambda: tab.released == 1, timeout=3000)
    import netron

    assert tab.server.address is None and tab.web_view is None
    qtbot.waitUntil(lambda: not netron.status(address), timeout=3000)
    with qtbot.waitSignal(tab.started, timeout=10000):  # shown again: served again
        workspace.tabs.setCurrentWidget(tab)
    assert tab.server.address is not None
    qtbot.wait(150)
    assert tab.released == 1  # visible pages are never released
