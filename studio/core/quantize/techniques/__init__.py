"""Post-training techniques on ORT/numpy: cross-layer equalisation, bias correction, AdaRound,
an MSE scale search (AIMET's "sequential MSE", layer-wise) and the stable-variance rewrite of a
decomposed LayerNorm (``variance``), one module each.

How they compose (:func:`apply_techniques`): the variance rewrite and CLE rewrite the float model (the function is
unchanged, the activations between pairs are not, so the model is calibrated again); then, per
Conv/Gemm/MatMul, the scale search picks each channel's scale, AdaRound picks each weight's
rounding on that grid; bias correction comes last and needs the built QDQ model (it measures the
mean shift each biased layer's output has there: ``bias_correction.correct_biases``, called by
``studio.core.accuracy.techniques.run_techniques``). Weights a technique touched get their encoding pinned (scale/offset overrides) so the QDQ
builder reproduces exactly these codes. Each layer's effect is the weight-only output SQNR
``10 log10(E[(W x)²] / E[((Wq - W) x)²])`` on the calibration inputs, before and after.

Measuring them (building, scoring, ``auto``) lives above, in ``studio.core.accuracy.techniques``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from studio.core.errors import BadInputError
from studio.core.quantize.plan import QuantPlan, TensorOverride
from studio.core.quantize.techniques import adaround as _adaround
from studio.core.quantize.techniques import cle as _cle
from studio.core.quantize.techniques import seqmse as _seqmse
from studio.core.quantize.techniques import variance as _variance
from studio.core.quantize.techniques.layers import (
    collect_inputs,
    fake_quant_rows,
    initializer,
    output_mse,
    set_initializer,
    symmetric_scales,
    weight_layers,
)

TECHNIQUES = ("cle", "bias-correction", "adaround", "seqmse", "stable-variance")
AUTO_CANDIDATES = (
    (),
    ("bias-correction",),
    ("seqmse", "bias-correction"),
    # tried only where the graph computes a variance as E[x²] - E[x]² (``applicable``)
    ("stable-variance", "seqmse", "bias-correction"),
    ("cle", "bias-correction"),
    ("cle", "seqmse", "bias-correction"),
    ("adaround", "bias-correction"),
    ("cle", "adaround", "bias-correction"),
)


def parse_techniques(text: str | None) -> list[str] | str:
    """``"cle,adaround"`` -> ["cle", "adaround"]; ``"auto"`` -> "auto"; unknown names: error."""
    if not text:
        return []
    if text.strip() == "auto":
        return "auto"
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in TECHNIQUES]
    if bad:
        raise BadInputError(
            f"unknown technique(s) {', '.join(bad)}: choose from {', '.join(TECHNIQUES)} or auto"
        )
    # the scale search runs first, AdaRound rounds on its grid, bias correction comes last
    return [t for t in TECHNIQUES_ORDER if t in names]


TECHNIQUES_ORDER = ("stable-variance", "cle", "seqmse", "adaround", "bias-correction")


def applicable(proto: onnx.ModelProto, names: list[str] | tuple[str, ...]) -> str | None:
    """None when ``names`` can change ``proto``'s QDQ model; else why not (``auto`` skips
    such a candidate instead of spending a build on a copy of another one)."""
    if "stable-variance" in names and not _variance.has_unstable_variance(proto):
        return "no variance computed as E[x²] - E[x]² in the graph"
    return None


@dataclass
class LayerEffect:
    node: str
    weight: str
    before_db: float
    after_db: float

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "weight": self.weight,
            "before_db": self.before_db,
            "after_db": self.after_db,
        }


@dataclass
class TechniqueResult:
    model: onnx.ModelProto = field(repr=False)
    overrides: dict[str, TensorOverride]
    applied: list[str]
    notes: list[str] = field(default_factory=list)
    effects: list[LayerEffect] = field(default_factory=list)
    recalibrate: bool = False

    def plan_for(self, plan: QuantPlan) -> QuantPlan:
        out = plan.copy()
        for ov in self.overrides.values():
            out.set_override(ov)
        return out


def _db(signal: float, noise: float) -> float:
    if noise <= 0:
        return math.inf
    return 10 * math.log10(max(signal, 1e-30) / noise)


def apply_techniques(
    proto: onnx.ModelProto,
    plan: QuantPlan,
    feeds: list[dict[str, np.ndarray]],
    names: list[str],
) -> TechniqueResult:
    """``names`` applied to a copy of the prepared float model ``proto`` (see module docstring)."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    result = TechniqueResult(model=model, overrides={}, applied=list(names))
    if "stable-variance" in names:
        result.notes += _variance.stabilise_variance(model) or [
            "stable variance: no E[x²] - E[x]² in the graph"
        ]
        result.recalibrate = True
    if "cle" in names:
        result.notes += _cle.equalise(model) or ["CLE: no Conv -> ReLU -> Conv pair to equalise"]
        result.recalibrate = True
    weight_steps = [n for n in names if n not in ("cle", "stable-variance")]
    if not weight_steps:
        return result
    layers = weight_layers(model)
    inputs = collect_inputs(model, layers, feeds)
    for layer in layers:
        stats = inputs.get(layer.node)
        if stats is None:
            continue
        ov = plan.overrides.get(layer.weight)
        if ov is not None and (ov.dtype == "float" or ov.scale is not None):
            continue  # the user's own encoding wins
        bits = plan.weight_bits(layer.weight)
        per_channel = plan.per_channel and layer.op_type != "MatMul"
        w = initializer(model, layer.weight).astype(np.float64)
        m = layer.matrix(w)
        if per_channel:
            scales = symmetric_scales(m, bits)
        else:
            flat = max(float(np.abs(m).max()), 1e-12) / (2 ** (bits - 1) - 1)
            scales = np.full(m.shape[0], flat)
        before = fake_quant_rows(m, scales, bits)
        signal = float(output_mse(m, stats.hessian).sum())
        before_db = _db(signal, float(output_mse(before - m, stats.hessian).sum()))
        if "seqmse" in names:
            scales = _seqmse.best_scales(m, stats, bits, per_channel)
        mq = fake_quant_rows(m, scales, bits)
        if "adaround" in names:
            codes = _adaround.adaround(m, scales, stats, bits)
            mq = codes * scales[:, None]
            set_initializer(model, layer.weight, layer.unmatrix(mq, w.shape))
        after_db = _db(signal, float(output_mse(mq - m, stats.hessian).sum()))
        if "seqmse" in names or "adaround" in names:
            offset = -(2 ** (bits - 1))
            scale_list = [float(s) for s in scales] if per_channel else [float(scales[0])]
            result.overrides[layer.weight] = TensorOverride(
                layer.weight,
                bitwidth=bits,
                symmetric=True,
                per_channel=per_channel,
                scale=scale_list,
                offset=[offset] * len(scale_list),
            )
        result.effects.append(LayerEffect(layer.node, layer.weight, before_db, after_db))
    return result
