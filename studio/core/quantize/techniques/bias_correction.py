"""Bias correction (Nagel et al., 2019; AIMET's empirical form): undo the mean shift that
quantising a weight adds to its layer's output.

Why: ``E[Wq x] - E[W x] = (Wq - W) E[x]`` is not zero, and a per-channel offset that survives into
every later layer (a ReLU turns it into a bias it cannot undo). Subtracting it from the layer's
bias costs nothing at run time. ``E[x]`` is the mean input patch from the float model over the
calibration samples (``layers.collect_inputs``); ``Wq`` is the weight as it will be quantised,
after any scale search or AdaRound. Layers without a bias are left alone (ORT's quantiser would
have to add one).
"""

from __future__ import annotations

import numpy as np

from studio.core.quantize.techniques.layers import LayerInputs


def corrected_bias(
    bias: np.ndarray, m: np.ndarray, mq: np.ndarray, inputs: LayerInputs
) -> np.ndarray:
    """``bias - (Wq - W) E[x]`` (both weights as [out, d] matrices)."""
    return bias - (mq - m) @ inputs.mean
