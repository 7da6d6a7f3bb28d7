"""Assignment: real op support in, contiguous segments out, every decision explained."""

from __future__ import annotations

import pytest

from studio.core.assignment.scoring import NodeSupport, Plan, assign, cut_costs, plan_for
from studio.core.errors import BackendUnavailableError, BadInputError, ConfigError
from studio.core.model.graph import ModelGraph
from studio.core.project import Constraints
from tests import builders


@pytest.mark.htp
def test_erf_tail_goes_to_cpu_conv_block_to_htp(qdq_erf_probed):
    _, graph, report = qdq_erf_probed
    plan = plan_for(graph, report)
    chosen = plan.assignment
    assert chosen["/conv/Conv"] == "htp" and chosen["/conv/Relu"] == "htp"
    assert chosen["/tail/Erf"] == "cpu" and chosen["r_DQ"] == "cpu"
    # Mul alone would be supported on HTP, but one node is not worth two more boundaries.
    assert report.nodes["/tail/Mul"]["htp"].supported and chosen["/tail/Mul"] == "cpu"
    erf = plan.decision("/tail/Erf")
    assert "HTP rejects it" in erf.reason and "Erf" in erf.reason
    assert erf.scores["htp"].score == 0 and not erf.scores["htp"].supported
    conv = plan.decision("/conv/Conv").scores["htp"]
    assert conv.precision == "int8" and conv.cost_source == "estimated"
    summary = plan.summary
    backends_used = [chosen[n.id] for n in graph.nodes if n.id in chosen]
    changes = sum(1 for a, b in zip(backends_used, backends_used[1:], strict=False) if a != b)
    assert summary["boundaries"] == changes and summary["segments"] == changes + 1
    assert summary["per_backend"]["htp"]["macs"] == graph.node_by_id["/conv/Conv"].macs
    # HTP costs from the device model, the phone CPU's from visible assumed rates, boundaries assumed
    assert "estimated" in summary["cost_sources"]
    assert set(summary["cost_sources"]) <= {"estimated", "assumed", "assumed (boundaries)"}
    assert summary["device"] == "Samsung Galaxy S24"
    assert summary["assumptions"]["kind"] == "assumed"
    assert summary["assumptions"]["values"]["boundary_sync_ms"] > 0
    assert "gpu" not in plan.backends


@pytest.mark.htp
def test_pins(qdq_erf_probed):
    _, graph, report = qdq_erf_probed
    plan = plan_for(graph, report, Constraints(pins={"/conv/Relu": "cpu"}))
    assert plan.assignment["/conv/Relu"] == "cpu"
    assert plan.decision("/conv/Relu").pinned
    assert "pinned" in plan.decision("/conv/Relu").reason
    with pytest.raises(BackendUnavailableError, match="gpu"):
        plan_for(graph, report, Constraints(pins={"/conv/Relu": "gpu"}))
    with pytest.raises(ConfigError, match="nope"):
        plan_for(graph, report, Constraints(pins={"nope": "cpu"}))
    with pytest.raises(BadInputError, match="Erf"):
        plan_for(graph, report, Constraints(pins={"/tail/Erf": "htp"}))


@pytest.mark.htp
def test_plan_json_round_trip_and_foreign_nodes(qdq_erf_probed, tmp_path):
    _, graph, report = qdq_erf_probed
    plan = plan_for(graph, report, Constraints(power_critical=True, latency_budget_ms=5.0))
    data = plan.to_json()
    assert data["schema_version"] == 1
    back = Plan.from_json(data, graph=graph)
    assert back.to_json() == data
    other = ModelGraph.load(builders.save(builders.conv_relu(), tmp_path / "other.onnx"))
    with pytest.raises(ConfigError, match=r"12 node\(s\) the model lacks: .x_Q."):
        Plan.from_json(data, "plan.json", graph=other)
    with pytest.raises(ConfigError, match="schema_version"):
        Plan.from_json({**data, "schema_version": 7}, "plan.json")
    broken = {**data, "nodes": [{"node_id": "x"}]}
    with pytest.raises(ConfigError, match=r"plan\.json: nodes\[0\]\.backend: missing"):
        Plan.from_json(broken, "plan.json")
    typed = {**data, "nodes": [{**data["nodes"][0], "pinned": "yes"}]}
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.pinned: expected true or false"):
        Plan.from_json(typed, "plan.json")


def _float_graph(tmp_path):
    return ModelGraph.load(builders.save(builders.small_cnn(), tmp_path / "cnn.onnx"))


def _all_supported(graph):
    return {n.id: {"htp": NodeSupport(True), "cpu": NodeSupport(True)} for n in graph.nodes}


