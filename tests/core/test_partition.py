"""Partitioned execution: HTP + CPU segments chained in the worker match the CPU reference."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

from studio.core.assignment.partition import split_segments, write_segment_models
from studio.core.assignment.partitioned_run import profile_plan, random_feeds, run_plan
from studio.core.assignment.scoring import plan_for
from studio.core.engine.sessions import make_session, simulation_session
from studio.core.errors import BackendUnavailableError, ConfigError
from tests import builders

# One output quantum of the QDQ model: y = 0.5 * erf(r) with r quantised at scale 3/255, and
# erf' <= 2/sqrt(pi). HTP's int8 requantisation may round a value to the neighbouring step.
R_SCALE = 3.0 / 255.0
ONE_STEP = 0.5 * (2 / math.sqrt(math.pi)) * R_SCALE
TOLERANCE = 2 * ONE_STEP


def test_segments_are_valid_models_with_boundary_tensors(tmp_path):
    from studio.core.model.graph import ModelGraph

    graph = ModelGraph.load(builders.save(builders.qdq_conv_erf(), tmp_path / "m.onnx"))
    cpu_tail = {"r_DQ", "/tail/Erf", "/tail/Mul"}
    assignment = {n.id: "cpu" if n.id in cpu_tail else "htp" for n in graph.nodes}
    segments = split_segments(graph, assignment)
    assert [s.backend for s in segments] == ["htp", "cpu"]
    assert segments[0].inputs == ["x"] and segments[0].outputs == ["r_q"]
    assert segments[1].inputs == ["r_q"] and segments[1].outputs == ["y"]
    for path in write_segment_models(graph, segments, tmp_path / "segs"):
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    with pytest.raises(ConfigError, match="without a backend"):
        split_segments(graph, {k: v for k, v in assignment.items() if k != "/conv/Conv"})
    with pytest.raises(ConfigError, match="ghost"):
        split_segments(graph, {**assignment, "ghost": "cpu"})


@pytest.mark.htp
def test_htp_cpu_partition_matches_cpu_reference(qdq_erf_probed):
    path, graph, report = qdq_erf_probed
    plan = plan_for(graph, report)
    feeds = random_feeds(graph, seed=3)
    result = run_plan(path, plan, feeds)
    # the reference is the model's own arithmetic (QDQ unfused): ORT's fused int8 CPU kernels
    # saturate on hosts without VNNI, HTP does not
    (reference,) = simulation_session(str(path)).run(None, feeds)
    diff = np.abs(result.outputs["y"] - reference)
    assert diff.max() <= TOLERANCE, f"max |partitioned - CPU| = {diff.max():.4f} > {TOLERANCE:.4f}"
    backends = [t.backend for t in result.timings]
    assert "htp" in backends and "cpu" in backends
    htp = next(t for t in result.timings if t.backend == "htp")
    assert htp.providers[0] == "QNNExecutionProvider" and htp.run_ms > 0
    assert htp.cpu_fallback_disabled  # ORT could not have put any HTP-segment node on the CPU
    assert htp.boundary_in_bytes > 0


@pytest.mark.htp
def test_profile_reports_each_segment_and_boundary(qdq_erf_probed):
    path, graph, report = qdq_erf_probed
    plan = plan_for(graph, report)
    data = profile_plan(path, plan, runs=3, warmup=1)
    assert data["schema_version"] == 1 and data["runs"] == 3
    assert len(data["timings"]) == plan.summary["segments"]
    assert all(len(t["run_ms_all"]) == 3 and t["run_ms"] > 0 for t in data["timings"])
    assert len(data["boundaries"]) == plan.summary["boundaries"]
    assert all(b["bytes"] > 0 for b in data["boundaries"])


def test_cpu_only_plan_is_exact(tmp_path):
    from studio.core.assignment.scoring import NodeSupport, assign
    from studio.core.model.graph import ModelGraph

    path = builders.save(builders.small_cnn(), tmp_path / "cnn.onnx")
    graph = ModelGraph.load(path)
    plan = assign(graph, {n.id: {"cpu": NodeSupport(True)} for n in graph.nodes}, ["cpu"])
    feeds = random_feeds(graph)
    result = run_plan(path, plan.to_json(), feeds)
    (reference,) = make_session(path, "cpu")[0].run(None, feeds)
    np.testing.assert_allclose(result.outputs["logits"], reference, rtol=0, atol=1e-6)
    assert len(result.timings) == 1


@pytest.mark.htp
def test_backend_refusing_its_segment_is_a_clear_error(qdq_erf_probed):
    path, graph, report = qdq_erf_probed
    data = plan_for(graph, report).to_json()
    for node in data["nodes"]:  # force the Erf tail onto HTP, which rejects Erf
        node["backend"] = "htp" if node["node_id"] != "x_Q" else "cpu"
    with pytest.raises(BackendUnavailableError, match=r"segment 1 \(HTP.*Erf"):
        run_plan(path, data)


@pytest.mark.htp
def test_five_segments_with_a_residual_crossing_two_boundaries(tmp_path):
    """HTP/CPU alternating on a residual block: the skip tensor feeds a segment two steps on."""
    from studio.core.assignment.scoring import NodeSupport, assign
    from studio.core.model.graph import ModelGraph
    from studio.core.project import Constraints

    path = builders.save(builders.small_cnn(), tmp_path / "cnn.onnx")
    graph = ModelGraph.load(path)
    cpu = {"/block/conv/Conv", "/pool/GlobalAveragePool", "/pool/Flatten"}
    pins = {n.id: "cpu" if n.id in cpu else "htp" for n in graph.nodes}
    support = {n.id: {"htp": NodeSupport(True), "cpu": NodeSupport(True)} for n in graph.nodes}
    plan = assign(graph, support, ["htp", "cpu"], Constraints(pins=pins))
    segments = split_segments(graph, plan.assignment)
    assert [s.backend for s in segments] == ["htp", "cpu", "htp", "cpu", "htp"]
    assert "/stem/Relu_output_0" in segments[2].inputs  # the residual skips segment 1
    feeds = random_feeds(graph, seed=1)
    result = run_plan(path, plan, feeds)
    (reference,) = make_session(path, "cpu")[0].run(None, feeds)
    # Float ops on the HTP simulator: fp16 at worst, so 1e-3 of the output range.
    scale = float(np.abs(reference).max())
    assert np.abs(result.outputs["logits"] - reference).max() <= 1e-3 * scale
    assert [t.providers[0] for t in result.timings][::2] == ["QNNExecutionProvider"] * 3
