"""Per-layer backend scoring and a cost-minimising assignment that explains itself.

Costs are in ONE unit for ONE device: milliseconds on the target device (``--device``). HTP costs
come from the device model (:mod:`studio.core.devices.estimate`, "estimated", with its measured
error); CPU/GPU costs of the phone use visible assumed rates ("assumed"); a per-layer profile counts
("measured") only when it was taken on real hardware. The x86-64 HTP emulator's wall time and
cycles, and this host's CPU kernel times, describe no device and never enter a decision.

The assignment minimises total cost over the topological order with a dynamic programme whose
transitions charge the price of a backend boundary (transfer of every tensor live across the cut,
plus quantise or dequantise; assumed rates), so one cheap node is never ping-ponged to another
backend. Each reason quotes the two costs and the boundaries that really exist around the node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from studio.core.assignment.assumptions import Assumptions
from studio.core.assignment.plan import (  # noqa: F401 - re-exported: callers import them from here
    BACKEND_ORDER,
    PLAN_KIND,
    SCHEMA_VERSION,
    BackendScore,
    NodeDecision,
    NodeSupport,
    Plan,
)
from studio.core.assignment.support import support_map
from studio.core.errors import BackendUnavailableError, BadInputError, ConfigError
from studio.core.model.ops import QDQ_OPS
from studio.core.project import Constraints

# The ASSUMED phone figures (CPU/GPU rates, energy per ms, boundary costs) live in assumptions.py:
# named, editable (Backends workspace, `assign --assume`), saved in the project's constraints and
# recorded in every plan's summary["assumptions"]. HTP's own fallback rates below are used only for
# a node the device model has no figure for.
DEFAULTS = Assumptions()
HTP_FALLBACK = {"macs_per_ms": 5e8, "bytes_per_ms": 2e7, "op_overhead_ms": 0.004}
VTCM_BYTES_DEFAULT = 8 * 1024 * 1024


def weights(constraints: Constraints) -> tuple[float, float]:
    """(time weight, energy weight) of the objective the constraints ask for."""
    if constraints.performance_critical:
        return 1.0, 0.0
    if constraints.power_critical:
        return 1.0, 2.0
    return 1.0, 0.1


# ----- scoring --------------------------------------------------------------------------------
def quant_bits(node: Any, graph: Any) -> int | None:
    """8 or 16 when the node runs quantised (a DequantizeLinear feeds it), else None."""
    if node.op_type in QDQ_OPS:
        tensor = node.inputs[0] if node.op_type == "DequantizeLinear" else node.outputs[0]
        return _bits(graph, tensor)
    for tensor in node.inputs:
        info = graph.tensors.get(tensor)
        producer = graph.node_by_id.get(info.producer) if info and info.producer else None
        if producer is not None and producer.op_type == "DequantizeLinear" and producer.inputs:
            return _bits(graph, producer.inputs[0])
    return None


def _bits(graph: Any, tensor: str) -> int | None:
    info = graph.tensors.get(tensor)
    dtype = info.dtype if info is not None else None
    return {"uint8": 8, "int8": 8, "uint16": 16, "int16": 16, "int32": 32}.get(dtype or "", None)


def precision_fit(backend: str, bits: int | None) -> tuple[str, float]:
    """What arithmetic the node uses on ``backend`` and how well that suits it (0-1)."""
    if backend == "htp":
        return (f"int{min(bits, 16)}", 1.0) if bits else ("fp16", 0.7)
    if backend == "gpu":
        return ("fp16", 1.0) if not bits else ("fp16 (dequantised)", 0.7)
    return ("fp32", 1.0) if not bits else ("fp32 (QDQ simulated)", 0.8)


def estimate_ms(node: Any, backend: str, assumptions: Assumptions = DEFAULTS) -> float:
    """MAC- or byte-based time from assumed rates, used only when no better figure exists."""
    if backend == "htp":
        macs_rate, bytes_rate, overhead = HTP_FALLBACK.values()
    else:
        macs_rate = assumptions.macs_per_ms(backend)
        bytes_rate = assumptions.bytes_per_ms(backend)
        overhead = assumptions.op_overhead_ms(backend)
    work = node.macs / macs_rate if node.macs else 0.0
    traffic = (node.activation_bytes or 0) / bytes_rate
    return overhead + max(work, traffic)


def largest_tensor(node: Any, graph: Any) -> int:
    sizes = [graph.tensors[t].nbytes or 0 for t in node.inputs + node.outputs if t in graph.tensors]
    return max(sizes, default=0)


def score_node(
    node: Any,
    graph: Any,
    backend: str,
    support: NodeSupport,
    measured_ms: float | None,
    constraints: Constraints | None = None,
    vtcm_bytes: int = VTCM_BYTES_DEFAULT,
    device_ms: tuple[float, str] | None = None,
    assumptions: Assumptions = DEFAULTS,
) -> BackendScore:
    """The visible parts of one node's score on one backend (see the module docstring).

    ``measured_ms``: a real-hardware figure; ``device_ms``: (ms, source) from the device model.
    """
    precision, fit = precision_fit(backend, quant_bits(node, graph))
    size_fit = 1.0 if backend != "htp" or largest_tensor(node, graph) <= vtcm_bytes else 0.5
    power = assumptions.power_efficiency(backend)
    if not support.supported:
        return BackendScore(
            backend, False, support.reason, precision, fit, size_fit, power, None, "", 0.0
        )
    if measured_ms is not None:
        cost, source = measured_ms, "measured"
    elif device_ms is not None:
        cost, source = device_ms
    else:
        cost, source = estimate_ms(node, backend, assumptions), "assumed"
    power_w = 0.3 if constraints is not None and constraints.power_critical else 0.15
    speed_w = 0.65 - power_w if constraints is None or not constraints.performance_critical else 0.6
    speed = 1.0 / (1.0 + cost / 0.1)  # bounded: 0.1 ms scores 0.5
    rest = 1.0 - speed_w - power_w
    score = 100.0 * (speed_w * speed + power_w * power + rest * (0.6 * fit + 0.4 * size_fit))
    return BackendScore(
        backend,
        True,
        support.reason,
        precision,
        fit,
        size_fit,
        power,
        cost,
        source,
        round(score, 1),
    )


def boundary_ms(num_bytes: int, convert: bool, assumptions: Assumptions = DEFAULTS) -> float:
    """Cost of handing tensors to another backend: sync + copy (+ (de)quantise when needed)."""
    copy = num_bytes / assumptions["boundary_bytes_per_ms"]
    return assumptions["boundary_sync_ms"] + copy * (2.0 if convert else 1.0)


def cut_costs(nodes: list[Any], graph: Any, assumptions: Assumptions = DEFAULTS) -> list[float]:
    """cost[i]: price of a backend change between nodes[i-1] and nodes[i].

    Every tensor produced before the cut and consumed after it crosses; a float tensor crossing
    to or from HTP must also be (de)quantised, so float crossings cost twice the copy.
    """
    position = {n.id: i for i, n in enumerate(nodes)}
    crossing = [0] * (len(nodes) + 1)
    floats = [0] * (len(nodes) + 1)
    for i, node in enumerate(nodes):
        for tensor in node.outputs:
            info = graph.tensors.get(tensor)
            if info is None:
                continue
            last = max((position.get(c, -1) for c in info.consumers), default=-1)
            if last <= i:
                continue
            size = info.nbytes or 0
            crossing[i + 1] += size
            crossing[last + 1] -= size
            if info.dtype in ("float32", "float16"):
                floats[i + 1] += 1
                floats[last + 1] -= 1
    costs, live, live_floats = [0.0], 0, 0
    for i in range(1, len(nodes)):
        live += crossing[i]
        live_floats += floats[i]
        costs.append(boundary_ms(live, live_floats > 0, assumptions))
    return costs


# ----- the assignment -------------------------------------------------------------------------
def assign(
    graph: Any,
    support: Mapping[str, Mapping[str, NodeSupport]],
    available: list[str],
    constraints: Constraints | None = None,
    measured: Mapping[str, Mapping[str, float]] | None = None,
    vtcm_bytes: int = VTCM_BYTES_DEFAULT,
    device_costs: Mapping[str, Mapping[str, tuple[float, str]]] | None = None,
    device: str | None = None,
    assumptions: Assumptions | None = None,
) -> Plan:
    """Choose a backend per node minimising time (+ weighted energy) plus boundary costs.

    ``support``: node id -> backend -> NodeSupport (from opsupport); a backend with no entry for a
    node counts as NOT supported ("not probed"), except the CPU reference. ``measured``: backend
    -> node id -> ms from a per-layer profile on REAL hardware. ``device_costs``: backend -> node
    id -> (ms, source) on the target device (:func:`device_costs_for`); anything still missing
    falls back to the assumed rates, labelled "assumed". ``assumptions``: the assumed constants
    (default: the constraints' own ``assumptions`` over the defaults).
    """
    constraints = constraints or Constraints()
    assumed = assumptions or Assumptions(constraints.assumptions, "constraints.assumptions")
    measured = measured or {}
    device_costs = device_costs or {}
    backends = [b for b in BACKEND_ORDER if b in available]
    if not backends:
        raise BackendUnavailableError("no backend is available to assign nodes to")
    nodes = [n for n in graph.nodes if not (n.op_type == "Constant" and not n.inputs)]

    def support_of(node_id: str, backend: str) -> NodeSupport:
        found = support.get(node_id, {}).get(backend)
        if found is not None:
            return found
        if backend == "cpu":
            return NodeSupport(True, "ONNX Runtime CPU EP (reference)", "reference")
        return NodeSupport(False, f"{backend.upper()} support not probed for this node")

    _check_pins(graph, constraints, backends, support_of)
    scores = [
        {
            b: score_node(
                n,
                graph,
                b,
                support_of(n.id, b),
                measured.get(b, {}).get(n.id),
                constraints,
                vtcm_bytes,
                device_costs.get(b, {}).get(n.id),
                assumed,
            )
            for b in backends
        }
        for n in nodes
    ]
    cuts = cut_costs(nodes, graph, assumed)
    time_w, energy_w = weights(constraints)
    energy = {b: assumed.energy_per_ms(b) for b in backends}
    choice = _solve(nodes, scores, cuts, backends, constraints.pins, time_w, energy_w, energy)
    total = _estimated_total(scores, cuts, choice)
    budget = constraints.latency_budget_ms
    switched = False
    if budget is not None and total > budget and energy_w > 0:
        fastest = _solve(nodes, scores, cuts, backends, constraints.pins, 1.0, 0.0, energy)
        if _estimated_total(scores, cuts, fastest) < total:
            choice, total, switched = fastest, _estimated_total(scores, cuts, fastest), True
    decisions = [
        NodeDecision(
            n.id,
            n.op_type,
            choice[i],
            _explain(i, nodes, scores, choice, constraints, cuts, energy),
            scores[i],
            pinned=n.id in constraints.pins,
        )
        for i, n in enumerate(nodes)
    ]
    summary = _summarise(nodes, scores, cuts, choice, backends, total, budget)
    summary["budget_forced_fastest"] = switched
    summary["device"] = device
    summary["assumptions"] = assumed.to_summary()
    shapes = {
        t.name: list(t.shape)
        for t in graph.inputs
        if t.shape and all(isinstance(d, int) and d > 0 for d in t.shape)
    }
    return Plan(graph.sha256(), backends, constraints, decisions, summary, shapes)


def _check_pins(graph: Any, constraints: Constraints, backends: list[str], support_of) -> None:
    missing = [n for n in constraints.pins if n not in graph.node_by_id]
    if missing:
        raise ConfigError(f"pins name node(s) the model lacks: {', '.join(missing)}")
    for node_id, backend in constraints.pins.items():
        if backend not in backends:
            raise BackendUnavailableError(
                f"pin '{node_id}={backend}': backend '{backend}' is not available here "
                f"(available: {', '.join(backends)})"
            )
        verdict = support_of(node_id, backend)
        if not verdict.supported:
            raise BadInputError(
                f"pin '{node_id}={backend}': {backend.upper()} rejects this node: {verdict.reason}"
            )


def _node_cost(
    score: BackendScore, time_w: float, energy_w: float, energy: Mapping[str, float]
) -> float:
    if not score.supported or score.cost_ms is None:
        return math.inf
    # Time in ms on the device, plus the (assumed) energy term; no factor rescales a cost.
    return time_w * score.cost_ms + energy_w * score.cost_ms * energy[score.backend]


def _solve(nodes, scores, cuts, backends, pins, time_w, energy_w, energy) -> list[str]:
    """Viterbi over the topological order: state = backend of the current node."""
    n = len(nodes)
    if n == 0:
        return []
    cost = [[math.inf] * len(backends) for _ in range(n)]
    back = [[0] * len(backends) for _ in range(n)]
    for i, node in enumerate(nodes):
        pinned = pins.get(node.id)
        for j, b in enumerate(backends):
            if pinned is not None and b != pinned:
                continue
            here = _node_cost(scores[i][b], time_w, energy_w, energy)
            if math.isinf(here):
                continue
            if i == 0:
                cost[i][j] = here
                continue
            best, arg = math.inf, 0
            for k in range(len(backends)):
                candidate = cost[i - 1][k] + (cuts[i] if k != j else 0.0)
                if candidate < best:
                    best, arg = candidate, k
            cost[i][j] = best + here
            back[i][j] = arg
        if all(math.isinf(c) for c in cost[i]):
            raise BackendUnavailableError(
                f"no available backend ({', '.join(backends)}) accepts node '{node.id}'"
            )
    j = min(range(len(backends)), key=lambda k: cost[n - 1][k])
    choice = [""] * n
    for i in range(n - 1, -1, -1):
        choice[i] = backends[j]
        j = back[i][j]
    return choice


def _estimated_total(scores, cuts, choice) -> float:
    total = 0.0
    for i, b in enumerate(choice):
        total += scores[i][b].cost_ms or 0.0
        if i and choice[i - 1] != b:
            total += cuts[i]
    return total


def _boundaries_if(i: int, choice: list[str], backend: str, cuts: list[float]) -> tuple[int, float]:
    """(boundaries, their ms) around node i if it ran on ``backend`` and its neighbours stayed."""
    count, ms = 0, 0.0
    if i > 0 and choice[i - 1] != backend:
        count, ms = count + 1, ms + cuts[i]
    if i + 1 < len(choice) and choice[i + 1] != backend:
        count, ms = count + 1, ms + cuts[i + 1]
    return count, ms


def _explain(i, nodes, scores, choice, constraints, cuts, energy) -> str:
    """Why node i runs where it does, from the real cost difference and the real boundaries."""
    node, chosen = nodes[i], choice[i]
    if node.id in constraints.pins:
        return f"pinned to {chosen.upper()} by the user"
    own = scores[i][chosen]
    parts = [
        f"{s.backend.upper()} rejects it: {s.reason.rstrip('.')}"
        for s in scores[i].values()
        if not s.supported
    ]
    supported = {b: s for b, s in scores[i].items() if s.supported and s.cost_ms is not None}
    others = {b: s for b, s in supported.items() if b != chosen}
    if not others:
        parts.append(
            f"only {chosen.upper()} can run it: {own.cost_ms:.4f} ms ({own.cost_source})"
            if own.cost_ms is not None
            else f"only {chosen.upper()} can run it"
        )
        return "; ".join(parts)
    alt_name = min(others, key=lambda b: others[b].cost_ms)
    alt = others[alt_name]
    here_b, here_ms = _boundaries_if(i, choice, chosen, cuts)
    there_b, there_ms = _boundaries_if(i, choice, alt_name, cuts)
    costs = (
        f"{chosen.upper()} {own.cost_ms:.4f} ms ({own.cost_source}) vs "
        f"{alt_name.upper()} {alt.cost_ms:.4f} ms ({alt.cost_source})"
    )
    close = abs(own.cost_ms - alt.cost_ms) <= 0.1 * max(own.cost_ms, alt.cost_ms, 1e-12)
    if own.cost_ms <= alt.cost_ms:
        why = f"{chosen.upper()} is faster: {costs}"
        if close:
            why = f"costs within 10%: {costs}"
            if energy[chosen] < energy[alt_name]:
                why += f"; {chosen.upper()} uses less energy (assumed figures)"
    else:
        extra = there_ms - here_ms
        if there_b > here_b and extra > 0 and alt.cost_ms + extra >= own.cost_ms:
            why = (
                f"kept on {chosen.upper()} although {alt_name.upper()} is faster ({costs}): "
                f"moving it alone adds {there_b - here_b} backend boundar"
                f"{'y' if there_b - here_b == 1 else 'ies'} costing {extra:.4f} ms (assumed)"
            )
        elif energy[chosen] < energy[alt_name]:
            why = (
                f"kept on {chosen.upper()} although {alt_name.upper()} is faster ({costs}): "
                f"it uses less energy (assumed figures)"
            )
        else:
            why = f"kept on {chosen.upper()} ({costs}) by the segment it belongs to"
    if here_b:
        why += f"; {here_b} boundary/boundaries around it ({here_ms:.4f} ms assumed)"
    parts.append(why)
    return "; ".join(parts)


def _summarise(nodes, scores, cuts, choice, backends, total, budget) -> dict[str, Any]:
    per_backend = {b: {"nodes": 0, "macs": 0, "estimated_ms": 0.0} for b in backends}
    for i, b in enumerate(choice):
        per_backend[b]["nodes"] += 1
        per_backend[b]["macs"] += int(nodes[i].macs or 0)
        per_backend[b]["estimated_ms"] += scores[i][b].cost_ms or 0.0
    boundaries = [i for i in range(1, len(choice)) if choice[i] != choice[i - 1]]
    return {
        "nodes": len(choice),
        "per_backend": per_backend,
        "boundaries": len(boundaries),
        "boundary_ms": sum(cuts[i] for i in boundaries),
        "segments": len(boundaries) + 1 if choice else 0,
        "estimated_total_ms": total,
        "cost_sources": sorted(
            {scores[i][b].cost_source for i, b in enumerate(choice)}
            | ({"assumed (boundaries)"} if boundaries else set())
        ),
        "latency_budget_ms": budget,
        "over_budget": budget is not None and total > budget,
    }


def device_costs_for(
    graph: Any, device: Any = None, assumptions: Assumptions = DEFAULTS
) -> dict[str, dict[str, tuple[float, str]]]:
    """backend -> node id -> (ms, source) on the target device, in one unit.

    HTP: the device model's per-node estimate (nodes the compiler folds or that are Q/DQ plumbing
    cost 0 there). CPU/GPU of the phone: the assumed rates, labelled "assumed".
    """
    from studio.core.devices.estimate import estimate_graph

    est = estimate_graph(graph, device, assumptions=assumptions.values())
    label = "estimated"  # for plan.summary["device"], with the device model's error
    htp_ms = est.node_ms()
    costs: dict[str, dict[str, tuple[float, str]]] = {"htp": {}, "cpu": {}, "gpu": {}}
    for node in graph.nodes:
        costs["htp"][node.id] = (htp_ms.get(node.id, 0.0), label)
        costs["cpu"][node.id] = (estimate_ms(node, "cpu", assumptions), "assumed")
        costs["gpu"][node.id] = (estimate_ms(node, "gpu", assumptions), "assumed")
    return costs


def plan_for(
    graph: Any,
    report: Any,
    constraints: Constraints | None = None,
    measured: Mapping[str, Mapping[str, float]] | None = None,
    device: Any = None,
    assumptions: Assumptions | None = None,
) -> Plan:
    """Assign from an :class:`~studio.core.assignment.support.OpSupportReport` (backends and verdicts)
    with costs on ``device`` (the default target when None) and the assumed constants in force
    (``assumptions``, else the constraints' own over the defaults)."""
    from studio.core.devices.catalogue import current_device, resolve_device

    dev = resolve_device(device) if device is not None else current_device()
    vtcm_mb = float(report.options.get("vtcm_mb", VTCM_BYTES_DEFAULT / 1024 / 1024))
    if assumptions is None:
        overrides = constraints.assumptions if constraints is not None else {}
        assumptions = Assumptions(overrides, "constraints.assumptions")
    return assign(
        graph,
        support_map(report),
        report.available(),
        constraints,
        measured,
        vtcm_bytes=int(vtcm_mb * 1024 * 1024),
        device_costs=device_costs_for(graph, dev, assumptions),
        device=dev.name,
        assumptions=assumptions,
    )


def is_real_hardware(run: Mapping[str, Any]) -> bool:
    """A profile counts as "measured" only on real hardware: an Arm host (a Snapdragon laptop or
    phone). On x86-64, HTP is the emulator and the CPU is this host's, not the target's."""
    machine = str((run.get("host") or {}).get("machine", "")).lower()
    return machine in ("aarch64", "arm64")


def measured_from_profile(run: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """Backend and node id -> ms from a saved profile run (``ProfileRun.to_json()`` shape).

    Only rows in the backend's own measure are used: on CPU, ORT's kernel times (µs); on QNN,
    the profiler's cycles, while rows timed in µs there are nodes ORT ran on the CPU EP, not on
    this backend. Cycles cannot become ms without the chip's clock, but their proportions are
    measured and so is the run's median latency: each op gets the QNN part of that latency
    (median minus the CPU-placed rows) in proportion to its cycles. On an x86-64 host HTP is a
    simulator, so these are simulator times: the plan labels its source "measured" and the
    profile record says which host measured it.
    """
    backend = str(run.get("backend", ""))
    if backend not in BACKEND_ORDER:
        raise BadInputError(
            f"profile run is for backend {backend!r}, not one of {'/'.join(BACKEND_ORDER)}"
        )
    rows = [r for r in run.get("layers", []) if isinstance(r, Mapping) and r.get("node_id")]
    p50 = float((run.get("stats") or {}).get("p50_ms") or 0.0)
    cycle_rows = [r for r in rows if r.get("cycles") is not None]
    ms: dict[str, float] = {}
    if cycle_rows:
        other_ms = sum(
            float(r["time_us"]) / 1000.0
            for r in rows
            if r.get("cycles") is None and r.get("time_us") is not None
        )
        total = sum(float(r["cycles"]) for r in cycle_rows)
        budget = max(p50 - other_ms, 0.0)
        for r in cycle_rows:
            if total > 0 and budget > 0:
                ms[str(r["node_id"])] = budget * float(r["cycles"]) / total
    else:
        for r in rows:
            if r.get("time_us") is not None:
                ms[str(r["node_id"])] = float(r["time_us"]) / 1000.0
    for r in rows:
        if str(r["node_id"]) in ms:
            for fused in r.get("fused") or []:
                ms.setdefault(str(fused), 0.0)  # folded into this row's op by the backend
    return backend, ms


def measured_from_runs(
    runs: list[Mapping[str, Any]], model_sha256: str = ""
) -> dict[str, dict[str, float]]:
    """backend -> node id -> ms from several profile records; later records win per backend.

    Records of another model (a different sha256) are skipped: their node ids may coincide
    while their costs mean nothing here.
    """
    measured: dict[str, dict[str, float]] = {}
    for run in runs:
        sha = str(run.get("model_sha256") or "")
        if model_sha256 and sha and sha != model_sha256:
            continue
        if not is_real_hardware(run):
            continue  # emulator / host times describe no device
        backend, ms = measured_from_profile(run)
        if ms:
            measured[backend] = ms
    return measured
