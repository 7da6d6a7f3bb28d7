"""Is QNN HTP available here? Asked once (the core's backend probe, in the worker process, off the
UI thread) so the Auto-mix dialog can offer "Measure HTP cycles" only where cycles can be measured.

The core caches the probe per process, so a second dialog gets the answer at once. Until the
probe answers, ``available`` is None ("checking"); the dialog shows that rather than guessing.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.ui.jobs.background import Background


def _ask_htp(_ctx: Any) -> tuple[bool, str]:
    """(available, reason) from the core's backend probe; a failed probe is a reason, not a raise."""
    try:
        from studio.core.engine.registry import probe_backends

        htp = next((s for s in probe_backends() if s.name == "htp"), None)
        if htp is None:
            return False, "the backend registry has no QNN HTP entry"
        return bool(htp.available), htp.reason or htp.note or ""
    except Exception as exc:  # noqa: BLE001 - shown as the reason, never raised into Qt
        return False, f"probe failed: {type(exc).__name__}: {exc}"


class HtpProbe(QObject):
    """``available``: None while probing, then True/False with ``reason``; ``changed`` says when."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available: bool | None = None
        self.reason = "checking whether QNN HTP is available on this machine…"
        self._background = Background(self)
        self._started = False

    def start(self) -> None:
        """Probe once (later calls do nothing; the answer stays)."""
        if not self._started:
            self._started = True
            self._background.start("Probe QNN HTP", _ask_htp, on_result=lambda a: self.answer(*a))

    def answer(self, available: bool, reason: str) -> None:
        """Record the probe's answer (the probe itself, or a test standing in for it)."""
        self.available, self.reason = available, reason
        self.changed.emit()

    def wait(self, msecs: int = 30000) -> bool:
        return self._background.wait(msecs)
