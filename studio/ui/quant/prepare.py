"""Prepare (fold) the opened model, so the table lists what the build quantises.

Why: the QDQ build quantises the calibration's prepared model (BatchNorm folded into the Conv,
weights under their original names), not the file as opened. The core's
``prepared_for_editing`` is cached and cheap for small models, but folding a large model takes
seconds, which must not freeze the window: the workspace runs :func:`prepared_model` on its
``Background`` and tags the answer with the session's model generation, so a late result for a
closed model is dropped.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import onnx


def prepared_model(graph: Any) -> onnx.ModelProto:
    """The folded model of ``graph`` (from its file, or in a scratch folder for an in-memory one)."""
    from studio.core.calibration import prepare_model
    from studio.core.quantize.scope import prepared_for_editing

    path = getattr(graph, "path", None)
    if path:
        return prepared_for_editing(str(path))
    with tempfile.TemporaryDirectory(prefix="npu-studio-prep-") as tmp:
        return prepare_model(graph.proto, Path(tmp) / "prepared.onnx")


def prepared_model_and_rows(graph: Any) -> tuple[onnx.ModelProto, list[Any]]:
    """The folded model and its editor rows: listing a large model's tensors is work the UI
    thread must not do, so it happens here, on the background thread, too."""
    from studio.ui.quant.session import build_rows

    proto = prepared_model(graph)
    return proto, build_rows(proto, graph)