def test_measured_cost_beats_estimate_and_power_vs_performance(tmp_path):
    graph = _float_graph(tmp_path)
    support = _all_supported(graph)
    # Profiles (as the profiling workspace hands them over): HTP 2 ms per node, CPU 1 ms.
    measured = {
        "htp": {n.id: 2.0 for n in graph.nodes},
        "cpu": {n.id: 1.0 for n in graph.nodes},
    }
    fast = assign(graph, support, ["htp", "cpu"], Constraints(performance_critical=True), measured)
    assert set(fast.assignment.values()) == {"cpu"}
    assert fast.summary["cost_sources"] == ["measured"]
    frugal = assign(graph, support, ["htp", "cpu"], Constraints(power_critical=True), measured)
    assert set(frugal.assignment.values()) == {"htp"}
    assert "less energy (assumed figures)" in frugal.decisions[0].reason
    assert "HTP 2.0000 ms (measured) vs CPU 1.0000 ms (measured)" in frugal.decisions[0].reason
    # A budget the power-optimal plan misses makes the assignment take the fastest one.
    budget = Constraints(power_critical=True, latency_budget_ms=10.0)
    forced = assign(graph, support, ["htp", "cpu"], budget, measured)
    assert set(forced.assignment.values()) == {"cpu"}
    assert forced.summary["budget_forced_fastest"] and not forced.summary["over_budget"]
    tight = assign(graph, support, ["htp", "cpu"], Constraints(latency_budget_ms=0.5), measured)
    assert tight.summary["over_budget"]


def test_no_ping_pong_for_one_cheap_node(tmp_path):
    graph = _float_graph(tmp_path)
    support = _all_supported(graph)
    measured = {
        "htp": {n.id: 0.01 for n in graph.nodes},
        "cpu": {n.id: 1.0 for n in graph.nodes},
    }
    measured["cpu"]["/block/Add"] = 0.009  # marginally cheaper alone on CPU
    plan = assign(graph, support, ["htp", "cpu"], Constraints(performance_critical=True), measured)
    assert plan.assignment["/block/Add"] == "htp" and plan.summary["boundaries"] == 0
    assert "boundaries" in plan.decision("/block/Add").reason
    # Unprobed backends are never assumed to work.
    partial = {n.id: {"cpu": NodeSupport(True)} for n in graph.nodes}
    unprobed = assign(graph, partial, ["htp", "cpu"])
    assert set(unprobed.assignment.values()) == {"cpu"}
    assert "not probed" in unprobed.decisions[0].scores["htp"].reason


def test_cut_cost_counts_tensors_live_across_the_cut(tmp_path):
    graph = _float_graph(tmp_path)
    nodes = graph.nodes
    cuts = cut_costs(nodes, graph)
    # Between stem Relu and block Conv, the Relu output crosses (used by Conv and the residual Add);
    # between block Conv and Add both the Conv output and the residual cross: a larger cut.
    i_conv = next(i for i, n in enumerate(nodes) if n.id == "/block/conv/Conv")
    i_add = next(i for i, n in enumerate(nodes) if n.id == "/block/Add")
    assert cuts[i_add] > cuts[i_conv] > 0
    with pytest.raises(BackendUnavailableError):
        assign(graph, _all_supported(graph), [])


@pytest.mark.htp
def test_measured_per_layer_times_from_real_profiles_replace_estimates(qdq_erf_probed):
    """Profiles from the profiling core (HTP cycles, CPU kernel times) feed the assignment."""
    from studio.core.assignment.scoring import measured_from_runs
    from studio.core.jobs.client import run_in_worker
    from studio.core.jobs.protocol import job_kind
    from studio.core.profiling.job import profile_model

    path, graph, report = qdq_erf_probed
    records = [
        run_in_worker(
            job_kind(profile_model),
            {"model": str(path), "backend": b, "runs": 3, "warmup": 1, "layer_runs": 2},
            timeout_s=120,
        )
        for b in ("htp", "cpu")
    ]
    # On this x86-64 host the HTP run is the emulator and the CPU run is the host's CPU: neither
    # describes the target device, so neither enters a decision.
    assert all(r["host"]["machine"] == "x86_64" for r in records)
    assert measured_from_runs(records, graph.sha256()) == {}
    # The same records taken on real hardware (an Arm host) are used as measured figures.
    records = [dict(r, host=dict(r["host"], machine="aarch64")) for r in records]
    measured = measured_from_runs(records, graph.sha256())
    assert set(measured) == {"htp", "cpu"}
    # HTP rows are cycles: the QNN share of the measured median is split by cycle counts.
    htp_cycles = [r for r in records[0]["layers"] if r.get("cycles") is not None]
    assert htp_cycles and set(measured["htp"]) >= {r["node_id"] for r in htp_cycles}
    assert "/tail/Erf" not in measured["htp"]  # ORT ran it on the CPU EP in the HTP run
    assert measured["cpu"]["/conv/Conv"] > 0
    plan = plan_for(graph, report, Constraints(), measured)
    conv_cpu = plan.decision("/conv/Conv").scores["cpu"]
    assert conv_cpu.cost_source == "measured" and conv_cpu.cost_ms == measured["cpu"]["/conv/Conv"]
    assert "measured" in plan.summary["cost_sources"]
    other = dict(records[1], model_sha256="0" * 64)
    assert measured_from_runs([other], graph.sha256()) == {}
    other = dict(records[1], model_sha256="0" * 64)
    assert measured_from_runs([other], graph.sha256()) == {}


