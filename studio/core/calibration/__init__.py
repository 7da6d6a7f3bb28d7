"""Calibration: one streaming pass over the data -> per-tensor statistics -> ranges by method.

Public API (what the quantisation editor and the CLI use)::

    stats = calibrate(model_path, "calib_dir/" | "data.npz" | "random:8", input_shapes=...)
    stats.ranges("percentile", percentile=99.99)   # no second pass: read from the histograms
    stats.histogram(name)                          # (counts, edges) for plotting
    stats.prepared_model                           # the folded model the QDQ builder uses

``calibrate_job`` is the same as a Job (``studio.core.calibration.collect:calibrate_job``).
"""

from studio.core.calibration.collect import (
    calibrate,
    calibrate_job,
    collect_stats,
    load_fixed,
    model_inputs,
    prepare_model,
)
from studio.core.calibration.data import (
    RANDOM_WARNING,
    CalibrationSource,
    InputSpec,
    Preprocess,
)
from studio.core.calibration.histogram import DEFAULT_BINS, RunningHistogram
from studio.core.calibration.methods import DEFAULT_PERCENTILE, METHODS, compute_range
from studio.core.calibration.stats import CalibrationStats, TensorStats, default_cache_dir

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_PERCENTILE",
    "METHODS",
    "RANDOM_WARNING",
    "CalibrationSource",
    "CalibrationStats",
    "InputSpec",
    "Preprocess",
    "RunningHistogram",
    "TensorStats",
    "calibrate",
    "calibrate_job",
    "collect_stats",
    "compute_range",
    "default_cache_dir",
    "load_fixed",
    "model_inputs",
    "prepare_model",
]
