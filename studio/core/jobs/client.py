"""Parent side of the worker protocol: run a job in a child process and survive whatever it does.

Native QNN code can segfault or abort; run in a thread it would take the whole studio with it. Here
each job gets its own ``python -m studio.core.jobs.worker`` in its own process group. Its JSON events
stream into the caller's :class:`JobContext`; a crash becomes a :class:`JobFailedError` naming the
signal and the last log lines; cancel and timeout kill the whole group (SIGTERM, then SIGKILL after
``TERM_GRACE_S``) so nothing the job started is left behind. Every live worker is in a registry that
:func:`kill_all_workers` (also run at exit) empties, so closing the app leaves no orphan.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.errors import BadInputError, JobCancelledError, JobFailedError, StudioError
from studio.core.jobs.native_log import CAPTURE_DIR_ENV
from studio.core.jobs.protocol import JobContext
from studio.core.jobs.worker import PARENT_PID_ENV
from studio.core.json_pieces import loads_in_pieces

TERM_GRACE_S = 0.5  # SIGTERM lets a job clean up; SIGKILL follows after this long
POLL_S = 0.05  # cancel / timeout are checked this often
KEEP_LINES = 50  # stderr + log lines kept for the crash message
SHOW_LINES = 12  # of which this many go into the message itself (all of them in .detail)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
# The one-folder app (packaging/) has no python to run ``-m`` with: its own executable takes this
# first argument and runs the worker (packaging/npu_studio_entry.py).
WORKER_FLAG = "--studio-worker"


def worker_command() -> list[str]:
    """The command line that starts a worker: ``python -m ...``, or the frozen app itself."""
    if getattr(sys, "frozen", False):
        return [sys.executable, WORKER_FLAG]
    return [sys.executable, "-m", "studio.core.jobs.worker"]


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker, as listed by :func:`live_workers` (e.g. to show or kill it)."""

    pid: int
    kind: str
    started: float  # time.monotonic() at spawn


_registry: dict[int, tuple[subprocess.Popen[bytes], WorkerInfo]] = {}
_registry_lock = threading.Lock()


def live_workers() -> list[WorkerInfo]:
    """Workers started by this process that have not been reaped yet."""
    with _registry_lock:
        return [info for _, info in _registry.values()]


def kill_all_workers(grace_s: float = TERM_GRACE_S) -> int:
    """Stop every live worker and its process group; returns how many there were.

    Called at interpreter exit and by the GUI on close. Sends SIGTERM to all groups at once, waits up
    to ``grace_s`` in total, then SIGKILLs what is left.
    """
    with _registry_lock:
        procs = [proc for proc, _ in _registry.values()]
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.01)
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
    with _registry_lock:
        for proc in procs:
            _registry.pop(proc.pid, None)
    return len(procs)


atexit.register(kill_all_workers)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _all_studio_errors() -> dict[str, type[StudioError]]:
    found: dict[str, type[StudioError]] = {"StudioError": StudioError}
    stack = [StudioError]
    while stack:
        for sub in stack.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            stack.append(sub)
    return found