# ----- issue 13: decisions in one unit for one device ------------------------------------------
DEMO = "resources/models/demo_cnn.onnx"


def _demo_plan(constraints, measured=None):
    from studio.core.assignment.support import probe_op_support

    graph = ModelGraph.load(DEMO)
    report = probe_op_support(graph, ("htp", "gpu"))
    return graph, report, plan_for(graph, report, constraints, measured)


@pytest.mark.htp
@pytest.mark.parametrize("mode", ["balanced", "performance"])
def test_demo_cnn_every_htp_supported_node_on_htp(mode):
    constraints = Constraints(performance_critical=mode == "performance")
    graph, report, plan = _demo_plan(constraints)
    supported = [n for n, v in report.nodes.items() if v.get("htp") and v["htp"].supported]
    assert len(supported) >= 20
    for node_id in supported:
        decision = plan.decision(node_id)
        assert decision.backend == "htp", (node_id, decision.reason)
        # the reason quotes the two costs it compared, each with what it is
        assert "HTP " in decision.reason and "ms (estimated)" in decision.reason
        assert "CPU " in decision.reason and "ms (assumed)" in decision.reason
    data = plan.to_json()
    assert data["nodes"][0]["backend"] and "supported" in data["nodes"][0]["scores"]["htp"]


@pytest.mark.htp
def test_demo_cnn_emulator_profiles_do_not_move_nodes(tmp_path):
    """After real HTP (emulator) and CPU (host) profile runs the plan is unchanged: neither is
    the device's time, so both are left out (and the CLI says so)."""
    import json

    from studio.cli import main

    paths = []
    for backend in ("htp", "cpu"):
        out = tmp_path / f"{backend}.json"
        rc = main(
            ["profile", DEMO, "--backend", backend, "--runs", "3", "--save", str(out), "--json"]
        )
        assert rc == 0 and out.exists()
        paths.append(str(out))
        record = json.loads(out.read_text())
        if backend == "htp":  # a simulated run leads with the device estimate
            assert record["device_estimate"]["device"] == "Samsung Galaxy S24"
            assert record["device_estimate"]["label"].startswith("≈")
            assert record["stats"]["measured"].startswith("emulated")
        else:  # a host CPU run leads with the phone CPU's figure, from assumed rates
            assert "this host's CPU" in record["stats"]["measured"]
            assert record["device_estimate"]["cpu_total_ms"] > 0
            assert "assumed rates" in record["device_estimate"]["cpu_label"]
        assert {"p50_ms", "p95_ms", "p99_ms"} <= set(record["stats"])
    for flag in ([], ["--performance-critical"]):
        plan_path = tmp_path / "plan.json"
        args = ["assign", DEMO, "-o", str(plan_path), "--json"]
        args += [a for p in paths for a in ("--profile", p)] + flag
        assert main(args) == 0
        data = json.loads(plan_path.read_text())
        on_htp = [n for n in data["nodes"] if n["scores"]["htp"]["supported"]]
        assert on_htp and all(n["backend"] == "htp" for n in on_htp)
        assert len(data["summary"]["ignored_profiles"]) == 2
        assert "measured" not in data["summary"]["cost_sources"]


def test_costs_within_ten_percent_are_said_so(tmp_path):
    graph = _float_graph(tmp_path)
    support = _all_supported(graph)
    costs = {
        "htp": {n.id: (1.00, "estimated") for n in graph.nodes},
        "cpu": {n.id: (1.05, "assumed") for n in graph.nodes},
    }
    plan = assign(graph, support, ["htp", "cpu"], Constraints(), device_costs=costs)
    assert set(plan.assignment.values()) == {"htp"}
    reason = plan.decisions[0].reason
    assert "costs within 10%" in reason and "HTP 1.0000 ms" in reason and "CPU 1.0500 ms" in reason
    # performance-critical: 5% is still 5%, HTP stays the faster one
    fast = assign(
        graph, support, ["htp", "cpu"], Constraints(performance_critical=True), device_costs=costs
    )
    assert set(fast.assignment.values()) == {"htp"}


