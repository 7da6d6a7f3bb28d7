"""Accuracy: per-layer SQNR (float vs QDQ on CPU or QNN HTP) and automatic mixed precision.

Public API::

    report = analyse(float_model, qdq_model, feeds, backend="cpu")   # SqnrReport
    report.layers / report.outputs / report.weights
    result = auto_mixed_precision(stats, plan, feeds, "out.onnx", target_db=30.0, profile_fn=...)

Jobs for the GUI/worker: ``accuracy.jobs.analyse_job``; ``workflows.automix.auto_mp_job`` (it measures cycles).
"""

from studio.core.accuracy.automp import AutoMpResult, CurvePoint, auto_mixed_precision
from studio.core.accuracy.sqnr import (
    Analyser,
    LayerSqnr,
    SqnrReport,
    qdq_pairs,
    sqnr_db,
    weight_sqnr,
)


def analyse(float_model, qdq_model, feeds, *, backend: str = "cpu", ctx=None) -> SqnrReport:
    """Per-layer, weight and output SQNR of ``qdq_model`` against ``float_model``."""
    return Analyser(float_model, cache_float=False).analyse(
        qdq_model, list(feeds), backend=backend, ctx=ctx
    )


__all__ = [
    "Analyser",
    "AutoMpResult",
    "CurvePoint",
    "LayerSqnr",
    "SqnrReport",
    "analyse",
    "auto_mixed_precision",
    "qdq_pairs",
    "sqnr_db",
    "weight_sqnr",
]
