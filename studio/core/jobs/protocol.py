"""The Job protocol shared by the CLI, the GUI and the worker process.

A job is a plain function ``fn(request: dict, ctx: JobContext) -> dict``. It never touches widgets;
it reports progress and log lines through ``ctx`` and checks ``ctx.cancelled`` between steps
(cooperative cancel, as superqt's thread_worker and Orange3 do). The same function runs in-process
(tests, CLI) or inside the worker process (native code that may crash).

Requests and results are JSON-able dicts; arrays travel as ``.npy``/``.npz`` files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from studio.core.errors import JobCancelledError

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]
DataFn = Callable[[dict[str, Any]], None]


class CancelToken:
    """Thread-safe flag a job polls; setting it asks the job to stop at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class JobContext:
    """Handle given to a job function: progress, log, partial data, cancel.

    Progress callbacks are throttled (at most one every ``min_interval_s``, plus the final 1.0) so a
    tight loop cannot flood a UI thread or a pipe. ``data`` carries partial results (a live plot's
    next points) as a small JSON-able dict; the job itself keeps it small and infrequent (the
    profile loop sends at most a few hundred floats every 0.25 s), and ``wants_data`` lets it skip
    building payloads nobody reads.
    """

    on_progress: ProgressFn | None = None
    on_log: LogFn | None = None
    on_data: DataFn | None = None
    token: CancelToken = field(default_factory=CancelToken)
    stage: str = ""
    min_interval_s: float = 0.05
    _last_progress: float = field(default=0.0, repr=False)

    def progress(self, fraction: float, text: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < self.min_interval_s:
            return
        self._last_progress = now
        if self.on_progress is not None:
            self.on_progress(max(0.0, min(1.0, float(fraction))), text)

    def log(self, line: str) -> None:
        if self.on_log is not None:
            self.on_log(line)

    @property
    def wants_data(self) -> bool:
        return self.on_data is not None

    def data(self, payload: dict[str, Any]) -> None:
        """Hand partial results to whoever runs the job (dropped when nobody listens)."""
        if self.on_data is not None:
            self.on_data(payload)

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def check_cancelled(self) -> None:
        """Raise JobCancelledError if the user asked to stop; call between units of work."""
        if self.token.cancelled:
            raise JobCancelledError("cancelled by the user")


JobFn = Callable[[dict[str, Any], JobContext], dict[str, Any]]


def run_inline(fn: JobFn, request: dict[str, Any], ctx: JobContext | None = None) -> dict[str, Any]:
    """Run a job function in this process (CLI and tests). Errors propagate as they are."""
    return fn(request, ctx or JobContext())


_JOB_ATTR = "__studio_job__"
_ALLOWED_PREFIX = "studio.core."


def job(fn: JobFn) -> JobFn:
    """Mark a function as a job the worker process may run (by its kind ``module:function``)."""
    setattr(fn, _JOB_ATTR, True)
    return fn


def job_kind(fn: JobFn) -> str:
    """The string that names ``fn`` in a worker request: ``"studio.core.x:function"``."""
    return f"{fn.__module__}:{fn.__name__}"


def resolve_job(kind: str) -> JobFn:
    """Find the job function for ``kind``; only ``@job`` functions under studio.core qualify.

    The worker resolves requests through this, so a request can never name arbitrary code.
    """
    import importlib

    from studio.core.errors import BadInputError

    module_name, sep, func_name = kind.partition(":")
    if not sep or not module_name.startswith(_ALLOWED_PREFIX) or not func_name.isidentifier():
        raise BadInputError(f"unknown job kind '{kind}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInputError(f"unknown job kind '{kind}': {exc}") from exc
    fn = getattr(module, func_name, None)
    if fn is None or not getattr(fn, _JOB_ATTR, False):
        raise BadInputError(f"unknown job kind '{kind}'")
    return fn
