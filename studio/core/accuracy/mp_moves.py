"""The moves automatic mixed precision chooses among, and what each costs on the target device.

A move changes one tensor: an activation 8 -> 16 bit (``act16``), a 4-bit weight -> 8 bit
(``weight8``), or a post-training technique on one layer's weight (``seqmse``: the MSE-optimal
scales; ``adaround``: learned rounding on those scales). Each has an expected gain (dB, a
heuristic that the search then measures) and a latency cost on the target device: the device
estimate of the model built with that move, minus the current point's (the search builds the
best few candidates for this). Why a build and not a guess from tensor sizes: a 16-bit tensor's
cost is mostly the converts onnxruntime inserts at the new 8/16-bit boundaries and the fusions
they break (about one HTP op dispatch each), which only the built graph shows; the bytes alone
were a thousandth of it on a small CNN. Technique moves change values, not types: they cost
nothing on the device.

The search ranks moves by gain per estimated millisecond, so a cheap 16-bit tensor beats a dear
one of similar benefit (not only "fewest 16-bit tensors"), and skips a move whose predicted cost
would break the latency budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from studio.core.accuracy.report import SqnrReport
from studio.core.quantize import QuantPlan, TensorOverride

MOVE_KINDS = ("act16", "weight8", "seqmse", "adaround")
TECHNIQUE_MOVES = ("seqmse", "adaround")
MIN_TECHNIQUE_GAIN_DB = 0.1  # a layer whose weight-only SQNR a technique moves less is not tried
COST_FLOOR_FRACTION = 0.01  # costs below 1% of the model's estimate rank as that 1%


@dataclass
class Move:
    """One candidate change; ``cost_ms`` is None until the probe predicted it."""

    tensor: str
    kind: str
    gain_db: float
    cost_ms: float | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.tensor}"

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "kind": self.kind,
            "gain_db": round(self.gain_db, 3),
            "predicted_ms": None if self.cost_ms is None else round(self.cost_ms, 6),
        }


# ASSUMED own SQNR of an 8-bit activation's quantisation (dB), used only to split a layer's added
# error between its weight and its output when ranking moves; the search measures every move
ACT8_OWN_DB = 40.0
FUSED_AFTER = ("Relu", "Clip", "BatchNormalization")
RELIABLE_ADDED_DB = 0.5  # below this a layer's added dB says little about its weight


class Layers:
    """Which weight produces which analysed tensor, and how a layer's added error splits.

    A layer's ``added_db`` (the SQNR its output loses against its input) holds both its weight's
    error and its output's quantisation. The split uses the weight's measured SQNR and an
    assumed 8-bit activation SQNR (ACT8_OWN_DB): with a 4-bit weight at ~19 dB nearly all of
    it is the weight's, so widening the output to 16 bits would buy almost nothing."""

    def __init__(self, proto: Any) -> None:
        consumers: dict[str, list[Any]] = {}
        for node in proto.graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        inits = {t.name for t in proto.graph.initializer}
        self.outputs: dict[str, list[str]] = {}  # weight -> tensors its layer's figures use
        for node in proto.graph.node:
            if len(node.input) < 2 or node.input[1] not in inits or not node.output:
                continue
            if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
                continue
            chain, tensor = [node.output[0]], node.output[0]
            for _ in range(2):  # BN and ReLU/Clip folded after it: figures measured there
                nxt = consumers.get(tensor, [])
                if len(nxt) != 1 or nxt[0].op_type not in FUSED_AFTER or not nxt[0].output:
                    break
                tensor = nxt[0].output[0]
                chain.append(tensor)
            self.outputs[node.input[1]] = chain
        self.weight_of = {t: w for w, chain in self.outputs.items() for t in chain}

    def added_db(self, report: SqnrReport, weight: str) -> float | None:
        found = [
            layer.added_db
            for t in self.outputs.get(weight, [])
            if (layer := report.layer(t)) is not None and math.isfinite(layer.added_db)
        ]
        return max(found) if found else None

    @staticmethod
    def weight_share(report: SqnrReport, weight: str | None) -> float:
        """The part of a layer's added error its weight causes (0 without a weight)."""
        if weight is None or weight not in report.weights:
            return 0.0
        nw = 10 ** (-report.weights[weight] / 10)
        na = 10 ** (-ACT8_OWN_DB / 10)
        return nw / (nw + na)


