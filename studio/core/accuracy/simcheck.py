"""Float vs CPU simulation vs HTP, per layer: where the CPU QDQ reference stops telling the truth.

Why: every accuracy figure the editor shows by default comes from onnxruntime's CPU kernels
running the QDQ model, a simulation of the NPU. QNN HTP computes some ops differently (its 8-bit
Softmax, fused requantisation, LUT activations) and the difference depends on the architecture
(REFERENCE.md §8: one OCR score read 0.773 on CPU, 0.839 on v68, 0.910 on v73/v75). Measuring both
against the float model on the same samples, layer by layer, and flagging the layers whose SQNRs
differ by more than a threshold shows where to trust the simulation and where to measure on HTP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studio.core.accuracy.report import _num
from studio.core.accuracy.sqnr import Analyser

DEFAULT_THRESHOLD_DB = 3.0


@dataclass
class LayerAgreement:
    tensor: str
    op_type: str
    cpu_db: float
    htp_db: float | None  # None: HTP gave model outputs only (see notes)
    flagged: bool

    @property
    def diff_db(self) -> float | None:
        if self.htp_db is None:
            return None
        if math.isinf(self.cpu_db) and math.isinf(self.htp_db):
            return 0.0
        return self.htp_db - self.cpu_db

    def to_json(self) -> dict[str, Any]:
        diff = self.diff_db
        return {
            "tensor": self.tensor,
            "op_type": self.op_type,
            "cpu_sqnr_db": _num(self.cpu_db),
            "htp_sqnr_db": None if self.htp_db is None else _num(self.htp_db),
            "diff_db": None if diff is None else _num(diff),
            "flagged": self.flagged,
        }


@dataclass
class SimVsHtp:
    """Per-layer SQNR against float, on CPU (simulation) and on HTP (the target's emulator)."""

    layers: list[LayerAgreement]
    outputs: dict[str, tuple[float, float]]  # name -> (cpu dB, htp dB)
    threshold_db: float
    target: str
    data: str
    htp_per_layer: bool
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[str]:
        return [row.tensor for row in self.layers if row.flagged]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "threshold_db": self.threshold_db,
            "target": self.target,
            "data": self.data,
            "htp_per_layer": self.htp_per_layer,
            "layers": [row.to_json() for row in self.layers],
            "outputs": {k: {"cpu": _num(c), "htp": _num(h)} for k, (c, h) in self.outputs.items()},
            "flagged": self.flagged,
            "notes": list(self.notes),
        }


def _differs(a: float, b: float, threshold: float) -> bool:
    if math.isinf(a) and math.isinf(b):
        return False
    if math.isinf(a) or math.isinf(b):
        return True
    return abs(a - b) > threshold


def compare_sim_htp(
    float_model: str | Path | onnx.ModelProto,
    qdq_model: str | Path,
    feeds: list[dict[str, np.ndarray]],
    *,
    device: Any = None,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    data: str = "",
) -> SimVsHtp:
    """Both reports on the same samples, joined per tensor; flags where they part by more than
    ``threshold_db`` (an exact copy on one side and not the other is always flagged)."""
    analyser = Analyser(float_model)
    cpu = analyser.analyse(qdq_model, feeds, backend="cpu", data=data)
    htp = analyser.analyse(qdq_model, feeds, backend="htp", device=device, data=data)
    htp_layers = {layer.tensor: layer for layer in htp.layers}
    rows = []
    for layer in cpu.layers:
        other = htp_layers.get(layer.tensor) if htp.htp_intermediates else None
        htp_db = other.sqnr_db if other is not None else None
        flagged = htp_db is not None and _differs(layer.sqnr_db, htp_db, threshold_db)
        rows.append(LayerAgreement(layer.tensor, layer.op_type, layer.sqnr_db, htp_db, flagged))
    notes = list(htp.notes)
    if not htp.htp_intermediates:
        notes.append("HTP gave model outputs only: no per-layer HTP figures (see the note above)")
    outputs = {name: (db, htp.outputs.get(name, math.nan)) for name, db in cpu.outputs.items()}
    return SimVsHtp(
        layers=rows,
        outputs=outputs,
        threshold_db=float(threshold_db),
        target=htp.target,
        data=data,
        htp_per_layer=htp.htp_intermediates,
        notes=notes,
    )
