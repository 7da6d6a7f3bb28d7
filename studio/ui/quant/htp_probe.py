"""Is QNN HTP available here? Asked once (the core's backend probe, in the worker process, off the
UI thread) so the Auto-mix dialog can offer "Measure HTP cycles" only where cycles can be measured.

The core caches the probe per process, so a second dialog gets the answer at once. Until the
probe answers, ``available`` is None ("checking"); the dialog shows that rather than guessing.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Probe(QRunnable):
    def __init__(self, owner: HtpProbe) -> None:
        super().__init__()
        self.owner = owner

    def run(self) -> None:  # on a pool thread
        try:
            from studio.core.engine.registry import probe_backends

            htp = next((s for s in probe_backends() if s.name == "htp"), None)
            if htp is None:
                answer = (False, "the backend registry has no QNN HTP entry")
            else:
                answer = (bool(htp.available), htp.reason or htp.note or "")
        except Exception as exc:  # noqa: BLE001 - shown as the reason, never raised into Qt
            answer = (False, f"probe failed: {type(exc).__name__}: {exc}")
        try:
            self.owner.answered.emit(*answer)
        except RuntimeError:  # the workspace went away while probing
            pass


class HtpProbe(QObject):
    """``available``: None while probing, then True/False with ``reason``; ``changed`` says when."""

    answered = Signal(bool, str)  # from the pool thread
    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available: bool | None = None
        self.reason = "checking whether QNN HTP is available on this machine…"
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._started = False
        self.answered.connect(self._answered)

    def start(self) -> None:
        """Probe once (later calls do nothing; the answer stays)."""
        if not self._started:
            self._started = True
            self._pool.start(_Probe(self))

    def wait(self, msecs: int = 30000) -> bool:
        return self._pool.waitForDone(msecs)

    def _answered(self, available: bool, reason: str) -> None:
        self.available, self.reason = available, reason
        self.changed.emit()
