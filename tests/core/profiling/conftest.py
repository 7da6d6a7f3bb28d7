"""Fixtures for the profiling tests: real float and QDQ models, built once per session."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import CalibrationDataReader, quantize_static
from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

from tests import builders


class _RandomReader(CalibrationDataReader):
    def __init__(self, shape: tuple[int, ...], count: int = 4) -> None:
        rng = np.random.default_rng(0)
        self._it = iter([{"input": rng.random(shape, dtype=np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self._it, None)


def quantize_for_qnn(src, dst, shape=(1, 3, 32, 32), **kwargs):
    """QDQ model as the QNN EP expects it (get_qnn_qdq_config), random calibration."""
    cfg = get_qnn_qdq_config(str(src), _RandomReader(shape), **kwargs)
    quantize_static(
        str(src),
        str(dst),
        _RandomReader(shape),
        quant_format=cfg.quant_format,
        activation_type=cfg.activation_type,
        weight_type=cfg.weight_type,
        calibrate_method=cfg.calibrate_method,
        op_types_to_quantize=cfg.op_types_to_quantize,
        nodes_to_exclude=cfg.nodes_to_exclude,
        per_channel=cfg.per_channel,
        extra_options=cfg.extra_options,
    )
    return dst


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
