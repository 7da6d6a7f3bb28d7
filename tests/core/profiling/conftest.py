"""Fixtures for the profiling tests: real float and QDQ models, built once per session."""

from __future__ import annotations

import onnx
import pytest

from tests import builders
from tests.core.profiling.qdq import quantize_for_qnn


@pytest.fixture(scope="session")
def prof_models(tmp_path_factory):
    """{'float': small_cnn, 'qdq': its QDQ (uint8), 'unnamed': small_cnn without node names}."""
    root = tmp_path_factory.mktemp("prof_models")
    fp = builders.save(builders.small_cnn(), root / "small_cnn.onnx")
    unnamed = builders.small_cnn()
    for node in unnamed.graph.node:
        node.name = ""
    un = root / "unnamed.onnx"
    onnx.save(unnamed, str(un))
    qdq = quantize_for_qnn(fp, root / "small_cnn_qdq.onnx")
    return {"float": fp, "qdq": qdq, "unnamed": un}
