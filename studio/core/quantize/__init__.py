"""Quantisation: QuantPlan (user decisions) + CalibrationStats (data) -> QDQ model.

Public API::

    plan = QuantPlan(activation_bitwidth=8, weight_bitwidth=8, per_channel=True, method="minmax")
    plan.set_override(TensorOverride("/conv1/Conv_output_0", bitwidth=16))
    result = build_qdq(stats, plan, "model.qdq.onnx")   # no inference: ranges come from stats
    result.encodings                                    # what the QDQ model really uses
    proto = prepared_for_editing("model.onnx")          # before calibration: what the build folds
    quantisable_tensors(proto)                          # the tensors the build quantises

The editor's table rows (plan + measured SQNR) are in :mod:`studio.core.accuracy.table`.
"""

from studio.core.quantize.build import (
    BuildResult,
    build_coverage,
    build_qdq,
    check_htp_offload,
    encodings_of_qdq,
)
from studio.core.quantize.plan import QuantPlan, TensorOverride
from studio.core.quantize.scope import (
    prepared_for_editing,
    quantisable_tensors,
    quantised_initializers,
)

__all__ = [
    "BuildResult",
    "QuantPlan",
    "TensorOverride",
    "build_coverage",
    "build_qdq",
    "check_htp_offload",
    "encodings_of_qdq",
    "prepared_for_editing",
    "quantisable_tensors",
    "quantised_initializers",
]