def test_boundary_reason_only_where_a_boundary_really_exists(tmp_path):
    graph = _float_graph(tmp_path)
    support = _all_supported(graph)
    ids = [n.id for n in graph.nodes]
    costs = {
        "htp": {i: (0.01, "estimated") for i in ids},
        "cpu": {i: (1.0, "assumed") for i in ids},
    }
    costs["cpu"]["/block/Add"] = (0.009, "assumed")  # marginally faster alone on CPU
    last = ids[-1]
    support[last] = {"htp": NodeSupport(False, "not on HTP"), "cpu": NodeSupport(True)}
    plan = assign(
        graph, support, ["htp", "cpu"], Constraints(performance_critical=True), device_costs=costs
    )
    add = plan.decision("/block/Add")
    assert add.backend == "htp"
    assert "moving it alone adds 2 backend boundaries costing" in add.reason
    # the node before the one CPU-only tail node really sits at a boundary; nodes in the middle don't
    assert plan.assignment[last] == "cpu" and plan.summary["boundaries"] == 1
    before = plan.decision(ids[-2])
    assert "boundary/boundaries around it" in before.reason
    assert "boundar" not in plan.decision(ids[1]).reason


def test_changing_an_assumption_changes_the_decision_and_the_cost(tmp_path):
    """The assumed constants are inputs, not decoration: energy per ms and boundary costs move the
    plan, and the plan records the values it used."""
    graph = _float_graph(tmp_path)
    support = _all_supported(graph)
    measured = {
        "htp": {n.id: 2.0 for n in graph.nodes},
        "cpu": {n.id: 1.0 for n in graph.nodes},
    }
    power = Constraints(power_critical=True)
    frugal = assign(graph, support, ["htp", "cpu"], power, measured)
    assert set(frugal.assignment.values()) == {"htp"}  # default: CPU assumed 8x HTP's energy
    # assume the phone's CPU as frugal as the HTP: the slower HTP no longer pays for itself
    equal = Constraints(power_critical=True, assumptions={"cpu_energy_per_ms": 1.0})
    moved = assign(graph, support, ["htp", "cpu"], equal, measured)
    assert set(moved.assignment.values()) == {"cpu"}
    assumed = moved.summary["assumptions"]
    assert assumed["values"]["cpu_energy_per_ms"] == 1.0 and assumed["changed"] == [
        "cpu_energy_per_ms"
    ]
    assert frugal.summary["assumptions"]["changed"] == []
    # boundary costs: a dearer hand-over raises the cost of the cut that really exists
    ids = [n.id for n in graph.nodes]
    costs = {
        "htp": {i: (0.01, "estimated") for i in ids},
        "cpu": {i: (1.0, "assumed") for i in ids},
    }
    support[ids[-1]] = {"htp": NodeSupport(False, "not on HTP"), "cpu": NodeSupport(True)}
    fast = Constraints(performance_critical=True)
    cheap = assign(graph, support, ["htp", "cpu"], fast, device_costs=costs)
    dear_sync = Constraints(performance_critical=True, assumptions={"boundary_sync_ms": 5.0})
    dear = assign(graph, support, ["htp", "cpu"], dear_sync, device_costs=costs)
    assert cheap.summary["boundaries"] == dear.summary["boundaries"] == 1
    gap = dear.summary["estimated_total_ms"] - cheap.summary["estimated_total_ms"]
    assert gap == pytest.approx(5.0 - 0.05)
    # phone CPU rates: the CPU's assumed cost of a node follows the rate
    slow = Constraints(assumptions={"cpu_macs_per_ms": 1e6, "cpu_bytes_per_ms": 1e5})
    base = assign(graph, _all_supported(graph), ["htp", "cpu"], Constraints())
    slower = assign(graph, _all_supported(graph), ["htp", "cpu"], slow)
    conv = "/block/conv/Conv"
    assert (
        slower.decision(conv).scores["cpu"].cost_ms > 10 * base.decision(conv).scores["cpu"].cost_ms
    )


def test_bad_assumptions_are_refused_by_name(tmp_path):
    from studio.core.assignment.assumptions import parse_assume_items

    graph = _float_graph(tmp_path)
    with pytest.raises(ConfigError, match="unknown assumption 'warp_speed'"):
        assign(graph, _all_supported(graph), ["cpu"], Constraints(assumptions={"warp_speed": 1.0}))
    with pytest.raises(ConfigError, match="must be > 0"):
        Constraints.from_json({"assumptions": {"boundary_sync_ms": -1}}, "p.npustudio")
    assert parse_assume_items(["cpu_macs_per_ms=4e7"]) == {"cpu_macs_per_ms": 4e7}
    for bad in ("cpu_macs_per_ms", "cpu_macs_per_ms=fast", "nope=1", "cpu_macs_per_ms=0"):
        with pytest.raises(BadInputError, match="--assume"):
            parse_assume_items([bad])
