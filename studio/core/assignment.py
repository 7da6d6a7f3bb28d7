"""Per-layer backend scoring and a cost-minimising assignment that explains itself.

Each node gets, per backend, a score with visible parts: supported (a hard gate, with the real
backend's reason when not), precision fit, tensor size against the backend's fast memory, power
efficiency, and cost (measured time when a profile exists, else a MAC/byte-based estimate that is
labelled as such). The assignment then minimises total cost over the topological order with a
dynamic programme whose transitions charge the price of a backend boundary (transfer plus
quantise/dequantise), so one cheap node is not ping-ponged to another backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.core.errors import BackendUnavailableError, BadInputError

SCHEMA_VERSION = 1
BACKEND_ORDER = ("htp", "gpu", "cpu")

# Rough effective rates used only when nothing was measured. Every figure derived from them is
# labelled "estimated" in the plan and the UI. MAC/ms and bytes/ms per backend.
EST_MACS_PER_MS = {"htp": 5e8, "gpu": 1e8, "cpu": 2e7}
EST_BYTES_PER_MS = {"htp": 2e7, "gpu": 1e7, "cpu": 5e6}
EST_OP_OVERHEAD_MS = {"htp": 0.004, "gpu": 0.02, "cpu": 0.002}
# Relative energy per unit of work (HTP is the most efficient; CPU the least).
ENERGY_PER_MS = {"htp": 1.0, "gpu": 3.0, "cpu": 8.0}
POWER_EFFICIENCY = {"htp": 1.0, "gpu": 0.45, "cpu": 0.15}
BOUNDARY_BYTES_PER_MS = 5e6  # ~5 GB/s shared-memory copy
BOUNDARY_SYNC_MS = 0.05
VTCM_BYTES_DEFAULT = 8 * 1024 * 1024


@dataclass
class Support:
    supported: bool
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"supported": self.supported, "reason": self.reason}


@dataclass
class Cost:
    ms: float
    source: str  # "measured" | "estimated"

    def to_json(self) -> dict[str, Any]:
        return {"ms": self.ms, "source": self.source}


@dataclass
class Constraints:
    power_critical: bool = False
    performance_critical: bool = False
    latency_budget_ms: float | None = None
    pins: dict[str, str] = field(default_factory=dict)

    def weights(self) -> tuple[float, float]:
        """(time weight, energy weight) of the objective."""
        if self.performance_critical:
            return 1.0, 0.0
        if self.power_critical:
            return 1.0, 2.0
        return 1.0, 0.1


@dataclass
class BackendScore:
    backend: str
    supported: bool
    reason: str
    precision: str
    precision_fit: float
    size_fit: float
    power_efficiency: float
    cost_ms: float | None
    cost_source: str
    score: float  # 0-100, higher is better; 0 when unsupported

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class NodeDecision:
    node_id: str
    op_type: str
    backend: str
    reason: str
    scores: dict[str, BackendScore]

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "op_type": self.op_type,
            "backend": self.backend,
            "reason": self.reason,
            "scores": {b: s.to_json() for b, s in self.scores.items()},
        }


@dataclass
class Plan:
    model_sha256: str
    backends: list[str]
    constraints: Constraints
    decisions: list[NodeDecision]
    summary: dict[str, Any]

    @property
    def assignment(self) -> dict[str, str]:
        return {d.node_id: d.backend for d in self.decisions}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "npu-studio.backend-plan",
            "model_sha256": self.model_sha256,
            "backends": list(self.backends),
            "constraints": {
                "power_critical": self.constraints.power_critical,
                "performance_critical": self.constraints.performance_critical,
                "latency_budget_ms": self.constraints.latency_budget_ms,
                "pins": dict(self.constraints.pins),
            },
            "nodes": [d.to_json() for d in self.decisions],
            "summary": self.summary,
        }


def _precision(node: Any, graph: Any, backend: str, quantized: bool) -> tuple[str, float]:
    """What arithmetic this node would use on ``backend`` and how well that suits the backend."""
    if backend == "htp":
        return ("int8/int16", 1.0) if quantized else ("fp16", 0.8)
    if backend == "gpu":
        return ("fp16", 1.0) if not quantized else ("fp16 (dequantised)", 0.7)
    return ("fp32", 1.0) if not quantized else ("int8 (CPU QDQ)", 0.9)


def _is_quantized(node: Any, graph: Any) -> bool:
    """A node is quantised when a DequantizeLinear feeds it (QDQ format)."""
    for tensor in node.inputs:
        info = graph.tensors.get(tensor)
        if info is not None and info.producer:
            producer = graph.node_by_id.get(info.producer)
            if producer is not None and producer.op_type == "DequantizeLinear":
                return True
    return node.op_type in ("QuantizeLinear", "DequantizeLinear")


def estimate_ms(node: Any, backend: str) -> float:
    """MAC- or byte-based time estimate, used only when no profile of that backend exists."""
    work = node.macs / EST_MACS_PER_MS[backend] if node.macs else 0.0
    traffic = (node.activation_bytes or 0) / EST_BYTES_PER_MS[backend]
    return EST_OP_OVERHEAD_MS[backend] + max(work, traffic)


def score_node(
    node: Any,
    graph: Any,
    backend: str,
    support: Support,
    measured_ms: float | None,
    vtcm_bytes: int = VTCM_BYTES_DEFAULT,
) -> BackendScore:
    quantized = _is_quantized(node, graph)
    precision, fit = _precision(node, graph, backend, quantized)
    largest = max(
        (graph.tensors[t].nbytes or 0 for t in node.outputs if t in graph.tensors), default=0
    )
    size_fit = 1.0 if backend != "htp" or largest <= vtcm_bytes else 0.5
    if not support.supported:
        return BackendScore(
            backend,
            False,
            support.reason,
            precision,
            fit,
            size_fit,
            POWER_EFFICIENCY[backend],
            None,
            "",
            0.0,
        )
    cost = measured_ms if measured_ms is not None else estimate_ms(node, backend)
    source = "measured" if measured_ms is not None else "estimated"
    # A bounded, comparable 0-100 figure: fast, well-fitting, efficient backends score high.
    speed = 1.0 / (1.0 + cost / 0.1)
    score = 100.0 * (0.5 * speed + 0.2 * fit + 0.15 * size_fit + 0.15 * POWER_EFFICIENCY[backend])
    return BackendScore(
        backend,
        True,
        support.reason,
        precision,
        fit,
        size_fit,
        POWER_EFFICIENCY[backend],
        cost,
        source,
        round(score, 1),
    )


def boundary_ms(num_bytes: int, quantize: bool) -> float:
    """Cost of handing a tensor to another backend: sync + copy (+ (de)quantise when needed)."""
    copy = num_bytes / BOUNDARY_BYTES_PER_MS
    return BOUNDARY_SYNC_MS + copy * (2.0 if quantize else 1.0)


def assign(
    graph: Any,
    support: Mapping[str, Mapping[str, Support]],
    available: list[str],
    constraints: Constraints | None = None,
    measured: Mapping[str, Mapping[str, float]] | None = None,
    vtcm_bytes: int = VTCM_BYTES_DEFAULT,
) -> Plan:
    """Choose a backend per node minimising time (+ weighted energy) plus boundary costs."""
    constraints = constraints or Constraints()
    measured = measured or {}
    backends = [b for b in BACKEND_ORDER if b in available]
    if not backends:
        raise BackendUnavailableError("no backend is available to assign nodes to")
    nodes = [n for n in graph.nodes if not (n.op_type == "Constant" and not n.inputs)]
    for node_id, backend in constraints.pins.items():
        if node_id not in graph.node_by_id:
            raise BadInputError(f"pin names node '{node_id}' that the model lacks")
        if backend not in backends:
            raise BackendUnavailableError(
                f"pin '{node_id}={backend}': backend '{backend}' is not available here"
            )
        if not support.get(node_id, {}).get(backend, Support(True)).supported:
            reason = support[node_id][backend].reason
            raise BadInputError(
                f"pin '{node_id}={backend}': {backend.upper()} rejects it: {reason}"
            )

    scores = [
        {
            b: score_node(
                n,
                graph,
                b,
                support.get(n.id, {}).get(b, Support(True)),
                measured.get(n.id, {}).get(b),
                vtcm_bytes,
            )
            for b in backends
        }
        for n in nodes
    ]
    time_w, energy_w = constraints.weights()
    choice = _solve(nodes, graph, scores, backends, constraints.pins, time_w, energy_w)
    total = _estimated_total(nodes, graph, scores, choice)
    budget = constraints.latency_budget_ms
    over_budget = False
    if budget is not None and total > budget and energy_w > 0:
        fastest = _solve(nodes, graph, scores, backends, constraints.pins, 1.0, 0.0)
        if _estimated_total(nodes, graph, scores, fastest) < total:
            choice = fastest
            total = _estimated_total(nodes, graph, scores, choice)
    if budget is not None and total > budget:
        over_budget = True

    decisions = [
        NodeDecision(
            n.id,
            n.op_type,
            choice[i],
            _explain(i, nodes, graph, scores, choice, constraints),
            scores[i],
        )
        for i, n in enumerate(nodes)
    ]
    summary = _summarise(nodes, graph, scores, choice, backends, total, budget, over_budget)
    return Plan(graph.sha256(), backends, constraints, decisions, summary)


def _node_cost(score: BackendScore, time_w: float, energy_w: float) -> float:
    if not score.supported or score.cost_ms is None:
        return math.inf
    adjusted = score.cost_ms / max(score.precision_fit, 1e-3) / max(score.size_fit, 1e-3)
    return time_w * adjusted + energy_w * score.cost_ms * ENERGY_PER_MS[score.backend]


def _transition(nodes: list[Any], graph: Any, i: int) -> float:
    """Boundary cost if node i-1 and node i run on different backends."""
    prev = nodes[i - 1]
    nbytes = sum(graph.tensors[t].nbytes or 0 for t in prev.outputs if t in graph.tensors)
    return boundary_ms(int(nbytes), quantize=True)


def _solve(nodes, graph, scores, backends, pins, time_w, energy_w) -> list[str]:
    n = len(nodes)
    if n == 0:
        return []
    cost = [[math.inf] * len(backends) for _ in range(n)]
    back = [[0] * len(backends) for _ in range(n)]
    for i, node in enumerate(nodes):
        pinned = pins.get(node.id)
        trans = _transition(nodes, graph, i) if i else 0.0
        for j, b in enumerate(backends):
            if pinned is not None and b != pinned:
                continue
            here = _node_cost(scores[i][b], time_w, energy_w)
            if pinned == b and math.isinf(here):
                here = 1e9  # pinned: honour it even when we could not cost it
            if i == 0:
                cost[i][j] = here
                continue
            best, arg = math.inf, 0
            for k in range(len(backends)):
                candidate = cost[i - 1][k] + (trans if k != j else 0.0)
                if candidate < best:
                    best, arg = candidate, k
            cost[i][j] = best + here
            back[i][j] = arg
    j = min(range(len(backends)), key=lambda k: cost[n - 1][k])
    if math.isinf(cost[n - 1][j]):
        blocked = next(nd.id for i, nd in enumerate(nodes) if all(math.isinf(c) for c in cost[i]))
        raise BackendUnavailableError(f"no available backend accepts node '{blocked}'")
    choice = [""] * n
    for i in range(n - 1, -1, -1):
        choice[i] = backends[j]
        j = back[i][j]
    return choice


def _estimated_total(nodes, graph, scores, choice) -> float:
    total = 0.0
    for i, b in enumerate(choice):
        total += scores[i][b].cost_ms or 0.0
        if i and choice[i - 1] != b:
            total += _transition(nodes, graph, i)
    return total


def _explain(i, nodes, graph, scores, choice, constraints) -> str:
    node, chosen = nodes[i], choice[i]
    if node.id in constraints.pins:
        return f"pinned to {chosen.upper()} by the user"
    own = scores[i][chosen]
    rejected = [s for s in scores[i].values() if not s.supported]
    parts = []
    if rejected:
        parts.append("; ".join(f"{s.backend.upper()} rejects it: {s.reason}" for s in rejected))
    supported = {b: s for b, s in scores[i].items() if s.supported and s.cost_ms is not None}
    cheapest = min(supported, key=lambda b: supported[b].cost_ms) if supported else chosen
    if cheapest != chosen:
        parts.append(
            f"kept on {chosen.upper()} with its neighbours: {cheapest.upper()} would be "
            f"{supported[cheapest].cost_ms:.3f} ms ({supported[cheapest].cost_source}) vs "
            f"{own.cost_ms:.3f} ms, but moving it alone adds backend boundaries"
        )
    else:
        others = ", ".join(
            f"{b.upper()} {s.cost_ms:.3f} ms" for b, s in supported.items() if b != chosen
        )
        parts.append(
            f"{chosen.upper()} {own.cost_ms:.3f} ms ({own.cost_source}), {own.precision}"
            + (f"; vs {others}" if others else "")
        )
    return "; ".join(parts)


def _summarise(
    nodes, graph, scores, choice, backends, total, budget, over_budget
) -> dict[str, Any]:
    per_backend = {b: {"nodes": 0, "macs": 0, "estimated_ms": 0.0} for b in backends}
    for i, b in enumerate(choice):
        per_backend[b]["nodes"] += 1
        per_backend[b]["macs"] += int(nodes[i].macs or 0)
        per_backend[b]["estimated_ms"] += scores[i][b].cost_ms or 0.0
    boundaries = sum(1 for i in range(1, len(choice)) if choice[i] != choice[i - 1])
    sources = {scores[i][b].cost_source for i, b in enumerate(choice)}
    return {
        "per_backend": per_backend,
        "boundaries": boundaries,
        "segments": boundaries + 1 if choice else 0,
        "estimated_total_ms": total,
        "cost_sources": sorted(sources),
        "latency_budget_ms": budget,
        "over_budget": over_budget,
    }
