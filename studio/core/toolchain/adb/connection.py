"""Talking to the user's adb server through ``adbutils``, never starting one.

``adbutils`` runs ``adb start-server`` when it cannot connect. The studio must not: a server it
started would outlive it, might be the wrong adb version for the user's SDK, and in CI there is no
adb at all. So the port is checked first (one line, exit 3, when nothing listens) and the client's
connections are made by a subclass that reports a failed connect instead of spawning a server.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from studio.core.errors import BadInputError
from studio.core.toolchain.adb.errors import DeviceNotReadyError, NoAdbServerError

PORT_ENV = "ANDROID_ADB_SERVER_PORT"
HOST_ENV = "ANDROID_ADB_SERVER_HOST"
DEFAULT_PORT = 5037
TARGET_PREFIX = "adb:"


def server_address() -> tuple[str, int]:
    """The adb server's address: ``$ANDROID_ADB_SERVER_HOST`` (127.0.0.1) and ``_PORT`` (5037)."""
    host = os.environ.get(HOST_ENV) or "127.0.0.1"
    text = os.environ.get(PORT_ENV) or str(DEFAULT_PORT)
    try:
        port = int(text)
    except ValueError as exc:
        raise BadInputError(f"{PORT_ENV}={text!r} is not a port number") from exc
    if not 0 < port < 65536:
        raise BadInputError(f"{PORT_ENV}={port} is not a port number")
    return host, port


def is_listening(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def no_server_message(host: str, port: int) -> str:
    return (
        f"no adb server on {host}:{port} ({PORT_ENV}); start it with `adb start-server` "
        "(npu-studio never starts one)"
    )


def adb_client(timeout_s: float = 30.0) -> Any:
    """An ``adbutils.AdbClient`` bound to the running server; NoAdbServerError when none runs."""
    host, port = server_address()
    if not is_listening(host, port):
        raise NoAdbServerError(no_server_message(host, port))
    import adbutils
    from adbutils._adb import AdbConnection

    class _Connection(AdbConnection):
        """A connection that fails instead of running ``adb start-server``."""

        def _safe_connect(self) -> socket.socket:
            try:
                return self._create_socket()
            except adbutils.AdbError as exc:
                raise NoAdbServerError(no_server_message(host, port)) from exc

    class _Client(adbutils.AdbClient):
        def make_connection(self, timeout: float | None = None) -> Any:
            conn = _Connection(self.host, self.port)
            conn.conn.settimeout(timeout or timeout_s)
            return conn

    return _Client(host=host, port=port, socket_timeout=timeout_s)


def parse_target(text: str | None) -> str | None:
    """``adb:SERIAL`` -> SERIAL; None or ``host`` -> None (this machine); else BadInputError."""
    if text is None or text in ("", "host", "local"):
        return None
    if not text.startswith(TARGET_PREFIX) or len(text) == len(TARGET_PREFIX):
        raise BadInputError(
            f"--device {text!r}: expected adb:SERIAL (see `npu-studio devices`) or host"
        )
    return text[len(TARGET_PREFIX) :]


def not_ready_message(serial: str, state: str) -> str:
    if state == "unauthorized":
        return (
            f"device {serial} is unauthorised: unlock it and accept the 'Allow USB debugging?' "
            "prompt (then run `npu-studio devices` again)"
        )
    if state == "offline":
        return f"device {serial} is offline: reconnect the cable or run `adb reconnect offline`"
    return f"device {serial} is '{state}', not ready for commands"


def ready_device(client: Any, serial: str) -> Any:
    """The ``AdbDevice`` for ``serial`` once it is listed in state ``device``."""
    states = {info.serial: info.state for info in client.list()}
    if serial not in states:
        known = ", ".join(sorted(states)) or "none"
        raise DeviceNotReadyError(f"no device {serial} on the adb server (connected: {known})")
    if states[serial] != "device":
        raise DeviceNotReadyError(not_ready_message(serial, states[serial]))
    return client.device(serial)
