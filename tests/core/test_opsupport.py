"""Op support is asked of the real QNN EP: rejected nodes carry the EP's own reason."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from studio.core.assignment.probe import parse_placements, parse_units, qdq_owner
from studio.core.assignment.support import OpSupportReport, probe_op_support, vtcm_warnings
from studio.core.errors import ConfigError
from studio.core.model.graph import ModelGraph
from tests import builders

pytestmark = pytest.mark.htp


def test_erf_rejected_with_the_eps_reason_and_conv_accepted(qdq_erf_probed):
    _, graph, report = qdq_erf_probed
    htp = {n: per["htp"] for n, per in report.nodes.items()}
    assert not htp["/tail/Erf"].supported
    assert "Erf" in htp["/tail/Erf"].reason and "not supported" in htp["/tail/Erf"].reason
    assert htp["/conv/Conv"].supported and htp["/conv/Relu"].supported
    # The DQ feeding Erf is in Erf's QDQ unit and shares its fate; the Conv's weight DQ shares Conv's.
    assert not htp["r_DQ"].supported and "/tail/Erf" in htp["r_DQ"].reason
    assert htp["w_DQ"].supported and htp["w_DQ"].source == "unit"
    assert set(report.rejected("htp")) >= {"/tail/Erf", "r_DQ"}
    assert "Erf" in report.tooltip("/tail/Erf")
    # CPU is the reference and runs everything.
    assert all(per["cpu"].supported for per in report.nodes.values())


def test_gpu_reported_unavailable_with_real_error_not_invented(qdq_erf_probed):
    _, _, report = qdq_erf_probed
    gpu = report.backends["gpu"]
    assert gpu["available"] is False
    assert gpu["reason"].startswith("GPU unavailable: ") and len(gpu["reason"]) > 20
    assert all(not per["gpu"].supported for per in report.nodes.values())
    assert report.available() == ["htp", "cpu"]


def test_identical_signatures_share_one_probe(tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    nodes = [helper.make_node("Relu", ["x"], ["r0"], name="r0")]
    for i in range(1, 6):
        nodes.append(helper.make_node("Relu", [f"r{i - 1}"], [f"r{i}"], name=f"r{i}"))
    nodes.append(helper.make_node("Erf", ["r5"], ["y"], name="erf"))
    graph = helper.make_graph(
        nodes,
        "relus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = ModelGraph.load(builders.save(model, tmp_path / "relus.onnx"))
    isolated = probe_op_support(g, ("htp",), isolate="all")
    assert isolated.signatures == 2 and isolated.probes == 2  # 6 Relus share one probe, 1 Erf
    assert all(
        isolated.nodes[f"r{i}"]["htp"].reason == "compiled alone and in the model" for i in range(6)
    )
    # Default: nodes the full-model compile already placed on QNN need no probe of their own.
    report = probe_op_support(g, ("htp",))
    assert report.signatures == 2 and report.probes == 1
    assert all(report.nodes[f"r{i}"]["htp"].supported for i in range(6))
    assert report.nodes["r0"]["htp"].source == "model"
    assert not report.nodes["erf"]["htp"].supported
    again = probe_op_support(g, ("htp",))
    assert again.from_cache and again.to_json()["nodes"] == report.to_json()["nodes"]


def test_dynamic_shape_is_a_model_level_note_and_the_ep_reason(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = ModelGraph.load(builders.save(model, tmp_path / "dyn.onnx"))
    report = probe_op_support(g, ("htp",), use_cache=False, availability=_htp_only())
    assert any("static shapes" in n for n in report.notes)
    assert not report.nodes["relu"]["htp"].supported
    assert "shape" in report.nodes["relu"]["htp"].reason.lower()


def _htp_only():
    return {"htp": {"available": True, "reason": ""}, "cpu": {"available": True, "reason": ""}}


def test_report_json_round_trip_and_bad_schema(qdq_erf_probed):
    _, _, report = qdq_erf_probed
    data = report.to_json()
    back = OpSupportReport.from_json(data)
    assert back.to_json() == data
    with pytest.raises(ConfigError, match="schema_version"):
        OpSupportReport.from_json({**data, "schema_version": 99}, "x.json")
    with pytest.raises(ConfigError):
        OpSupportReport.from_json({"kind": "something else"}, "x.json")


def test_vtcm_warning_for_a_tensor_larger_than_vtcm(tmp_path):
    g = ModelGraph.load(builders.save(builders.conv_relu(), tmp_path / "m.onnx"))
    conv = g.node_by_id["/conv1/Conv"]
    # Output 1x8x16x16 float32 = 8 KiB: over a 0.004 MB VTCM, under the default 8 MB.
    assert vtcm_warnings(g, conv, 8) == []
    (warning,) = vtcm_warnings(g, conv, 0.004)
    assert "VTCM" in warning and "MB" in warning


def test_qdq_units_follow_ort_grouping(qdq_erf_probed):
    _, graph, _ = qdq_erf_probed
    owner = {n.id: qdq_owner(graph, n) for n in graph.nodes}
    assert owner["w_DQ"] == "/conv/Conv" and owner["c_Q"] == "/conv/Conv"
    assert owner["r_DQ"] == "/tail/Erf" and owner["x_Q"] is None


def test_parse_units_reads_failed_and_passed_units():
    log = (
        "2026 [V:onnxruntime:, qnn.cc:1 LogNodeSupport] Validation FAILED for 2 nodes in "
        "OrtNodeUnit (Erf) :\n\tOperator type: DequantizeLinear Node name: d/duplicated "
        "Node index: 1\n\tOperator type: Erf Node name: e Node index: 2\n\tREASON : Operators of "
        "type `Erf` are not supported by QNN EP.Erf node `e` will not be assigned to QNN EP.\n\n"
        "2026 [V:onnxruntime:, qnn.cc:1 LogNodeSupport] Validation PASSED for 1 nodes in "
        "OrtNodeUnit (Relu) :\n\tOperator type: Relu Node name: r Node index: 3\n"
    )
    verdicts = parse_units(log)
    assert verdicts["e"] == (False, "Operators of type `Erf` are not supported by QNN EP.")
    assert verdicts["d"][0] is False and verdicts["r"] == (True, "")


def test_signature_ignores_weight_values(tmp_path):
    """Two Convs with the same shapes but different weights share one signature."""
    m = builders.conv_relu(seed=0)
    second = onnx.numpy_helper.from_array(
        np.random.default_rng(9).normal(size=(8, 8, 3, 3)).astype(np.float32), "w2"
    )
    m.graph.initializer.append(second)
    m.graph.node.append(helper.make_node("Conv", ["y", "w2"], ["z"], name="c2", pads=[1, 1, 1, 1]))
    m.graph.node.append(helper.make_node("Conv", ["z", "w2"], ["z2"], name="c3", pads=[1, 1, 1, 1]))
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("z2", TensorProto.FLOAT, [1, 8, 16, 16]))
    g = ModelGraph.load(builders.save(m, tmp_path / "m.onnx"))
    from studio.core.assignment.probe import load_full_model, write_probes

    groups, failures = write_probes(g, load_full_model(g), tmp_path)
    assert not failures
    assert sorted(len(ids) for _, ids in groups.values()) == [1, 1, 2]


def test_parse_placements_lists_nodes_left_off_qnn():
    prefix = "2026-11-25 09:52:03.06 [V:onnxruntime:, session_state.cc:1606 VerifyEachNodeIsAssignedToAnEp]"
    log = "\n".join(
        [
            f"{prefix[:-43]}session_state.cc:1598 VerifyEachNodeIsAssignedToAnEp] Node placements",
            f"{prefix}  Node(s) placed on [QNNExecutionProvider]. Number of nodes: 1",
            f"{prefix}   QNNExecutionProvider_123_2 (QNNExecutionProvider_QNN_123_2_0)",
            f"{prefix}  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2",
            f"{prefix}   QuantizeLinear (x_Q)",
            f"{prefix}   Erf (/tail/Erf)",
        ]
    )
    placed = parse_placements(log)
    assert placed["x_Q"] == "CPUExecutionProvider" and placed["/tail/Erf"] == "CPUExecutionProvider"
    assert placed["QNNExecutionProvider_QNN_123_2_0"] == "QNNExecutionProvider"


def test_a_crashing_probe_costs_only_itself(tmp_path, monkeypatch):
    """A probe that kills its worker is reported with the crash; the other probes still run."""
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STUDIO_TEST_CRASH_PROBE", "_Erf")
    g = ModelGraph.load(builders.save(builders.qdq_conv_erf(size=8), tmp_path / "m.onnx"))
    report = probe_op_support(g, ("htp",), availability=_htp_only(), isolate="all")
    erf = report.nodes["/tail/Erf"]["htp"]
    assert not erf.supported and "crashed" in erf.reason and "SIGSEGV" in erf.reason
    assert report.nodes["/conv/Conv"]["htp"].supported
    assert report.nodes["/tail/Mul"]["htp"].supported  # probed by the second worker
