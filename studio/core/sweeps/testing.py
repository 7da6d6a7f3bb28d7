"""A point job that exists only so the tests can prove a sweep survives misbehaving points.

``resolve_job`` accepts only ``@job`` functions under ``studio.core``, so it lives here (as
:mod:`studio.core.jobs.testing` does for the worker). Neither the GUI nor the CLI can name it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from studio.core.jobs.protocol import JobContext, job
from studio.core.sweeps.point import sweep_point


def _matches(request: dict[str, Any], key: str) -> bool:
    when = request.get(key) or {}
    return bool(when) and all(request["params"].get(k) == v for k, v in when.items())


@job
def misbehaving_point(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The real :func:`~studio.core.sweeps.point.sweep_point`, except on points whose parameters
    match ``crash_when`` (abort natively: SIGABRT, as a failing assertion inside a backend does)
    or ``slow_when`` (write this process's pid into ``pid_dir``, then sleep ``seconds`` ignoring
    cancel, so only a kill stops it)."""
    if _matches(request, "crash_when"):
        ctx.log("about to abort on purpose")
        os.abort()
    if _matches(request, "slow_when"):
        folder = Path(str(request["pid_dir"]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{os.getpid()}.pid").write_text(str(os.getpid()))
        time.sleep(float(request.get("seconds", 120.0)))
    return sweep_point(request, ctx)
