"""Netron's static viewer served offline: our own loopback HTTP server over netron's files.

Why not ``netron.start``: the page it serves is the packaged Netron, which on first load asks
ipinfo.io where the user is, shows "This app uses cookies to report errors and anonymous usage
information. Accept", and then sends page views and errors to Google Analytics (netron 9.3's
``browser.js``: ``consent()`` and ``telemetry()``, gated on the page's ``version`` meta and the
``consent`` cookie). An offline studio must do none of that. So this server, serving the same
files, changes three things in ``index.html`` and its response and nothing in netron's code:

- the ``version`` meta is ``0.0.0``: Netron treats the page as a development build and never
  starts its telemetry (no analytics beacons, no error reports);
- the response sets the ``consent`` cookie: the consent prompt is answered ("no telemetry": there
  is none to accept) and the ipinfo.io look-up that precedes it never happens;
- the ``date`` meta is dropped (Netron blocks a page older than 180 days with "Please update"),
  and the Content-Security-Policy gains ``connect-src 'self'``, so even a future Netron that
  tried to reach the network from this page would be refused by the browser itself.

It listens on 127.0.0.1 only, on a port the OS picks, and serves the one model's folder under
``/data/`` (Netron asks for external-data files beside the model by name).
"""

from __future__ import annotations

import http.server
import logging
import re
import threading
import time
import urllib.parse
from pathlib import Path

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
CSP = (
    "default-src 'self' data: blob:; script-src 'self'; frame-src 'none'; "
    "connect-src 'self' data: blob:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'"
)
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
}


def netron_static_dir() -> Path:
    """Where netron's viewer files are (the Python package's own folder, also when frozen)."""
    import netron

    return Path(netron.__file__).resolve().parent


def offline_index(html: str, model_name: str) -> str:
    """Netron's index.html with telemetry off, no age check, a stricter CSP, and the model."""
    meta = "\n".join(
        [
            '<meta name="type" content="Python">',
            '<meta name="version" content="0.0.0">',
            f'<meta name="file" content="/data/{urllib.parse.quote(model_name)}">',
            f'<meta name="identifier" content="{_attr(model_name)}">',
        ]
    )
    html = re.sub(r'<meta name="version" content="[^"]*">', lambda _: meta, html, count=1)
    html = re.sub(r'<meta name="date" content="[^"]*">\s*', "", html)
    return re.sub(
        r'<meta http-equiv="Content-Security-Policy" content="[^"]*">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        html,
        count=1,
    )


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


class _Handler(http.server.BaseHTTPRequestHandler):
    static: Path
    model: Path

    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
        if path in ("/", "/index.html"):
            html = (self.static / "index.html").read_text(encoding="utf-8")
            body = offline_index(html, self.model.name).encode("utf-8")
            consent = (
                f"consent={int(time.time() * 1000)}; Path=/; Max-Age=31536000; SameSite=Strict"
            )
            self._send(200, STATIC_TYPES[".html"], body, [("Set-Cookie", consent)])
            return
        if path.startswith("/data/"):
            target = _inside(self.model.parent, path[len("/data/") :])
            if target is not None:
                self._send(200, "application/octet-stream", target.read_bytes())
                return
        else:
            target = _inside(self.static, path.lstrip("/"))
            if target is not None and target.suffix in STATIC_TYPES:
                self._send(200, STATIC_TYPES[target.suffix], target.read_bytes())
                return
        self._send(404, "text/plain", b"not found")

    def _send(self, status: int, ctype: str, body: bytes, extra: list | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        for key, value in extra or []:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server API
        log.debug("netron: " + format, *args)


def _inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` when it is a file inside ``root`` (no ``..`` escapes), else None."""
    try:
        target = (root / relative).resolve()
    except (OSError, ValueError):
        return None
    if target.is_file() and target.is_relative_to(root.resolve()):
        return target
    return None


class OfflineNetron:
    """One server for one model file, on 127.0.0.1 and an ephemeral port, in a daemon thread."""

    def __init__(self, model_path: str | Path) -> None:
        handler = type(
            "NetronHandler",
            (_Handler,),
            {"static": netron_static_dir(), "model": Path(model_path).resolve()},
        )
        self.httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.address: tuple[str, int] = (str(host), int(port))
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            daemon=True,
            name=f"netron-{port}",
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}/"

    def bound_host(self) -> str:
        """The host the listening socket is really bound to (for checks and tests)."""
        return str(self.httpd.socket.getsockname()[0])

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=2)
