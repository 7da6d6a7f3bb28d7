"""Capture what native libraries (ORT, the QNN EP) print on file descriptor 2.

ORT and the QNN EP put the real reason for a failure in their log, not in the exception: a GPU
session that cannot start raises "nodes assigned to the default CPU EP" while the log says
"QNN_BACKEND_ERROR_CANNOT_INITIALIZE". Python's ``sys.stderr`` never sees these lines; only a
redirect of the file descriptor does. The captured text is echoed back to the real stderr
afterwards, so nothing disappears from a terminal or from the worker's log stream.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

# fd 2 is process-wide: two captures at once would steal each other's lines. Re-entrant, because
# a capture may wrap code that captures again (offload_report -> make_session): the inner one
# restores fd 2 to the outer one's file and echoes into it.
_capture_lock = threading.RLock()
# Error lines that restate the symptom rather than the cause; skipped when picking a reason.
_GENERIC = (
    "fallback to CPU EP has been explicitly disabled",
    "OrtEp::GetCapability() for QNNExecutionProvider failed",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# "2026-11-25 09:39:45.58 [E:onnxruntime:, file.cc:2290 Func] message"
_ORT_LINE = re.compile(r"^\S+ \S+ \[([VIWEF]):onnxruntime:[^,]*, (\S+) ([^\]]*)\] ?(.*)$")


@dataclass
class CapturedLog:
    """Text written to fd 2 while the capture was active (ANSI colours removed)."""

    text: str = ""
    lines: list[str] = field(default_factory=list)

    def ort_messages(self, levels: str = "EF") -> list[str]:
        """ORT log messages of the given severity letters, without timestamp and source."""
        found = []
        for line in self.lines:
            match = _ORT_LINE.match(line)
            if match and match.group(1) in levels:
                found.append(match.group(4).strip())
        return found


# Set by the worker client: captures go to files in this folder, so when native code crashes
# mid-capture the parent can still read what it printed (an unlinked temp file would be lost).
CAPTURE_DIR_ENV = "STUDIO_CAPTURE_DIR"


@contextmanager
def _capture_file() -> Iterator[IO[bytes]]:
    folder = os.environ.get(CAPTURE_DIR_ENV)
    if not folder or not os.path.isdir(folder):
        with tempfile.TemporaryFile(mode="w+b") as tmp:
            yield tmp
        return
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed and removed below
        mode="w+b", dir=folder, prefix="fd2-", suffix=".log", delete=False
    )
    try:
        yield tmp
    finally:
        tmp.close()
        try:
            os.unlink(tmp.name)
        except OSError:
            pass


@contextmanager
def capture_fd2(echo: bool = True) -> Iterator[CapturedLog]:
    """Redirect fd 2 to a temporary file for the duration of the block.

    ``echo`` writes the captured text back to the real stderr when the block ends (the worker turns
    that into log lines; a terminal user still sees it).
    """
    log = CapturedLog()
    with _capture_lock:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 (a GUI started without a console): no capture
            yield log
            return
        with _capture_file() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield log
            finally:
                try:
                    if sys.stderr is not None:
                        sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                raw = tmp.read().decode("utf-8", "replace")
                log.text = _ANSI.sub("", raw)
                log.lines = [ln for ln in log.text.splitlines() if ln.strip()]
                if echo and raw:
                    try:
                        os.write(2, raw.encode("utf-8", "replace"))
                    except OSError:
                        pass


def pick_reason(exc_text: str, native_errors: list[str], limit: int = 300) -> str:
    """The most specific error: a native log line that names the cause, else the exception."""
    for message in reversed(native_errors):
        if not any(g in message for g in _GENERIC):
            return _shorten(message, limit)
    return _shorten(exc_text, limit)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
