"""Fixtures shared by the UI tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def calibrated_quant_workspace(qtbot) -> Iterator[Callable[..., object]]:
    """Opens a Quantization workspace on a model file, waits for its preparation and calibrates
    it on ``random:4``: the starting point of every test of a dialog that needs statistics.

    A factory, so each test module keeps its own environment (cache folders, target device) set
    before the workspace reads it; the runner is cancelled and waited for at teardown.
    """
    from studio.core.model.graph import ModelGraph
    from studio.ui.quant.workspace import QuantizationWorkspace
    from studio.ui.shell.context import StudioContext

    opened: list[QuantizationWorkspace] = []

    def open_workspace(path: Path, size: tuple[int, int] = (1500, 850)) -> QuantizationWorkspace:
        ctx = StudioContext()
        ctx.set_model(ModelGraph.load(path), str(path))
        w = QuantizationWorkspace(ctx)
        qtbot.addWidget(w)
        opened.append(w)
        w.resize(*size)
        w.show()
        qtbot.waitUntil(lambda: not w.session.preparing, timeout=20000)
        with qtbot.waitSignal(w.runner.result, timeout=30000):
            w.calibrate("random:4")
        return w

    yield open_workspace
    for w in opened:
        w.runner.cancel()
        w.runner.wait(10000)
