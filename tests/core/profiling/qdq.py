"""QDQ models for the profiling tests: ORT's quantize_static with the QNN config, random data.

tests/builders.quantize_for_qnn does the same at uint8 only; these tests also need 16-bit
activations (``activation_type=QuantType.QUInt16``) to compare INT8 with mixed precision.
"""

from __future__ import annotations

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, quantize_static
from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config


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
