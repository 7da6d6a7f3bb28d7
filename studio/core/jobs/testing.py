"""Jobs that exist only so the tests can prove the worker survives misbehaving native code.

``resolve_job`` accepts only ``@job`` functions under ``studio.core``, so these live here rather than
in ``tests/``. None of them is reachable from the GUI or the CLI; they crash, hang or spawn children
on purpose.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from studio.core.jobs.protocol import JobContext, job


@job
def echo(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Return the request, after one progress event and one log line per ``lines`` item."""
    for line in request.get("lines", []):
        ctx.log(str(line))
    ctx.progress(1.0, "echoed")
    return {"echo": request, "pid": os.getpid()}


@job
def segfault(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Log a line, then crash the way a native library does (SIGSEGV, or a NULL read)."""
    ctx.log("about to crash on purpose")
    print("native-ish stderr line before the crash", file=sys.stderr, flush=True)
    if request.get("how") == "null_read":
        ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGSEGV)
    return {}


@job
def segfault_in_capture(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Crash while fd 2 is captured, as a QNN backend crashing inside session creation would."""
    from studio.core.jobs.native_log import capture_fd2

    ctx.log("creating a session that will crash")
    with capture_fd2(echo=True):
        os.write(2, b"native line printed just before the crash\n")
        os.kill(os.getpid(), signal.SIGSEGV)
    return {}


@job
def abort(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Crash with SIGABRT, as a failing C++ assertion in a backend would."""
    ctx.log("about to abort on purpose")
    os.abort()


@job
def sleep(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleep ``seconds``; cooperative (checks cancel) unless ``ignore_cancel`` is set.

    With ``spawn_child`` it first starts a grandchild ``sleep`` and writes its pid to
    ``child_pid_file``: the test checks the group kill takes it down too.
    """
    seconds = float(request.get("seconds", 30.0))
    if request.get("spawn_child"):
        child = subprocess.Popen(["sleep", str(seconds + 30)])
        Path(str(request["child_pid_file"])).write_text(str(child.pid))
    if request.get("ignore_cancel"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.log(f"sleeping {seconds} s")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not request.get("ignore_cancel"):
            ctx.check_cancelled()
        ctx.progress(1.0 - (end - time.monotonic()) / seconds, "sleeping")
        time.sleep(0.02)
    return {"slept": seconds}


@job
def fail(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Raise the StudioError named in the request (or a plain bug) to test error transport."""
    from studio.core import errors

    name = str(request.get("error", "ValueError"))
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.StudioError):
        raise cls(str(request.get("message", "failed on purpose")), path=request.get("path"))
    raise ValueError(str(request.get("message", "a bug on purpose")))
