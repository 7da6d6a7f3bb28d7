"""MSE-optimal weight scales per output channel, measured on the layer's output (not the weight).

Why: min/max scales spend the grid on a few outliers; the scale that minimises the layer's
OUTPUT error ``E[((Wq - W) x)²] = diag(Δ H Δᵀ)`` over calibration inputs (AIMET's sequential MSE)
clips them when that is cheaper. Candidates are ``α · absmax / (2^(b-1) - 1)`` for ``α`` in
``[ALPHA_MIN, 1]``, chosen per channel. ``H`` comes from the float model's inputs to the layer
(``layers.collect_inputs``), so the search is the layer-wise form: each layer is fitted to float
inputs, not to the already-quantised layers before it.
"""

from __future__ import annotations

import numpy as np

from studio.core.quantize.techniques.layers import (
    LayerInputs,
    fake_quant_rows,
    output_mse,
    symmetric_scales,
)

ALPHA_MIN = 0.5
CANDIDATES = 26


def best_scales(m: np.ndarray, inputs: LayerInputs, bits: int, per_channel: bool) -> np.ndarray:
    """Scales (one per row, or one repeated) minimising the layer-output MSE."""
    alphas = np.linspace(ALPHA_MIN, 1.0, CANDIDATES)
    if not per_channel:
        flat = np.abs(m).max()
        errs = []
        for a in alphas:
            s = np.full(m.shape[0], max(flat * a, 1e-12) / (2 ** (bits - 1) - 1))
            errs.append(output_mse(fake_quant_rows(m, s, bits) - m, inputs.hessian).sum())
        a = alphas[int(np.argmin(errs))]
        return np.full(m.shape[0], max(flat * a, 1e-12) / (2 ** (bits - 1) - 1))
    best = symmetric_scales(m, bits)
    best_err = output_mse(fake_quant_rows(m, best, bits) - m, inputs.hessian)
    for a in alphas[:-1]:
        s = symmetric_scales(m, bits, a)
        err = output_mse(fake_quant_rows(m, s, bits) - m, inputs.hessian)
        better = err < best_err
        best = np.where(better, s, best)
        best_err = np.where(better, err, best_err)
    return best
