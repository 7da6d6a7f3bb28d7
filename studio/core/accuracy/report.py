"""SQNR results: per-layer, weight and output figures, as JSON-able dataclasses.

SQNR = 20 log10(||x|| / ||x - y||) = 10 log10(sum x^2 / sum (x - y)^2), pooled over samples. An
exact copy is +inf, written to JSON as the string "inf" (JSON has no infinities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


def sqnr_db(signal_sq: float, noise_sq: float) -> float:
    """SQNR in dB from summed squares; +inf when the copy is exact."""
    if noise_sq <= 0.0:
        return math.inf
    if signal_sq <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_sq / noise_sq)


@dataclass
class LayerSqnr:
    """One quantised activation: cumulative SQNR and the part this tensor adds itself.

    ``fused_with`` names the lone Relu/Clip the tensor feeds: its figures are measured after that
    activation (applied to the float and the quantised value alike), which is what propagates.
    ``saturates_in`` names the Tanh/Sigmoid/HardSigmoid the tensor alone feeds (directly or
    through scalar Mul/Div/Add/Sub): the builder quantises it only over the range that function
    tells apart, so its figures are measured after the function too.
    """

    tensor: str
    op_type: str
    node: str
    sqnr_db: float
    added_db: float = 0.0
    bitwidth: int | None = None
    fused_with: str | None = None
    saturates_in: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "op_type": self.op_type,
            "node": self.node,
            "sqnr_db": _num(self.sqnr_db),
            "added_db": _num(self.added_db),
            "bitwidth": self.bitwidth,
            "fused_with": self.fused_with,
            "saturates_in": self.saturates_in,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerSqnr:
        return cls(
            tensor=data["tensor"],
            op_type=data.get("op_type", ""),
            node=data.get("node", ""),
            sqnr_db=_unnum(data["sqnr_db"]),
            added_db=_unnum(data.get("added_db", 0.0)),
            bitwidth=data.get("bitwidth"),
            fused_with=data.get("fused_with"),
            saturates_in=data.get("saturates_in"),
        )


@dataclass
class SqnrReport:
    """What ``analyse`` measured, and on what."""

    backend: str
    samples: int
    layers: list[LayerSqnr] = field(default_factory=list)
    outputs: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    htp_intermediates: bool = False
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    # what the figures are measured on: the data split (accuracy.split) and the target
    data: str = ""
    target: str = ""

    @property
    def output_sqnr_db(self) -> float:
        """The worst output's SQNR (what a target is checked against)."""
        return min(self.outputs.values()) if self.outputs else math.nan

    def layer(self, tensor: str) -> LayerSqnr | None:
        return next((item for item in self.layers if item.tensor == tensor), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "backend": self.backend,
            "samples": self.samples,
            "output_sqnr_db": _num(self.output_sqnr_db),
            "outputs": {k: _num(v) for k, v in self.outputs.items()},
            "layers": [item.to_json() for item in self.layers],
            "weights": {k: _num(v) for k, v in self.weights.items()},
            "htp_intermediates": self.htp_intermediates,
            "notes": list(self.notes),
            "elapsed_s": self.elapsed_s,
            "data": self.data,
            "target": self.target,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SqnrReport:
        return cls(
            backend=data["backend"],
            samples=int(data["samples"]),
            layers=[LayerSqnr.from_json(d) for d in data.get("layers", [])],
            outputs={k: _unnum(v) for k, v in data.get("outputs", {}).items()},
            weights={k: _unnum(v) for k, v in data.get("weights", {}).items()},
            htp_intermediates=bool(data.get("htp_intermediates", False)),
            notes=list(data.get("notes", [])),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            data=str(data.get("data", "")),
            target=str(data.get("target", "")),
        )


def _num(value: float) -> float | str:
    """JSON has no infinities: an exact match is written as the string "inf"."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None if math.isnan(value) else float(value)  # type: ignore[return-value]


def _unnum(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)


# ----- pairing float tensors with their QDQ stand-ins -----------------------------------------