def error_from_event(event: dict[str, Any], kind: str) -> StudioError:
    """Re-create the StudioError the job raised: same type (or nearest known base) and message.

    A non-StudioError (a bug in the job) becomes JobFailedError. The worker's traceback goes in
    ``.detail`` (unless the job set a detail of its own) and in ``.worker_traceback``.
    """
    known = _all_studio_errors()
    names = [str(n) for n in (event.get("mro") or [event.get("kind")]) if n]
    message = str(event.get("message") or f"job {kind} failed")
    exc: StudioError | None = None
    for name in names:
        cls = known.get(name)
        if cls is None:
            continue
        try:
            exc = cls(message)
        except TypeError:  # a subclass with a constructor of its own: try its base
            continue
        break
    if exc is None:
        exc = JobFailedError(message)
    trace = str(event.get("traceback") or "")
    exc.path = event.get("path")
    exc.detail = event.get("detail") or trace or None
    exc.worker_traceback = trace  # type: ignore[attr-defined]
    return exc


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class WorkerProcess:
    """One job in one child process: ``start()``, then ``run(ctx)`` streams it to the end.

    ``cancel()`` may be called from any thread; ``run`` notices it within ``POLL_S``.
    """

    def __init__(
        self,
        kind: str,
        request: dict[str, Any],
        *,
        workdir: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        try:
            self._payload = json.dumps(
                {
                    "kind": kind,
                    "request": request,
                    "workdir": None if workdir is None else os.fspath(workdir),
                },
                allow_nan=True,
            )
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"request for {kind} is not JSON-able: {exc}") from exc
        self.kind = kind
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop_reason: str | None = None  # "cancel" | "timeout"
        self._kill_at: float | None = None
        self.recent_lines: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
        # faulthandler's dump after a crash: kept apart so it cannot push the job's own last log
        # lines out of the message; only its innermost frame is quoted there.
        self.crash_dump: list[str] = []
        self._capture_dir: str | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Spawn the child in a new session (its own process group) and hand it the request."""
        env = dict(os.environ)
        env.update(self._env or {})
        env[PARENT_PID_ENV] = str(os.getpid())
        self._capture_dir = tempfile.mkdtemp(prefix="studio-worker-")
        env[CAPTURE_DIR_ENV] = self._capture_dir
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                worker_command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=env,
            )
        except OSError as exc:
            raise JobFailedError(
                f"could not start a worker process for {self.kind}: {exc}"
            ) from exc
        self._proc = proc
        with _registry_lock:
            _registry[proc.pid] = (proc, WorkerInfo(proc.pid, self.kind, time.monotonic()))
        assert proc.stdin is not None
        try:
            proc.stdin.write(self._payload.encode("utf-8") + b"\n")
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the child died at once; run() reports how

    def cancel(self, reason: str = "cancel") -> None:
        """Ask the job to stop: SIGTERM the group now, SIGKILL it ``TERM_GRACE_S`` later."""
        if self._proc is None or self._stop_reason is not None:
            return
        self._stop_reason = reason
        self._kill_at = time.monotonic() + TERM_GRACE_S
        _signal_group(self._proc, signal.SIGTERM)

    def run(self, ctx: JobContext | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        """Stream events into ``ctx`` until the child ends; return its result or raise."""
        if self._proc is None:
            self.start()
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        ctx = ctx or JobContext()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        outcome: dict[str, Any] | None = None
        buffers = {proc.stdout.fileno(): b"", proc.stderr.fileno(): b""}
        stdout_fd = proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        for fd in buffers:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        exited_at: float | None = None
        try:
            while sel.get_map():
                for key, _ in sel.select(timeout=POLL_S):
                    fd = int(key.fd)
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                        chunk = b"\n"  # flush a last unterminated line
                    *lines, buffers[fd] = (buffers[fd] + chunk).split(b"\n")
                    for raw in lines:
                        text = raw.decode("utf-8", "replace").rstrip("\r")
                        if fd == stdout_fd:
                            outcome = self._on_protocol_line(text, ctx) or outcome
                        elif text:
                            self._on_stderr_line(text, ctx)
                now = time.monotonic()
                if self._stop_reason is None and ctx.token.cancelled:
                    self.cancel("cancel")
                if self._stop_reason is None and deadline is not None and now > deadline:
                    self.cancel("timeout")
                if self._kill_at is not None and now >= self._kill_at:
                    _signal_group(proc, signal.SIGKILL)
                    self._kill_at = None
                if proc.poll() is not None:
                    # A grandchild that escaped the group may hold stderr open: do not wait on it.
                    exited_at = exited_at or now
                    if stdout_fd not in sel.get_map() and now - exited_at > 0.2:
                        break
        finally:
            sel.close()
            returncode = proc.wait()
            _signal_group(proc, signal.SIGKILL)  # whatever the job left running in its group
            with _registry_lock:
                _registry.pop(proc.pid, None)
            proc.stdout.close()
            proc.stderr.close()
            self._collect_captures(ctx)
        return self._conclude(outcome, returncode, timeout_s)

    def _collect_captures(self, ctx: JobContext) -> None:
        """Native output captured when the worker died mid-capture: keep it for the message."""
        folder, self._capture_dir = self._capture_dir, None
        if not folder:
            return
        for path in sorted(Path(folder).glob("fd2-*.log")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if line.strip():
                    self.recent_lines.append(line)
                    ctx.log(line)
        shutil.rmtree(folder, ignore_errors=True)

    def _on_stderr_line(self, text: str, ctx: JobContext) -> None:
        if self.crash_dump or text.startswith("Fatal Python error"):
            self.crash_dump.append(text)
        else:
            self.recent_lines.append(text)
        ctx.log(text)

    def _crash_frame(self) -> str:
        """The innermost Python frame of faulthandler's dump (it prints most recent first)."""
        current = False
        for line in self.crash_dump:
            current = current or line.startswith("Current thread")
            if current and line.strip().startswith("File "):
                return line.strip()
        return ""

    def _on_protocol_line(self, text: str, ctx: JobContext) -> dict[str, Any] | None:
        if not text:
            return None
        try:  # in pieces: a large result decoded in one C call froze the UI thread (the GIL)
            event = loads_in_pieces(text)
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            # Cannot happen unless a job wrote to the protocol fd itself; keep it as a log line.
            self.recent_lines.append(text)
            ctx.log(text)
            return None
        name = event.get("event")
        if name == "progress":
            ctx.stage = str(event.get("stage") or "")
            ctx.progress(float(event.get("fraction") or 0.0), str(event.get("text") or ""))
        elif name == "log":
            line = str(event.get("line", ""))
            self.recent_lines.append(line)
            ctx.log(line)
        elif name == "data":
            payload = event.get("data")
            if isinstance(payload, dict):
                ctx.stage = str(event.get("stage") or ctx.stage)
                ctx.data(payload)
        elif name in ("result", "error"):
            return event
        return None

    def _conclude(
        self, outcome: dict[str, Any] | None, returncode: int, timeout_s: float | None
    ) -> dict[str, Any]:
        if outcome is not None and outcome.get("event") == "result":
            result = outcome.get("result")
            if isinstance(result, dict):
                return result
        if self._stop_reason == "cancel":
            raise JobCancelledError(f"{self.kind} was cancelled by the user")
        tail = self._tail()
        if self._stop_reason == "timeout":
            raise JobFailedError(
                f"worker timed out after {timeout_s:g} s while running {self.kind}{tail}",
                detail="\n".join(self.recent_lines) or None,
            )
        if outcome is not None and outcome.get("event") == "error":
            raise error_from_event(outcome, self.kind)
        if returncode < 0:
            sig = -returncode
            verb = "was killed by" if sig in (signal.SIGKILL, signal.SIGTERM) else "crashed with"
            message = f"worker {verb} {_signal_name(sig)} (signal {sig}) while running {self.kind}"
            frame = self._crash_frame()
            if frame:
                message += f" (in {frame})"
        else:
            message = (
                f"worker exited with code {returncode} without a result while running {self.kind}"
            )
        detail = "\n".join([*self.recent_lines, *self.crash_dump]) or None
        raise JobFailedError(message + tail, detail=detail)

    def _tail(self) -> str:
        lines = list(self.recent_lines)[-SHOW_LINES:]
        if not lines:
            return "; no log lines"
        return "; last log lines:\n" + "\n".join(f"  {line}" for line in lines)


def run_in_worker(
    kind: str,
    request: dict[str, Any],
    ctx: JobContext | None = None,
    *,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run the ``@job`` named ``kind`` in a fresh worker process and return its result dict.

    Progress, log and data events (and the child's stderr, as log lines) stream into ``ctx``. Raises the
    StudioError the job raised (same type and message), JobCancelledError when ``ctx.token`` is
    cancelled (the process group is gone within ~0.55 s), or JobFailedError on a crash, an exit
    without a result, or after ``timeout_s``. ``env`` adds to this process's environment;
    ``workdir`` is the child's working folder (relative paths in the request resolve there).
    """
    worker = WorkerProcess(kind, request, workdir=workdir, env=env)
    worker.start()
    return worker.run(ctx, timeout_s)
