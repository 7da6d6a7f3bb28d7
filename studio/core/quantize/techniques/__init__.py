"""Post-training techniques on ORT/numpy: cross-layer equalisation, bias correction, AdaRound and
an MSE scale search (AIMET's "sequential MSE", layer-wise), one module each.

How they compose (:func:`apply_techniques`): CLE rewrites the float model (the function is
unchanged, the activations between pairs are not, so the model is calibrated again); then, per
Conv/Gemm/MatMul, the scale search picks each channel's scale, AdaRound picks each weight's
rounding on that grid, and bias correction removes the mean output shift of the final quantised
weight. Weights a technique touched get their encoding pinned (scale/offset overrides) so the QDQ
builder reproduces exactly these codes. Each layer's effect is the weight-only output SQNR
``10 log10(E[(W x)²] / E[((Wq - W) x)²])`` on the calibration inputs, before and after.

``auto`` (:func:`choose_techniques`) builds a few combinations and keeps the best by output SQNR
on the evaluation data (with none among the candidates, so it never loses to the default).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studio.core.errors import BadInputError
from studio.core.quantize.plan import QuantPlan, TensorOverride
from studio.core.quantize.techniques import adaround as _adaround
from studio.core.quantize.techniques import bias_correction as _bias
from studio.core.quantize.techniques import cle as _cle
from studio.core.quantize.techniques import seqmse as _seqmse
from studio.core.quantize.techniques.layers import (
    collect_inputs,
    fake_quant_rows,
    initializer,
    output_mse,
    set_initializer,
    symmetric_scales,
    weight_layers,
)

TECHNIQUES = ("cle", "bias-correction", "adaround", "seqmse")
AUTO_CANDIDATES = (
    (),
    ("bias-correction",),
    ("seqmse", "bias-correction"),
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


TECHNIQUES_ORDER = ("cle", "seqmse", "adaround", "bias-correction")


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
    if "cle" in names:
        result.notes += _cle.equalise(model) or ["CLE: no Conv -> ReLU -> Conv pair to equalise"]
        result.recalibrate = True
    weight_steps = [n for n in names if n != "cle"]
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
        bits = (ov.bitwidth if ov is not None and ov.bitwidth else None) or plan.weight_bitwidth
        per_channel = plan.per_channel and layer.op_type != "MatMul"
        w = initializer(model, layer.weight).astype(np.float64)
        m = layer.matrix(w)
        if per_channel:
            scales = symmetric_scales(m, bits)
        else:
            flat = max(float(np.abs(m).max()), 1e-12) / (2 ** (bits - 1) - 1)
            scales = np.full(m.shape[0], flat)
        before = fake_quant_rows(m, scales, bits)
        signal = float(np.einsum("od,de,oe->", m, stats.hessian, m))
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
        if "bias-correction" in names and layer.bias is not None:
            b = initializer(model, layer.bias).astype(np.float64)
            if b.size == m.shape[0]:
                fixed = _bias.corrected_bias(b.reshape(-1), m, mq, stats)
                set_initializer(model, layer.bias, fixed.reshape(b.shape))
        result.effects.append(LayerEffect(layer.node, layer.weight, before_db, after_db))
    return result


@dataclass
class TechniqueRun:
    """A built QDQ model with techniques: its stats, plan, technique result and output SQNR."""

    names: list[str]
    qdq_path: str
    stats: Any
    plan: QuantPlan
    technique: TechniqueResult
    output_sqnr_db: float
    report: Any = None
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "techniques": list(self.names),
            "output_sqnr_db": self.output_sqnr_db,
            "layers": [e.to_json() for e in self.technique.effects],
            "notes": list(self.technique.notes),
            "elapsed_s": self.elapsed_s,
        }


def run_techniques(
    stats: Any,
    plan: QuantPlan,
    names: list[str],
    out_path: str | Path,
    *,
    calib_feeds: list[dict[str, np.ndarray]],
    eval_feeds: list[dict[str, np.ndarray]],
    recalibrate: Callable[[str], Any],
    reference: Any = None,
) -> TechniqueRun:
    """Apply ``names``, (re)calibrate when needed, build the QDQ model to ``out_path`` and
    measure its output SQNR against ``reference`` (default: ``stats``' prepared float model)."""
    from studio.core.accuracy.sqnr import Analyser
    from studio.core.quantize.build import build_qdq

    start = time.perf_counter()
    proto = onnx.load(str(stats.prepared_model))
    tech = apply_techniques(proto, plan, calib_feeds, names)
    run_stats = stats
    model = tech.model
    if tech.recalibrate:
        with tempfile.TemporaryDirectory(prefix="npu-studio-cle-") as tmp:
            path = Path(tmp) / "cle.onnx"
            onnx.save(model, str(path))
            run_stats = recalibrate(str(path))
        # the weight steps ran on the equalised model; the recalibrated stats name its tensors
        model = tech.model
    run_plan = tech.plan_for(plan)
    build_qdq(run_stats, run_plan, out_path, model=model)
    ref = reference if reference is not None else stats.prepared_model
    report = Analyser(ref, cache_float=False).analyse(out_path, eval_feeds)
    return TechniqueRun(
        names=list(names),
        qdq_path=str(out_path),
        stats=run_stats,
        plan=run_plan,
        technique=tech,
        output_sqnr_db=report.output_sqnr_db,
        report=report,
        elapsed_s=time.perf_counter() - start,
    )


def choose_techniques(
    stats: Any,
    plan: QuantPlan,
    out_path: str | Path,
    *,
    calib_feeds: list[dict[str, np.ndarray]],
    eval_feeds: list[dict[str, np.ndarray]],
    recalibrate: Callable[[str], Any],
    candidates: tuple[tuple[str, ...], ...] = AUTO_CANDIDATES,
    budget_s: float = 540.0,
    log: Callable[[str], None] | None = None,
) -> tuple[TechniqueRun, list[dict[str, Any]]]:
    """``--techniques auto``: the candidate with the best output SQNR on ``eval_feeds``; stops
    trying new candidates once ``budget_s`` is spent (the 10-minute promise). Returns the
    winner (its model at ``out_path``) and every candidate's figure."""
    start = time.perf_counter()
    out = Path(out_path)
    best: TechniqueRun | None = None
    tried: list[dict[str, Any]] = []
    for index, names in enumerate(candidates):
        if best is not None and time.perf_counter() - start > budget_s:
            tried.append({"techniques": list(names), "skipped": "time budget spent"})
            continue
        work = out.with_name(f"{out.stem}.cand{index}.onnx")
        run = run_techniques(
            stats,
            plan,
            list(names),
            work,
            calib_feeds=calib_feeds,
            eval_feeds=eval_feeds,
            recalibrate=recalibrate,
        )
        tried.append({"techniques": list(names), "output_sqnr_db": run.output_sqnr_db})
        if log:
            log(f"techniques {'+'.join(names) or 'none'}: {run.output_sqnr_db:.2f} dB")
        if best is None or run.output_sqnr_db > best.output_sqnr_db:
            if best is not None:
                Path(best.qdq_path).unlink(missing_ok=True)
            best = run
        else:
            work.unlink(missing_ok=True)
    assert best is not None
    Path(best.qdq_path).replace(out)
    best.qdq_path = str(out)
    return best, tried
