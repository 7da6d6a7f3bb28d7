"""A fake adb server on 127.0.0.1 that speaks adb's real smart-socket protocol.

It stands in for ``adb server`` + a phone so that the studio's adb code, and ``adbutils`` under it,
run unchanged in CI. What it implements is what adb's SERVICES.TXT and SYNC.TXT document:

* every request is ``%04x`` length + ASCII payload; the reply is ``OKAY`` or ``FAIL`` + ``%04x``
  length + message;
* host services: ``host:version``, ``host:devices``, ``host:devices-l``, ``host:transport:SERIAL``,
  ``host:tport:serial:SERIAL`` (replies OKAY + an 8-byte transport id, used by adb >= 1.0.41),
  ``host-serial:SERIAL:get-state`` / ``features``;
* after a transport is chosen, the device services ``shell:CMD`` (raw output, then the socket is
  closed) and ``sync:`` with STAT, LIST, SEND (DATA chunks, DONE + mtime, OKAY/FAIL) and RECV
  (DATA chunks, DONE, or FAIL + message), QUIT.

A device is scripted: its file system is a folder on the host (``root``), ``getprop`` answers from
``props``, a few shell built-ins (mkdir, rm, cat, grep -sH, df, chmod, ls, echo, cd, VAR=value)
act on that folder, and ``handlers`` map a command word (``qnn-net-run``) to a Python function
that plays the program. Unauthorised and offline devices refuse their transport with adb's own
messages. Every request the server received is kept in ``requests`` so that tests can check it.
"""

from __future__ import annotations

import fnmatch
import glob
import shlex
import socket
import socketserver
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

EXIT_MARK = "; echo X4EXIT:$?"  # adbutils' shell2 appends this to learn the exit status

ShellResult = tuple[bytes, int]
Handler = Callable[["FakeDevice", list[str], str], ShellResult]

UNAUTHORIZED = (
    "device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
    "Try 'adb kill-server' if that seems wrong.\n"
    "Otherwise check for a confirmation dialog on your device."
)


