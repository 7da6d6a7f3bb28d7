"""Prepare (fold) the opened model off the UI thread, so the table lists what the build quantises.

Why: the QDQ build quantises the calibration's prepared model (BatchNorm folded into the Conv,
weights under their original names), not the file as opened. The core's
``prepared_for_editing`` is cached and cheap for small models, but folding a large model takes
seconds, which must not freeze the window; the result comes back as a signal tagged with the
session's model generation, so a late result for a closed model is dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from studio.core.errors import StudioError

log = logging.getLogger(__name__)


class _Signals(QObject):
    done = Signal(int, object, str, object)  # generation, ModelProto or None, error, rows


class _Prepare(QRunnable):
    def __init__(self, source: Any, generation: int, signals: _Signals, graph: Any = None) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.graph = graph
        self.source = source
        self.generation = generation
        self.signals = signals

    def run(self) -> None:  # pool thread
        from studio.core.calibration import prepare_model
        from studio.core.quantize.scope import prepared_for_editing

        try:
            if isinstance(self.source, str):
                proto = prepared_for_editing(self.source)
            else:  # an in-memory model without a file: fold it in a scratch file
                import tempfile
                from pathlib import Path

                with tempfile.TemporaryDirectory(prefix="npu-studio-prep-") as tmp:
                    proto = prepare_model(self.source, Path(tmp) / "prepared.onnx")
        except StudioError as exc:
            self.signals.done.emit(self.generation, None, str(exc), None)
        except Exception as exc:  # noqa: BLE001 - the table falls back to the original model
            log.exception("model preparation failed")
            self.signals.done.emit(self.generation, None, f"{type(exc).__name__}: {exc}", None)
        else:
            # the rows too: listing a large model's tensors is work the UI thread must not do
            from studio.ui.quant.session import build_rows

            rows = build_rows(proto, self.graph)
            self.signals.done.emit(self.generation, proto, "", rows)


class ModelPreparer(QObject):
    """Starts one preparation per opened model; ``ready`` arrives on the UI thread."""

    ready = Signal(int, object, str, object)  # generation, ModelProto or None, error, rows

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._signals = _Signals()
        self._signals.done.connect(self.ready)

    def start(self, graph: Any, generation: int) -> None:
        path = getattr(graph, "path", None)
        source: Any = str(path) if path else graph.proto
        self.pool.start(_Prepare(source, generation, self._signals, graph))

    def wait(self, msecs: int = 10000) -> bool:
        return self.pool.waitForDone(msecs)