def precision_moves(
    plan: QuantPlan, report: SqnrReport, tried: set[str], layers: Layers | None = None
) -> list[Move]:
    """Activations that add error and are still 8-bit; 4-bit weights (see the module)."""
    moves: list[Move] = []
    for layer in report.layers:
        share = 1.0
        if layers is not None:
            share = 1.0 - layers.weight_share(report, layers.weight_of.get(layer.tensor))
        move = Move(layer.tensor, "act16", layer.added_db * share)
        if move.key in tried:
            continue
        bits = plan.activation_bits(layer.tensor)
        if bits is None or bits >= 16 or (layer.bitwidth or 8) >= 16:
            continue
        if math.isinf(layer.added_db) or math.isnan(layer.added_db):
            continue
        moves.append(move)
    for name, db in report.weights.items():
        bits = plan.weight_bits(name)
        if bits != 4 or f"weight8:{name}" in tried:
            continue
        # a 4-bit weight near 20 dB hurts about as much as an activation adding 6+ dB; where
        # its layer's measured added error says more (a 4-bit head), that figure
        gain = max(0.0, 26.0 - db)
        added = layers.added_db(report, name) if layers is not None else None
        if added is not None and layers is not None:
            gain = max(gain, added * layers.weight_share(report, name))
        moves.append(Move(name, "weight8", gain))
    return moves


@dataclass
class LayerTechnique:
    """What one technique does to one layer's weight: its pinned encoding, the weight values
    (AdaRound rounds them onto the grid), and the weight-only output SQNR before and after."""

    override: TensorOverride
    weight: Any  # numpy array for AdaRound, None when only the scales change
    before_db: float
    after_db: float


def technique_moves(
    options: dict[str, dict[str, LayerTechnique]],
    applied: dict[str, str],
    plan: QuantPlan,
    tried: set[str],
    report: SqnrReport | None = None,
    layers: Layers | None = None,
) -> list[Move]:
    """Per layer, each technique that beats what the layer has now by MIN_TECHNIQUE_GAIN_DB.

    Its expected gain is its weight-only layer SQNR gain, capped by the part of the layer's
    measured added error its weight causes (a layer that adds nothing at the output cannot
    gain there, however much its weight-only figure moves)."""
    moves: list[Move] = []
    for kind, fitted in options.items():
        for weight, tech in fitted.items():
            move = Move(weight, kind, 0.0, cost_ms=0.0)
            if move.key in tried or applied.get(weight) == kind:
                continue
            ov = plan.overrides.get(weight)
            if ov is not None and ov.bitwidth and ov.bitwidth != tech.override.bitwidth:
                continue  # widened since: the technique was fitted at the old width
            now = applied.get(weight)
            current_db = options[now][weight].after_db if now else tech.before_db
            move.gain_db = tech.after_db - current_db
            if report is not None and layers is not None:
                added = layers.added_db(report, weight)
                # a layer measured after a folded ReLU often reads ~0 added dB (the clip hides
                # its error there): then a quarter of the weight-only gain is expected
                cap = move.gain_db / 4
                if added is not None and added > RELIABLE_ADDED_DB:
                    cap = added * layers.weight_share(report, weight)
                move.gain_db = min(move.gain_db, cap)
            if move.gain_db >= MIN_TECHNIQUE_GAIN_DB:
                moves.append(move)
    return moves


def apply_move(
    plan: QuantPlan,
    move: Move,
    options: dict[str, dict[str, LayerTechnique]],
    applied: dict[str, str],
) -> None:
    """Change ``plan`` (and ``applied``: weight -> technique) by ``move``."""
    if move.kind in TECHNIQUE_MOVES:
        tech = options[move.kind][move.tensor]
        plan.set_override(TensorOverride.from_json(tech.override.to_json()))
        applied[move.tensor] = move.kind
        return
    ov = plan.overrides.get(move.tensor) or TensorOverride(move.tensor)
    if move.kind == "weight8":
        # a technique's pinned 4-bit grid does not apply at 8 bits: back to the plan's ranges
        ov = TensorOverride(move.tensor, bitwidth=8)
        applied.pop(move.tensor, None)
    else:
        ov.bitwidth = 16
    plan.set_override(ov)


def ranked(moves: list[Move], base_ms: float | None) -> list[Move]:
    """Best gain per estimated ms first; without estimates, best gain first."""
    if base_ms is None:
        return sorted(moves, key=lambda m: -m.gain_db)
    floor = max(base_ms * COST_FLOOR_FRACTION, 1e-9)

    def value(m: Move) -> float:
        cost = m.cost_ms if m.cost_ms is not None else floor
        return m.gain_db / max(cost, floor)

    return sorted(moves, key=lambda m: (-value(m), -m.gain_db))