@dataclass
class FakeDevice:
    """One scripted phone: serial, state, properties, a host folder as its file system."""

    serial: str
    root: Path
    state: str = "device"  # device | unauthorized | offline
    props: dict[str, str] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    free_kb: int = 50_000_000  # what df reports for /data
    fail_push: str | None = None  # a SEND into a path containing this fails ("No space left")
    tags: dict[str, str] = field(default_factory=dict)
    shell_log: list[str] = field(default_factory=list)
    cwd: str = "/"

    def local(self, remote: str) -> Path:
        """The host path that stands for ``remote`` on the device."""
        remote = remote if remote.startswith("/") else f"{self.cwd.rstrip('/')}/{remote}"
        return self.root / remote.lstrip("/")

    # ----- the shell -------------------------------------------------------------------------
    def run_shell(self, command: str) -> bytes:
        """What ``shell:COMMAND`` writes back (stdout and stderr mixed, as adb's v1 shell does)."""
        self.shell_log.append(command)
        report_exit = command.endswith(EXIT_MARK)
        if report_exit:
            command = command[: -len(EXIT_MARK)]
        self.cwd = "/"
        out, code = b"", 0
        for part in command.split(" && "):
            out_part, code = self._run_one(part.strip())
            out += out_part
            if code != 0:
                break
        if report_exit:
            out += f"X4EXIT:{code}\n".encode()
        return out

    def _run_one(self, command: str) -> ShellResult:
        argv = shlex.split(command)
        while argv and "=" in argv[0] and not argv[0].startswith(("/", ".")):
            argv = argv[1:]  # VAR=value prefixes: the scripted programs ignore the environment
        if not argv:
            return b"", 0
        word = argv[0].rsplit("/", 1)[-1]
        if word in self.handlers:
            return self.handlers[word](self, argv, command)
        builtin = getattr(self, f"_sh_{word.replace('-', '_')}", None)
        if builtin is None:
            return f"/system/bin/sh: {argv[0]}: inaccessible or not found\n".encode(), 127
        return builtin(argv)

    def _sh_getprop(self, argv: list[str]) -> ShellResult:
        if len(argv) > 1:
            return (self.props.get(argv[1], "") + "\n").encode(), 0
        return "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())).encode(), 0

    def _sh_cd(self, argv: list[str]) -> ShellResult:
        target = self.local(argv[1])
        if not target.is_dir():
            return f"/system/bin/sh: cd: {argv[1]}: No such file or directory\n".encode(), 2
        self.cwd = argv[1]
        return b"", 0

    def _sh_mkdir(self, argv: list[str]) -> ShellResult:
        for path in (a for a in argv[1:] if not a.startswith("-")):
            self.local(path).mkdir(parents=True, exist_ok=True)
        return b"", 0

    def _sh_rm(self, argv: list[str]) -> ShellResult:
        import shutil

        for path in (a for a in argv[1:] if not a.startswith("-")):
            target = self.local(path)
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        return b"", 0

    def _sh_chmod(self, argv: list[str]) -> ShellResult:
        return b"", 0

    def _sh_echo(self, argv: list[str]) -> ShellResult:
        return (" ".join(argv[1:]) + "\n").encode(), 0

    def _expand(self, pattern: str) -> list[str]:
        if not any(c in pattern for c in "*?["):
            return [pattern]
        found = glob.glob(str(self.local(pattern)))
        return sorted("/" + str(Path(p).relative_to(self.root)) for p in found)

    def _sh_cat(self, argv: list[str]) -> ShellResult:
        out, code = b"", 0
        for pattern in argv[1:]:
            for path in self._expand(pattern):
                target = self.local(path)
                if target.is_file():
                    out += target.read_bytes()
                else:
                    out += f"cat: {path}: No such file or directory\n".encode()
                    code = 1
        return out, code

    def _sh_grep(self, argv: list[str]) -> ShellResult:
        """Only ``grep -sH . FILES...``: every non-empty line as ``path:line``."""
        files = [a for a in argv[1:] if not a.startswith("-")][1:]
        out = []
        for pattern in files:
            for path in self._expand(pattern):
                target = self.local(path)
                if target.is_file():
                    for line in target.read_text(errors="replace").splitlines():
                        if line:
                            out.append(f"{path}:{line}\n")
        return "".join(out).encode(), 0 if out else 1

    def _sh_ls(self, argv: list[str]) -> ShellResult:
        names = []
        for pattern in (a for a in argv[1:] if not a.startswith("-")) or ["."]:
            target = self.local(pattern)
            if target.is_dir():
                names.extend(sorted(p.name for p in target.iterdir()))
            elif target.exists():
                names.append(pattern)
            else:
                return f"ls: {pattern}: No such file or directory\n".encode(), 1
        return "".join(n + "\n" for n in names).encode(), 0

    def _sh_df(self, argv: list[str]) -> ShellResult:
        total = max(self.free_kb * 2, 1)
        used = total - self.free_kb
        lines = "Filesystem 1K-blocks Used Available Use% Mounted on\n"
        pct = int(100 * used / total)
        lines += f"/dev/block/dm-48 {total} {used} {self.free_kb} {pct}% /data\n"
        return lines.encode(), 0


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                raise ConnectionError("client closed")
            data += chunk
        return data

    def _request(self) -> str:
        size = int(self._read(4), 16)
        return self._read(size).decode()

    def _okay(self, payload: bytes = b"") -> None:
        self.request.sendall(b"OKAY" + payload)

    def _fail(self, message: str) -> None:
        data = message.encode()
        self.request.sendall(b"FAIL" + f"{len(data):04x}".encode() + data)

    @staticmethod
    def _block(text: str) -> bytes:
        data = text.encode()
        return f"{len(data):04x}".encode() + data

    def handle(self) -> None:
        try:
            device: FakeDevice | None = None
            while True:
                req = self._request()
                self.server.fake.requests.append(req)
                if device is not None:
                    self._device_service(device, req)
                    return
                device = self._host_service(req)
                if device is None:
                    return
        except (ConnectionError, OSError, ValueError):
            return

    def _find(self, serial: str) -> FakeDevice | None:
        found = self.server.fake.devices.get(serial)
        if found is None:
            self._fail(f"device '{serial}' not found")
            return None
        if found.state == "unauthorized":
            self._fail(UNAUTHORIZED)
            return None
        if found.state != "device":
            self._fail(f"device {found.state}")
            return None
        return found

    def _host_service(self, req: str) -> FakeDevice | None:
        fake = self.server.fake
        if req == "host:version":
            self._okay(self._block(f"{fake.version:04x}"))
        elif req in ("host:devices", "host:devices-l"):
            lines = []
            for index, dev in enumerate(fake.devices.values(), start=1):
                line = f"{dev.serial}\t{dev.state}"
                if req.endswith("-l"):
                    tags = dict(dev.tags)
                    tags.setdefault("transport_id", str(index))
                    line = f"{dev.serial:<22} {dev.state} " + " ".join(
                        f"{k}:{v}" for k, v in tags.items()
                    )
                lines.append(line + "\n")
            self._okay(self._block("".join(lines)))
        elif req.startswith("host:tport:serial:"):
            dev = self._find(req.split(":", 3)[3])
            if dev is not None:
                self._okay(struct.pack("<Q", 1))
            return dev
        elif req.startswith("host:transport:"):
            dev = self._find(req.split(":", 2)[2])
            if dev is not None:
                self._okay()
            return dev
        elif req.startswith("host-serial:"):
            _, serial, command = req.split(":", 2)
            dev = fake.devices.get(serial)
            if dev is None:
                self._fail(f"device '{serial}' not found")
            elif command == "get-state":
                self._okay(self._block(dev.state))
            elif command == "features":
                self._okay(self._block("fixed_push_mkdir,stat_v2"))
            else:
                self._fail(f"unsupported: {command}")
        else:
            self._fail(f"unknown host service {req}")
        return None

    def _device_service(self, dev: FakeDevice, req: str) -> None:
        if req.startswith("shell:"):
            self._okay()
            self.request.sendall(dev.run_shell(req[len("shell:") :]))
        elif req == "sync:":
            self._okay()
            self._sync(dev)
        else:
            self._fail(f"unsupported device service {req}")

    # ----- sync: (SYNC.TXT) ---------------------------------------------------------------------
    def _sync(self, dev: FakeDevice) -> None:
        while True:
            try:
                head = self._read(8)
            except ConnectionError:
                return
            cmd, size = head[:4].decode(), struct.unpack("<I", head[4:])[0]
            arg = self._read(size).decode()
            self.server.fake.requests.append(f"sync:{cmd} {arg}")
            if cmd == "QUIT":
                return
            if cmd == "STAT":
                target = dev.local(arg)
                if target.exists():
                    st = target.stat()
                    mode = (stat.S_IFDIR | 0o771) if target.is_dir() else (stat.S_IFREG | 0o644)
                    self.request.sendall(
                        b"STAT" + struct.pack("<III", mode, st.st_size, int(st.st_mtime))
                    )
                else:
                    self.request.sendall(b"STAT" + struct.pack("<III", 0, 0, 0))
            elif cmd == "LIST":
                target = dev.local(arg)
                for child in sorted(target.iterdir()) if target.is_dir() else []:
                    st = child.stat()
                    mode = (stat.S_IFDIR | 0o771) if child.is_dir() else (stat.S_IFREG | 0o644)
                    name = child.name.encode()
                    self.request.sendall(
                        b"DENT"
                        + struct.pack("<IIII", mode, st.st_size, int(st.st_mtime), len(name))
                        + name
                    )
                self.request.sendall(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            elif cmd == "SEND":
                self._receive_file(dev, arg)
            elif cmd == "RECV":
                target = dev.local(arg)
                if not target.is_file():
                    msg = b"No such file or directory"
                    self.request.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                data = target.read_bytes()
                for start in range(0, len(data), 64 * 1024):
                    chunk = data[start : start + 64 * 1024]
                    self.request.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                self.request.sendall(b"DONE" + struct.pack("<I", 0))
            else:
                msg = f"unknown sync command {cmd}".encode()
                self.request.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                return

    def _receive_file(self, dev: FakeDevice, arg: str) -> None:
        path, _, _mode = arg.rpartition(",")
        data = b""
        while True:
            head = self._read(8)
            kind, size = head[:4], struct.unpack("<I", head[4:])[0]
            if kind == b"DATA":
                data += self._read(size)
            elif kind == b"DONE":
                break
            else:
                raise ConnectionError(f"bad SEND chunk {kind!r}")
        full = dev.fail_push is not None and fnmatch.fnmatch(path, f"*{dev.fail_push}*")
        target = dev.local(path)
        if full or not target.parent.is_dir():
            msg = (
                f"couldn't create file: {'No space left on device' if full else 'No such file or directory'}"
            ).encode()
            self.request.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
            return
        target.write_bytes(data)
        self.request.sendall(b"OKAY" + struct.pack("<I", 0))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeAdbServer


class FakeAdbServer:
    """The server: ``with FakeAdbServer([FakeDevice(...)]) as server: server.port``."""

    def __init__(self, devices: list[FakeDevice] | None = None, version: int = 41) -> None:
        self.devices = {d.serial: d for d in devices or []}
        self.version = version
        self.requests: list[str] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add(self, device: FakeDevice) -> FakeDevice:
        self.devices[device.serial] = device
        return device

    def __enter__(self) -> FakeAdbServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on (for the "no adb server" test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    time.sleep(0.01)
    return port
