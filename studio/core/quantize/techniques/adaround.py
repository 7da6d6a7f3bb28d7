"""AdaRound (Nagel et al., 2020): learn whether each weight rounds up or down.

Why: rounding to nearest minimises each weight's own error, not the layer's output error. With
``H = E[x xᵀ]`` of the layer's inputs, the output error of a rounding choice is
``tr(Δ H Δᵀ)``; AdaRound relaxes the choice to ``h(V) ∈ [0, 1]`` (a rectified sigmoid), minimises
that error plus a regulariser that pushes ``h`` to 0 or 1 (its exponent annealed from 20 to 2),
with Adam, then rounds ``h``. All numpy: the gradient is ``2 Δ H`` (no inference in the loop).
The scales are kept (min/max or the MSE search's); only the integer codes change, so the result
is a float weight exactly on the grid plus its encoding pinned.
"""

from __future__ import annotations

import numpy as np

from studio.core.quantize.techniques.layers import LayerInputs, output_mse, times_hessian

ITERATIONS = 400
LEARNING_RATE = 1e-2
REG_WEIGHT = 0.01
ZETA, GAMMA = 1.1, -0.1


def _h(v: np.ndarray) -> np.ndarray:
    return np.clip(1.0 / (1.0 + np.exp(-v)) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def adaround(m: np.ndarray, scales: np.ndarray, inputs: LayerInputs, bits: int) -> np.ndarray:
    """Integer codes [out, d] for ``m`` on per-row ``scales`` that minimise the output error."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    s = scales[:, None]
    floor = np.floor(m / s)
    rest = m / s - floor
    # start where rounding to nearest is: h(V) = rest
    p = np.clip((rest - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
    v = np.log(p / (1 - p))
    hess = inputs.hessian
    norm = float(np.trace(hess, axis1=-2, axis2=-1).mean()) / hess.shape[-1] or 1.0
    hess = hess / norm
    m1 = np.zeros_like(v)
    m2 = np.zeros_like(v)
    b1, b2, eps = 0.9, 0.999, 1e-8
    nearest = np.clip(np.round(m / s), lo, hi)
    base_err = float(output_mse(nearest * s - m, hess).sum())
    for step in range(ITERATIONS):
        frac = step / ITERATIONS
        beta = 20.0 - (20.0 - 2.0) * frac
        h = _h(v)
        q = np.clip(floor + h, lo, hi)
        delta = q * s - m
        grad_q = 2.0 * times_hessian(delta, hess) * s  # d loss / d h
        sig = 1.0 / (1.0 + np.exp(-v))
        dh_dv = sig * (1 - sig) * (ZETA - GAMMA)
        dh_dv = np.where((h > 0) & (h < 1), dh_dv, 0.0)
        # regulariser: sum(1 - |2h - 1|^beta), active after a warm-up fifth
        reg_grad = 0.0
        if frac > 0.2:
            t = 2 * h - 1
            reg_grad = -beta * np.abs(t) ** (beta - 1) * np.sign(t) * 2
            reg_grad = REG_WEIGHT * max(base_err, 1e-12) / max(v.size, 1) * 50 * reg_grad
        g = (grad_q + reg_grad) * dh_dv
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b2 * m2 + (1 - b2) * g * g
        mhat = m1 / (1 - b1 ** (step + 1))
        vhat = m2 / (1 - b2 ** (step + 1))
        v -= LEARNING_RATE * 10 * mhat / (np.sqrt(vhat) + eps)
    learned = np.clip(floor + (_h(v) >= 0.5), lo, hi)
    err = float(output_mse(learned * s - m, hess).sum())
    return learned if err <= base_err else nearest
