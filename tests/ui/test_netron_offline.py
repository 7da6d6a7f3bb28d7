"""Netron, offline: served by the studio on 127.0.0.1 with telemetry off and consent answered, its
page makes no request that leaves the machine (checked in a real QtWebEngine page, against a
control run of netron's own server, whose page does reach out)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from studio.resources import demo_model_path
from studio.ui.graph import netron_tab
from studio.ui.graph.netron_server import OfflineNetron

DEMO = demo_model_path()


@pytest.fixture
def server():
    srv = OfflineNetron(DEMO)
    yield srv
    srv.stop()


def test_served_page_has_telemetry_off_and_consent_answered(server):
    assert server.bound_host() == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(server.url, timeout=5) as response:
        html = response.read().decode()
        cookie = response.headers["Set-Cookie"]
        csp = response.headers["Content-Security-Policy"]
    assert '<meta name="version" content="0.0.0">' in html  # netron: not packaged -> no telemetry
    assert 'name="date"' not in html  # no "please update" after 180 days
    assert f'<meta name="file" content="/data/{DEMO.name}">' in html
    assert cookie.startswith("consent=")
    assert "connect-src 'self'" in csp and "connect-src 'self'" in html
    with urllib.request.urlopen(server.url + "data/" + DEMO.name, timeout=5) as response:
        assert response.read() == DEMO.read_bytes()
    with urllib.request.urlopen(server.url + "browser.js", timeout=5) as response:
        assert b"browser.Host" in response.read()
    for escape in (
        "data/../../pyproject.toml",
        "data/%2e%2e/%2e%2e/pyproject.toml",
        "../server.py",
    ):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + escape, timeout=5)
        assert err.value.code == 404


def _load_and_record(qtbot, url: str) -> tuple[list[str], dict]:
    """Load ``url`` in a fresh off-the-record page; every request it makes, and its state."""
    from PySide6.QtCore import QUrl
    from PySide6.QtWebEngineCore import (
        QWebEnginePage,
        QWebEngineProfile,
        QWebEngineUrlRequestInterceptor,
    )
    from PySide6.QtWebEngineWidgets import QWebEngineView

    class Recorder(QWebEngineUrlRequestInterceptor):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[str] = []

        def interceptRequest(self, info) -> None:  # noqa: N802 - Qt override
            self.urls.append(info.requestUrl().toString())

    recorder = Recorder()
    profile = QWebEngineProfile()  # off the record: no cookies from an earlier run
    profile.setUrlRequestInterceptor(recorder)
    page = QWebEnginePage(profile)
    died = []
    page.renderProcessTerminated.connect(lambda *a: died.append(a))
    view = QWebEngineView()
    view.setPage(page)
    view.resize(900, 700)
    view.show()
    state: dict = {}
    script = (
        "JSON.stringify({nodes: document.querySelectorAll('#canvas g.node').length,"
        " message: (document.getElementById('message-text') || {}).innerText || '',"
        " body: document.body.className})"
    )

    def poll() -> bool:
        page.runJavaScript(script, 0, lambda r: state.update(last=r))
        return (
            bool(died)
            or ('"nodes":0' not in (state.get("last") or '"nodes":0'))
            or ("cookies" in (state.get("last") or ""))
        )

    with qtbot.waitSignal(page.loadFinished, timeout=30000):
        page.load(QUrl(url))
    qtbot.waitUntil(poll, timeout=30000)
    if died:
        pytest.skip("QtWebEngine's render process cannot run here")
    end = time.time() + 3.0  # time for any late request (netron's look-ups run after load)
    while time.time() < end:
        qtbot.wait(100)
    import json

    result = json.loads(state["last"])
    view.close()
    view.setPage(None)
    page.deleteLater()
    qtbot.wait(50)
    return list(recorder.urls), result


def _external(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(("http://127.0.0.1:", "data:", "blob:"))]


def test_netron_page_makes_no_external_request(qtbot, server):
    if not netron_tab.webengine_available():
        pytest.skip("QtWebEngine is not installed here")
    urls, state = _load_and_record(qtbot, server.url)
    assert urls and all(u.startswith(server.url) or u.startswith(("data:", "blob:")) for u in urls)
    assert _external(urls) == []
    assert state["nodes"] > 10  # the demo's graph is drawn
    assert "cookies" not in state["message"]  # no consent prompt

    # control: netron's own server, same page, same detector: it does reach out and prompt
    import netron

    address = netron.start(str(DEMO), address=("127.0.0.1", 0), browse=False)
    try:
        urls, state = _load_and_record(qtbot, f"http://{address[0]}:{address[1]}/")
    finally:
        netron.stop(address)
    assert _external(urls), "the detector saw no external request from stock netron either"
    assert "cookies" in state["message"]


def test_netron_tab_blocks_other_hosts(qtbot, monkeypatch, tmp_path):
    """The tab's web view refuses any request that is not to 127.0.0.1 (belt and braces)."""
    monkeypatch.delenv("NPU_STUDIO_NO_WEBENGINE", raising=False)
    if not netron_tab.webengine_available():
        pytest.skip("QtWebEngine is not installed here")
    tab = netron_tab.NetronTab()
    qtbot.addWidget(tab)
    if not tab._ensure_web_view():
        pytest.skip("QtWebEngine cannot start here")
    from PySide6.QtCore import QUrl

    page = tab.web_view.page()
    with qtbot.waitSignal(page.loadFinished, timeout=30000):
        page.load(QUrl("http://203.0.113.7/offline-check"))  # TEST-NET-3: never routed
    assert tab.interceptor.blocked == ["http://203.0.113.7/offline-check"]
    tab.shutdown()
