"""Automatic mixed precision: promote the most damaging tensors until the output SQNR target.

Greedy and measured, never estimated: each step builds the QDQ model for the current plan (no
recalibration, ~tens of ms), measures per-layer SQNR on the evaluation samples, stops when the
worst model output reaches ``target_db`` or the budget is spent, else promotes the ``step``
tensors that ADD the most error themselves (``LayerSqnr.added_db``, not the cumulative SQNR,
which is low everywhere downstream of one bad layer): activations 8 -> 16 bit, and weights 4 -> 8
bit when their own SQNR is the worst. Float fallback is not used: on QNN HTP a float tensor
leaves the NPU. The curve keeps every point, with HTP cycles when ``profile_fn`` is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.accuracy.report import SqnrReport, _num, _unnum
from studio.core.accuracy.sqnr import Analyser
from studio.core.calibration import CalibrationStats
from studio.core.jobs.protocol import JobContext
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq

SCHEMA_VERSION = 1
ProfileFn = Callable[[str], float]


@dataclass
class CurvePoint:
    """One measured configuration of the search."""

    step: int
    wide_tensors: int
    output_sqnr_db: float
    promoted: list[str] = field(default_factory=list)
    cycles: float | None = None
    kept: bool = True
    # the target device's estimated latency of this point (the speed axis decisions use)
    estimated_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "wide_tensors": self.wide_tensors,
            "output_sqnr_db": _num(self.output_sqnr_db),
            "promoted": list(self.promoted),
            "cycles": self.cycles,
            "kept": self.kept,
            "estimated_ms": self.estimated_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CurvePoint:
        return cls(
            step=int(data["step"]),
            wide_tensors=int(data["wide_tensors"]),
            output_sqnr_db=_unnum(data["output_sqnr_db"]),
            promoted=list(data.get("promoted", [])),
            cycles=data.get("cycles"),
            kept=bool(data.get("kept", True)),
            estimated_ms=data.get("estimated_ms"),
        )


@dataclass
class AutoMpResult:
    """The curve, the plan at the chosen point, and whether the target was met."""

    target_db: float
    met: bool
    plan: QuantPlan
    backend: str = "cpu"
    curve: list[CurvePoint] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)
    final_report: SqnrReport | None = None
    qdq_path: str | None = None
    elapsed_s: float = 0.0
    latency_budget_ms: float | None = None
    stopped_by_budget: bool = False

    def pareto(self) -> list[CurvePoint]:
        """Points no other point beats on both SQNR and estimated ms (needs estimates)."""
        pts = [p for p in self.curve if p.estimated_ms is not None]
        return [
            p
            for p in pts
            if not any(
                q is not p
                and q.output_sqnr_db >= p.output_sqnr_db
                and q.estimated_ms <= p.estimated_ms  # type: ignore[operator]
                and (q.output_sqnr_db > p.output_sqnr_db or q.estimated_ms < p.estimated_ms)  # type: ignore[operator]
                for q in pts
            )
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "target_db": self.target_db,
            "met": self.met,
            "backend": self.backend,
            "plan": self.plan.to_json(),
            "curve": [p.to_json() for p in self.curve],
            "promoted": list(self.promoted),
            "final_report": self.final_report.to_json() if self.final_report else None,
            "qdq_path": self.qdq_path,
            "elapsed_s": self.elapsed_s,
            "latency_budget_ms": self.latency_budget_ms,
            "stopped_by_budget": self.stopped_by_budget,
            "pareto": [p.step for p in self.pareto()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AutoMpResult:
        report = data.get("final_report")
        return cls(
            target_db=float(data["target_db"]),
            met=bool(data["met"]),
            plan=QuantPlan.from_json(data["plan"]),
            backend=str(data.get("backend", "cpu")),
            curve=[CurvePoint.from_json(p) for p in data.get("curve", [])],
            promoted=list(data.get("promoted", [])),
            final_report=SqnrReport.from_json(report) if report else None,
            qdq_path=data.get("qdq_path"),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            latency_budget_ms=data.get("latency_budget_ms"),
            stopped_by_budget=bool(data.get("stopped_by_budget", False)),
        )


def auto_mixed_precision(
    stats: CalibrationStats,
    plan: QuantPlan,
    feeds: list[dict[str, np.ndarray]],
    out_path: str | Path,
    *,
    target_db: float,
    max_steps: int = 10,
    max_promoted: int | None = None,
    step_size: int = 1,
    profile_fn: ProfileFn | None = None,
    backend: str = "cpu",
    min_gain_db: float = 0.05,
    ctx: JobContext | None = None,
    estimate_fn: ProfileFn | None = None,
    latency_budget_ms: float | None = None,
) -> AutoMpResult:
    """Search from ``plan`` (left unchanged) and write the chosen QDQ model to ``out_path``.

    ``backend="htp"`` measures every point on QNN HTP (CPU fallback disabled) instead of the
    CPU QDQ reference: slower per step, but it ranks what the NPU really loses (e.g. its 8-bit
    Softmax differs from ORT's CPU kernel by tens of dB on the demo model). A step that gains
    less than ``min_gain_db`` is measured, shown in the curve (``kept=False``) and undone, and
    its tensors are not tried again: 16-bit tensors cost cycles and must earn their place.

    ``estimate_fn`` (model path -> estimated ms on the target device) gives every point its speed;
    with ``latency_budget_ms`` a point whose estimate exceeds the budget is undone and the search
    stops there (the budget is a stopping rule beside the SQNR target).
    """
    ctx = ctx or JobContext()
    start = time.perf_counter()
    current = plan.copy()
    analyser = Analyser(stats.prepared_model)
    out = Path(out_path)
    work = out.with_name(out.stem + ".search.onnx")
    result = AutoMpResult(target_db=float(target_db), met=False, plan=current, backend=backend)
    best_db = -math.inf
    best_plan = current.copy()
    best_report: SqnrReport | None = None
    tried: set[str] = set()
    just_promoted: list[str] = []
    promoted_total: list[str] = []
    try:
        for step in range(max_steps + 1):
            ctx.check_cancelled()
            ctx.progress(step / (max_steps + 1), f"mixed precision: step {step}")
            built = build_qdq(stats, current, work)
            report = analyser.analyse(work, feeds, backend=backend)
            cycles = float(profile_fn(str(work))) if profile_fn is not None else None
            est_ms = float(estimate_fn(str(work))) if estimate_fn is not None else None
            over = (
                latency_budget_ms is not None and est_ms is not None and est_ms > latency_budget_ms
            )
            kept = report.output_sqnr_db > best_db + min_gain_db and (not over or step == 0)
            result.curve.append(
                CurvePoint(
                    step=step,
                    wide_tensors=len(built.wide_tensors),
                    output_sqnr_db=report.output_sqnr_db,
                    promoted=list(just_promoted),
                    cycles=cycles,
                    kept=kept,
                    estimated_ms=est_ms,
                )
            )
            if kept:  # better: this is the new base, and its model the current answer
                best_db, best_plan, best_report = report.output_sqnr_db, current.copy(), report
                promoted_total += just_promoted
                work.replace(out)
            else:  # no gain: undo, and do not try these tensors again
                ctx.log(f"step {step}: no gain from {', '.join(just_promoted)}; reverted")
                current = best_plan.copy()
            if best_db >= target_db:
                result.met = True
                break
            if over:
                ctx.log(
                    f"step {step}: estimated {est_ms:.3f} ms > latency budget "
                    f"{latency_budget_ms:.3f} ms; stopped"
                )
                result.stopped_by_budget = True
                break
            if step == max_steps:
                break
            if max_promoted is not None and len(promoted_total) >= max_promoted:
                break
            budget = step_size
            if max_promoted is not None:
                budget = min(budget, max_promoted - len(promoted_total))
            assert best_report is not None
            just_promoted = _promote(current, best_report, budget, tried)
            tried.update(just_promoted)
            if not just_promoted:
                break  # nothing left to widen
            ctx.log(f"step {step + 1}: 16-bit {', '.join(just_promoted)}")
    finally:
        if work.exists():
            work.unlink()
    result.plan = best_plan
    result.latency_budget_ms = latency_budget_ms
    result.final_report = best_report
    result.qdq_path = str(out)
    result.promoted = promoted_total
    result.elapsed_s = time.perf_counter() - start
    ctx.progress(1.0, "mixed precision done")
    return result


def _promote(plan: QuantPlan, report: SqnrReport, count: int, tried: set[str]) -> list[str]:
    """Widen the ``count`` worst offenders not tried before; returns their names."""
    candidates: list[tuple[float, str, str]] = []
    for layer in report.layers:
        if layer.tensor in tried:
            continue
        bits = plan.activation_bits(layer.tensor)
        if bits is None or bits >= 16 or (layer.bitwidth or 8) >= 16:
            continue
        if math.isinf(layer.added_db) or math.isnan(layer.added_db):
            continue
        candidates.append((layer.added_db, layer.tensor, "act"))
    if plan.weight_bitwidth == 4:
        for name, db in report.weights.items():
            if name in tried:
                continue
            ov = plan.overrides.get(name)
            if ov is not None and (ov.bitwidth or 4) >= 8:
                continue
            # a 4-bit weight near 20 dB hurts about as much as an activation adding 6+ dB
            candidates.append((max(0.0, 26.0 - db), name, "weight"))
    candidates.sort(key=lambda c: -c[0])
    chosen = []
    for _score, name, kind in candidates[:count]:
        ov = plan.overrides.get(name) or TensorOverride(name)
        ov.bitwidth = 16 if kind == "act" else 8
        plan.set_override(ov)
        chosen.append(name)
    return chosen
