"""Techniques measured: build the QDQ model with post-training techniques and score it, and
``auto``, which builds a few combinations and keeps the best by output SQNR on the evaluation
data (no technique is among the candidates, so it never loses to the default).

Above quantize (it measures with :class:`studio.core.accuracy.sqnr.Analyser`); the techniques
themselves are in ``studio.core.quantize.techniques``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studio.core.accuracy.sqnr import Analyser
from studio.core.model.loading import copy_model
from studio.core.quantize.build import build_qdq
from studio.core.quantize.plan import QuantPlan
from studio.core.quantize.techniques import (
    AUTO_CANDIDATES,
    TechniqueResult,
    applicable,
    apply_techniques,
)
from studio.core.quantize.techniques.bias_correction import correct_biases
from studio.core.quantize.techniques.variance import stabilise_variance


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
    # the float model before bias correction (None when it was not applied): correction is
    # measured against one plan's QDQ model, so a search that changes the plan (auto-MP)
    # starts from this one and corrects its own chosen point (``auto_mixed_precision``)
    uncorrected: onnx.ModelProto | None = None

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
    start = time.perf_counter()
    proto = onnx.load(str(stats.prepared_model))
    run_stats = stats
    notes: list[str] = []
    rest = list(names)
    if "stable-variance" in names:
        # a structural rewrite: calibrate it and let the preparation (fusions) see it before
        # the other techniques, so they and the builder work on the graph the stats name
        notes = stabilise_variance(proto) or ["stable variance: no E[x²] - E[x]² in the graph"]
        rest = [n for n in names if n != "stable-variance"]
        with tempfile.TemporaryDirectory(prefix="npu-studio-var-") as tmp:
            path = Path(tmp) / "variance.onnx"
            onnx.save(proto, str(path))
            run_stats = recalibrate(str(path))
        proto = onnx.load(str(run_stats.prepared_model))
    tech = apply_techniques(proto, plan, calib_feeds, rest)
    tech.notes[:0] = notes
    tech.applied = list(names)
    tech.recalibrate = tech.recalibrate or bool(notes)
    model = tech.model
    if "cle" in rest:
        with tempfile.TemporaryDirectory(prefix="npu-studio-cle-") as tmp:
            path = Path(tmp) / "cle.onnx"
            onnx.save(model, str(path))
            run_stats = recalibrate(str(path))
        # the weight steps ran on the equalised model; the recalibrated stats name its tensors
        model = tech.model
    run_plan = tech.plan_for(plan)
    uncorrected = None
    if "bias-correction" in names:
        uncorrected = copy_model(model)
        # last: it measures the shifts in the QDQ model the other steps produced
        tech.notes += correct_biases(model, run_stats, run_plan, calib_feeds).notes()
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
        uncorrected=uncorrected,
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
    prepared = onnx.load(str(stats.prepared_model))
    for index, names in enumerate(candidates):
        why_not = applicable(prepared, names)
        if why_not:
            tried.append({"techniques": list(names), "skipped": why_not})
            continue
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
