"""One row per quantisable tensor: what the quantisation editor's table shows.

Why in core: the Qt table model (``QAbstractTableModel``) should only display rows; what a row
says (the plan's encoding for the tensor, whether the user or an import set it, the measured
SQNR) is decided here, in accuracy because a row joins the plan (quantize) with the
measured SQNR (accuracy, one layer up), testable without Qt, and the CLI can print the same rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import onnx

from studio.core.accuracy.report import SqnrReport
from studio.core.calibration import CalibrationStats
from studio.core.quantize.plan import QuantPlan

COLUMNS = (
    "tensor",
    "kind",
    "op_type",
    "shape",
    "bitwidth",
    "dtype",
    "symmetric",
    "per_channel",
    "min",
    "max",
    "scale",
    "offset",
    "source",
    "sqnr_db",
    "added_db",
    "quant_mse",
    "over_threshold",
)


@dataclass
class TensorRow:
    """A row of the editor. ``source``: "default", "override" (user edit) or "imported"."""

    tensor: str
    kind: str
    op_type: str
    shape: list[int] | None
    bitwidth: int
    dtype: str
    symmetric: bool
    per_channel: bool
    min: float | None
    max: float | None
    scale: float | None
    offset: int | None
    source: str
    sqnr_db: float | None = None
    added_db: float | None = None
    # quantise-dequantise MSE relative to the tensor's mean square (quantize.mse)
    quant_mse: float | None = None
    over_threshold: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tensor_rows(
    stats: CalibrationStats,
    plan: QuantPlan,
    report: SqnrReport | None = None,
    model: onnx.ModelProto | None = None,
    mse_threshold: float | None = None,
) -> list[TensorRow]:
    """Rows for every activation (graph order) then every weight, as ``plan`` would build them.

    ``report`` adds measured per-layer SQNR (activations) and weight SQNR. Per-channel rows show
    the first channel's scale/offset and the overall min/max. ``quant_mse`` is each tensor's
    relative quantisation MSE; rows above ``mse_threshold`` are marked ``over_threshold``.
    """
    from studio.core.quantize.mse import quantisation_mse

    proto = model if model is not None else onnx.load(str(stats.prepared_model))
    encodings = plan.encodings(stats, proto)
    mses = quantisation_mse(stats, encodings, proto)
    producers = {o: n.op_type for n in proto.graph.node for o in n.output}
    init_shapes = {t.name: list(t.dims) for t in proto.graph.initializer}
    layers = {layer.tensor: layer for layer in report.layers} if report else {}
    weights = report.weights if report else {}
    rows = []
    for name, enc in encodings.items():
        if name in plan.overrides:
            source = "override"
        elif plan.imported is not None and name in plan.imported:
            source = "imported"
        else:
            source = "default"
        layer = layers.get(name)
        is_act = enc.kind == "activation"
        rows.append(
            TensorRow(
                tensor=name,
                kind=enc.kind,
                op_type=producers.get(name, "Input") if is_act else "Initializer",
                shape=stats.shapes.get(name) if is_act else init_shapes.get(name),
                bitwidth=enc.bitwidth,
                dtype=enc.dtype,
                symmetric=bool(enc.symmetric),
                per_channel=enc.per_channel,
                min=min(enc.min) if enc.min else None,
                max=max(enc.max) if enc.max else None,
                scale=enc.scale[0] if enc.scale else None,
                offset=enc.offset[0] if enc.offset else None,
                source=source,
                sqnr_db=(layer.sqnr_db if layer else None) if is_act else weights.get(name),
                added_db=layer.added_db if layer else None,
                quant_mse=mses[name].relative if name in mses else None,
                over_threshold=(
                    mse_threshold is not None
                    and name in mses
                    and mses[name].relative > mse_threshold
                ),
            )
        )
    return rows
