"""The worker process: runs one job so a native crash (QNN segfault, abort) kills only this process.

Started by :mod:`studio.core.jobs.client` as ``python -m studio.core.jobs.worker``. Protocol (DESIGN.md
"The worker protocol"):

* stdin: ONE line of JSON, ``{"kind": "studio.core.x:fn", "request": {...}, "workdir": "..."}``.
* stdout: JSON lines, ``{"event": "progress", "stage", "fraction", "text"}``, ``{"event": "log",
  "line"}``, ``{"event": "data", "stage", "data": {...}}`` (partial results for live views, small
  and throttled by the job), then exactly one ``{"event": "result", "result": {...}}`` or ``{"event": "error",
  "kind", "message", "mro", "path", "detail", "traceback"}``.
* stderr: anything else (Python prints, native library logs, faulthandler dumps on a crash).

Native libraries print straight to file descriptor 1, which would corrupt the JSON stream, so the
protocol gets a private duplicate of the real stdout and fd 1 is pointed at stderr before any job
code is imported. Requests are plain JSON and the job is found with
:func:`studio.core.jobs.protocol.resolve_job` (only ``@job`` functions under ``studio.core``): no pickle, no
eval. Keep imports here minimal: every job pays for this module's start-up.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import threading
import traceback
from typing import IO, Any

from studio.core.errors import BadInputError, JobFailedError, StudioError
from studio.core.jobs.protocol import JobContext, resolve_job

PROTOCOL_VERSION = 1
# How often the child checks that its parent is still alive (an orphaned worker exits by itself).
PARENT_POLL_S = 0.25
# The parent's pid, set by worker_client: if the parent died before we started, getppid() is
# already someone else's and the watch must still fire.
PARENT_PID_ENV = "STUDIO_WORKER_PARENT_PID"
_crash_stream: IO[str] | None = None  # kept open for faulthandler for the process's lifetime


class _Channel:
    """The protocol stream: one JSON object per line, written atomically from any thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, default=_json_fallback)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def _json_fallback(obj: Any) -> Any:
    """Let numpy scalars/arrays and dataclass results with to_json() cross the pipe."""
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _take_protocol_stdout() -> IO[str]:
    """Keep a private copy of the real stdout for the protocol; send fd 1 to stderr.

    After this, ``print()``, ``os.write(1, ...)`` and C ``printf`` all land on stderr, which the
    parent keeps as log lines, and only this module writes to the protocol stream.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)  # non-inheritable: grandchildren never see the protocol stream
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def _watch_parent(parent_pid: int) -> None:
    """Exit (with the whole process group) if the parent dies, so a crashed GUI leaves no orphan."""

    def loop() -> None:
        while True:
            threading.Event().wait(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                # Only a group leader (started with start_new_session) may take its group along;
                # a worker started by hand from a shell must not kill the shell's group.
                if os.getpgrp() == os.getpid():
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                os._exit(70)

    threading.Thread(target=loop, name="studio-parent-watch", daemon=True).start()


def _read_request(stream: IO[str]) -> tuple[str, dict[str, Any], str | None]:
    line = stream.readline()
    if not line.strip():
        raise BadInputError("worker: no request on stdin (expected one line of JSON)")
    try:
        message = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"worker: request is not valid JSON: {exc.msg}") from exc
    if not isinstance(message, dict):
        raise BadInputError("worker: request must be a JSON object")
    kind = message.get("kind")
    request = message.get("request", {})
    workdir = message.get("workdir")
    if not isinstance(kind, str):
        raise BadInputError("worker: request has no string 'kind' (expected 'studio.core.x:fn')")
    if not isinstance(request, dict):
        raise BadInputError(f"worker: 'request' for {kind} must be a JSON object")
    if workdir is not None and not isinstance(workdir, str):
        raise BadInputError(f"worker: 'workdir' for {kind} must be a string path")
    return kind, request, workdir


def error_event(exc: BaseException, kind: str | None = None) -> dict[str, Any]:
    """Describe an exception so the parent can re-raise the same StudioError type and message."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, StudioError):
        mro = [c.__name__ for c in type(exc).__mro__ if issubclass(c, StudioError)]
        return {
            "event": "error",
            "kind": type(exc).__name__,
            "mro": mro,
            "message": str(exc),
            "path": exc.path,
            "detail": exc.detail,
            "traceback": trace,
        }
    # Not a StudioError: a bug in the job. Say which job and what, keep the traceback for details.
    where = f"job {kind}" if kind else "worker"
    return {
        "event": "error",
        "kind": type(exc).__name__,
        "mro": [c.__name__ for c in type(exc).__mro__],
        "message": f"{where} failed with {type(exc).__name__}: {exc}",
        "path": None,
        "detail": None,
        "traceback": trace,
    }


def _install_sigterm(ctx: JobContext) -> None:
    """SIGTERM asks the job to stop at its next check; the parent sends SIGKILL 0.5 s later."""

    def on_term(signum: int, frame: Any) -> None:
        ctx.token.cancel()

    signal.signal(signal.SIGTERM, on_term)


def serve(stdin: IO[str], channel: _Channel) -> int:
    """Read one request, run it, report exactly one result or error. Returns the exit code."""
    kind: str | None = None
    try:
        kind, request, workdir = _read_request(stdin)
        if workdir:
            if not os.path.isdir(workdir):
                raise BadInputError(f"worker: workdir for {kind} does not exist", path=workdir)
            os.chdir(workdir)
        fn = resolve_job(kind)
    except StudioError as exc:
        channel.send(error_event(exc, kind))
        return 2

    def on_progress(fraction: float, text: str) -> None:
        channel.send(
            {"event": "progress", "stage": ctx.stage, "fraction": fraction, "text": str(text)}
        )

    def on_log(line: str) -> None:
        channel.send({"event": "log", "line": str(line)})

    def on_data(payload: dict[str, Any]) -> None:
        channel.send({"event": "data", "stage": ctx.stage, "data": payload})

    ctx = JobContext(on_progress=on_progress, on_log=on_log, on_data=on_data, min_interval_s=0.02)
    _install_sigterm(ctx)
    try:
        result = fn(request, ctx)
        if not isinstance(result, dict):
            raise JobFailedError(
                f"job {kind} returned {type(result).__name__}, expected a JSON object (dict)"
            )
        try:
            channel.send({"event": "result", "result": result})
        except (TypeError, ValueError) as exc:
            raise JobFailedError(f"job {kind} returned a result that is not JSON: {exc}") from exc
    except BaseException as exc:  # every failure, even SystemExit, must reach the parent
        channel.send(error_event(exc, kind))
        return 1
    return 0


def main() -> int:
    channel = _Channel(_take_protocol_stdout())
    # On SIGSEGV/SIGABRT, dump the Python stack to stderr: the parent shows its last lines. A
    # private duplicate of fd 2, so the dump still reaches the parent while native_log.capture_fd2
    # has pointed fd 2 at a file.
    global _crash_stream
    _crash_stream = os.fdopen(os.dup(2), "w", buffering=1)
    faulthandler.enable(file=_crash_stream)
    parent = os.environ.get(PARENT_PID_ENV, "")
    _watch_parent(int(parent) if parent.isdigit() else os.getppid())
    code = serve(sys.stdin, channel)
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
