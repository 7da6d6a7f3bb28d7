"""Per-tensor quantisation MSE: the seed's ``validate_quantization_range``, done right.

The seed computed ``mean((x - dequant(quant(x)))^2)`` for one array and compared it with a
threshold. Here it is measured for every tensor the plan quantises, on what the plan really does:
weights from their stored values with their (per-channel) encoding; activations from the
calibration histogram (bin centres weighted by counts, clipping included), so no sample has to be
kept. ``relative`` divides by the tensor's mean square, so one threshold fits tensors of any
scale; :func:`check_mse` lists the tensors above the user's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.calibration import CalibrationStats
from studio.core.encodings import Encoding, EncodingSet


@dataclass
class TensorMse:
    tensor: str
    mse: float
    relative: float  # mse / mean(x^2); 0 for an all-zero tensor

    def to_json(self) -> dict[str, float | str]:
        return {"tensor": self.tensor, "mse": self.mse, "relative_mse": self.relative}


def encoding_mse(
    enc: Encoding,
    values: np.ndarray | None = None,
    histogram: tuple[np.ndarray, np.ndarray] | None = None,
) -> TensorMse | None:
    """One tensor's MSE under ``enc``: from its values (weights) or its (counts, edges)."""
    if enc.is_float:
        return None
    if values is not None:
        x = np.asarray(values, dtype=np.float32)
        err = (x - enc.fake_quant(x)).astype(np.float64)  # per-channel: broadcast on its axis
        mse = float(np.mean(err**2))
        power = float(np.mean(x.astype(np.float64) ** 2))
    elif histogram is not None:
        counts, edges = histogram
        total = float(np.sum(counts))
        if total <= 0:
            return None
        centres = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
        weights = np.asarray(counts, dtype=np.float64) / total
        err = centres.astype(np.float64) - enc.fake_quant(centres).astype(np.float64)
        mse = float(np.sum(weights * err**2))
        power = float(np.sum(weights * centres.astype(np.float64) ** 2))
    else:
        return None
    return TensorMse(enc.tensor, mse, mse / power if power > 0 else 0.0)


def quantisation_mse(
    stats: CalibrationStats, encodings: EncodingSet, model: onnx.ModelProto | None = None
) -> dict[str, TensorMse]:
    """MSE of quantise-dequantise per tensor of ``encodings`` (float encodings are skipped)."""
    proto = model if model is not None else onnx.load(str(stats.prepared_model))
    inits = {t.name: t for t in proto.graph.initializer}
    out: dict[str, TensorMse] = {}
    for name, enc in encodings.items():
        if name in inits:
            found = encoding_mse(enc, values=numpy_helper.to_array(inits[name]))
        elif name in stats.histograms:
            found = encoding_mse(enc, histogram=stats.histogram(name))
        else:
            found = None
        if found is not None:
            out[name] = found
    return out


def check_mse(
    values: dict[str, TensorMse], threshold: float, *, relative: bool = True
) -> list[TensorMse]:
    """The tensors whose (relative) MSE exceeds ``threshold``, worst first."""
    key = (lambda m: m.relative) if relative else (lambda m: m.mse)
    over = [m for m in values.values() if key(m) > threshold]
    return sorted(over, key=key, reverse=True)
