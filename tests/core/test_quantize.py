"""QuantPlan -> QDQ model: QNN HTP full offload, imported encodings honoured exactly, edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from studio.core.calibration import CalibrationStats, calibrate
from studio.core.encodings import Encoding, EncodingSet
from studio.core.engine.sessions import make_session
from studio.core.errors import BadInputError, ConfigError
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq, encodings_of_qdq

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "models" / "demo_cnn.onnx"


@pytest.fixture
def cnn_stats(conv_model, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", input=rng.random((6, 3, 32, 32), dtype=np.float32))
    return calibrate(conv_model, tmp_path / "calib.npz", cache_dir=tmp_path / "cache")


def _q_params(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scale/zero point of every QuantizeLinear (by input) and weight DequantizeLinear."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" or (
            node.op_type == "DequantizeLinear" and node.input[0] in inits
        ):
            out.setdefault(node.input[0], (inits[node.input[1]], inits[node.input[2]]))
    return out


def _sqnr(ref: np.ndarray, test: np.ndarray) -> float:
    noise = np.linalg.norm(ref - test)
    return float("inf") if noise == 0 else 20 * np.log10(np.linalg.norm(ref) / noise)


def _htp_vs_cpu(qdq: str, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    htp, info = make_session(qdq, "htp", disable_cpu_fallback=True)
    assert info.providers[0] == "QNNExecutionProvider" and info.cpu_fallback_disabled
    cpu, _ = make_session(qdq, "cpu")
    return htp.run(None, feeds)[0], cpu.run(None, feeds)[0]


def test_default_plan_builds_qnn_style_qdq(cnn_stats, tmp_path):
    result = build_qdq(cnn_stats, QuantPlan(), tmp_path / "q.onnx")
    model = onnx.load(result.qdq_path)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    assert "Relu" not in ops  # lone Relus are folded into their producer's output encoding
    encs = result.encodings
    assert encs["stem.weight"].per_channel and encs["stem.weight"].symmetric
    assert encs["stem.weight"].onnx_qtype() == "int8"
    assert encs["input"].bitwidth == 8 and encs["input"].onnx_qtype() == "uint8"
    assert encs["block.conv.bias"].kind == "bias" and encs["block.conv.bias"].bitwidth == 32
    # activation ranges are the calibrated ones (QNN arithmetic: zero forced in range)
    lo, hi = cnn_stats.range("logits")
    assert encs["logits"].min[0] <= min(lo, 0) + encs["logits"].scale[0]
    assert encs["logits"].max[0] >= hi - encs["logits"].scale[0]


@pytest.mark.htp
def test_small_cnn_runs_fully_on_htp_and_matches_cpu_qdq(cnn_stats, tmp_path):
    result = build_qdq(cnn_stats, QuantPlan(), tmp_path / "q.onnx")
    x = {"input": np.random.default_rng(5).random((1, 3, 32, 32), dtype=np.float32)}
    htp_out, cpu_out = _htp_vs_cpu(result.qdq_path, x)
    scale = result.encodings["logits"].scale[0]
    # HTP requantises in fixed point: allow a few output steps, and demand high agreement
    assert np.abs(htp_out - cpu_out).max() <= 4 * scale
    assert _sqnr(cpu_out, htp_out) > 25.0


@pytest.mark.htp
def test_demo_cnn_with_mixed_precision_runs_fully_on_htp(tmp_path):
    stats = calibrate(DEMO, "random:4", cache_dir=tmp_path / "cache")
    plan = QuantPlan(method="percentile")
    plan.set_override(TensorOverride("/res/Add_output_0", bitwidth=16))
    result = build_qdq(stats, plan, tmp_path / "demo.qdq.onnx")
    assert "/res/Add_output_0" in result.wide_tensors
    x = {"image": np.random.default_rng(1).normal(0, 1, (1, 3, 64, 64)).astype(np.float32)}
    htp_out, cpu_out = _htp_vs_cpu(result.qdq_path, x)
    # probabilities (Softmax): 8-bit steps of 1/255 at most a few apart
    assert np.abs(htp_out - cpu_out).max() <= 4 / 255
    assert _sqnr(cpu_out, htp_out) > 25.0


def test_imported_encodings_are_honoured_exactly(cnn_stats, conv_model, tmp_path):
    from studio.core.encodings.io import load_encodings, save_encodings

    w = numpy_helper.to_array(
        next(t for t in onnx.load(str(conv_model)).graph.initializer if t.name == "stem.weight")
    )
    w_scales = np.abs(w).reshape(8, -1).max(axis=1) / 127 * 1.25  # deliberately not calibrated
    imported = EncodingSet(
        [
            Encoding.from_scale_offset("input", 0.0045, -10, 8),
            Encoding.from_scale_offset("/stem/Relu_output_0", 0.02, 0, 8),
            Encoding.from_scale_offset(
                "stem.weight", w_scales, [-128] * 8, 8, symmetric=True, axis=0, kind="param"
            ),
        ]
    )
    save_encodings(imported, tmp_path / "enc.json", fmt="qnn")
    loaded, _warnings = load_encodings(tmp_path / "enc.json", conv_model)
    plan = QuantPlan(imported=loaded, imported_source=str(tmp_path / "enc.json"))
    result = build_qdq(cnn_stats, plan, tmp_path / "q.onnx")
    assert any("no imported encoding" in w for w in result.warnings)
    params = _q_params(onnx.load(result.qdq_path))
    scale, zp = params["input"]
    assert scale == np.float32(0.0045) and zp.dtype == np.uint8 and int(zp) == 10
    scale, zp = params["/stem/Relu_output_0"]
    assert scale == np.float32(0.02) and int(zp) == 0
    scale, zp = params["stem.weight_quantized"]
    assert np.array_equal(scale, w_scales.astype(np.float32))
    assert zp.dtype == np.int8 and not zp.any()
    # and the read-back encodings say the same in QNN terms
    back = encodings_of_qdq(onnx.load(result.qdq_path))
    assert back["input"].offset == [-10] and back["stem.weight"].offset == [-128] * 8


def test_user_override_beats_import_and_ranges(cnn_stats, tmp_path):
    plan = QuantPlan()
    plan.set_override(TensorOverride("/stem/Relu_output_0", min=0.0, max=5.1))
    plan.set_override(TensorOverride("logits", scale=[0.01], offset=[-100]))
    result = build_qdq(cnn_stats, plan, tmp_path / "q.onnx")
    encs = result.encodings
    assert encs["/stem/Relu_output_0"].scale[0] == pytest.approx(5.1 / 255, rel=1e-6)
    assert encs["logits"].scale[0] == pytest.approx(0.01, rel=1e-6)
    assert encs["logits"].offset == [-100]


def test_method_change_rebuilds_from_cached_stats_without_data(cnn_stats, tmp_path):
    stats = CalibrationStats.load(cnn_stats.folder)  # as after re-opening a project
    a = build_qdq(stats, QuantPlan(method="minmax"), tmp_path / "a.onnx").encodings
    b = build_qdq(stats, QuantPlan(method="percentile", percentile=99.0), tmp_path / "b.onnx")
    assert b.encodings["input"].scale[0] < a["input"].scale[0]


def test_float_fallback_keeps_tensor_float(cnn_stats, tmp_path):
    plan = QuantPlan()
    plan.set_override(TensorOverride("/block/conv/Conv_output_0", dtype="float"))
    result = build_qdq(cnn_stats, plan, tmp_path / "q.onnx")
    model = onnx.load(result.qdq_path)
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert "/block/conv/Conv_output_0" not in quantized
    assert "/block/conv/Conv_output_0" in result.float_tensors
    sess, _ = make_session(result.qdq_path, "cpu")
    assert np.isfinite(sess.run(None, {"input": np.ones((1, 3, 32, 32), np.float32)})[0]).all()


def test_int4_weights(cnn_stats, tmp_path):
    result = build_qdq(cnn_stats, QuantPlan(weight_bitwidth=4), tmp_path / "q4.onnx")
    enc = result.encodings["block.conv.weight"]
    assert enc.bitwidth == 4 and enc.symmetric and enc.per_channel
    sess, _ = make_session(result.qdq_path, "cpu")
    out = sess.run(None, {"input": np.ones((1, 3, 32, 32), np.float32)})[0]
    assert out.shape == (1, 10) and np.isfinite(out).all()


def test_bad_overrides_are_named(cnn_stats, tmp_path):
    plan = QuantPlan()
    plan.set_override(TensorOverride("no/such/tensor", bitwidth=16))
    with pytest.raises(BadInputError, match="no/such/tensor"):
        build_qdq(cnn_stats, plan, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()
    with pytest.raises(ConfigError, match="min"):
        TensorOverride("x", min=1.0).validate()
    with pytest.raises(ConfigError):
        QuantPlan(activation_bitwidth=4)


def test_plan_json_roundtrip():
    imported = EncodingSet([Encoding.from_range("t", -1.0, 2.0, 16)])
    plan = QuantPlan(weight_bitwidth=4, method="mse", imported=imported, imported_source="a.json")
    plan.set_override(TensorOverride("t", bitwidth=8, symmetric=True))
    plan.set_override(TensorOverride("w", per_channel=False, scale=[0.1], offset=[-128]))
    again = QuantPlan.from_json(plan.to_json())
    assert again.to_json() == plan.to_json()
    assert again.overrides["w"].scale == [0.1] and again.imported["t"].bitwidth == 16
    with pytest.raises(ConfigError, match="unknown keys"):
        QuantPlan.from_json({"overrides": [{"tensor": "t", "bits": 3}]})


def test_plan_encodings_from_a_model_graph(cnn_stats):
    from studio.core.model.graph import ModelGraph

    plan = QuantPlan(method="mse")
    graph = ModelGraph.load(cnn_stats.prepared_model)
    by_graph = plan.encodings(cnn_stats, graph)
    by_default = plan.encodings(cnn_stats)
    assert by_graph == by_default
    # weights computed from data: per-channel, symmetric, one scale per output channel
    w = by_default["stem.weight"]
    assert w.kind == "param" and w.per_channel and len(w.scale) == 8
    assert by_default["input"].kind == "activation"
    assert len(plan.encodings(cnn_stats, weights="none").by_kind("param")) == 0


def test_build_job_reports_full_coverage(cnn_stats, tmp_path):
    from studio.core.jobs.protocol import job_kind, resolve_job, run_inline
    from studio.core.quantize.jobs import build_qdq_job

    assert resolve_job(job_kind(build_qdq_job)) is build_qdq_job
    plan = QuantPlan(method="entropy")
    out = run_inline(
        build_qdq_job,
        {
            "stats_dir": str(cnn_stats.folder),
            "plan": plan.to_json(),
            "out": str(tmp_path / "j.onnx"),
        },
    )
    assert (tmp_path / "j.onnx").is_file() and out["schema_version"] == 1
    # Conv outputs feeding a lone Relu are folded: not counted as missing
    assert "/stem/Conv_output_0" in out["folded_tensors"]
    assert out["coverage"]["complete"], out["coverage"]
    assert out["coverage"]["covered"] == out["coverage"]["quantizable"] > 10


def test_old_opset_model_is_converted_for_per_channel(tmp_path):
    from tests import builders

    model = builders.small_cnn()
    model.opset_import[0].version = 11
    path = builders.save(model, tmp_path / "op11.onnx")
    stats = calibrate(path, "random:2", cache_dir=tmp_path / "c")
    assert any("opset 11 to 13" in w for w in stats.warnings)
    result = build_qdq(stats, QuantPlan(per_channel=True), tmp_path / "q.onnx")
    onnx.checker.check_model(onnx.load(result.qdq_path))
    sess, _ = make_session(result.qdq_path, "cpu")
    assert sess.run(None, {"input": np.ones((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


def test_tensor_rows_for_the_editor(cnn_stats, tmp_path):
    from studio.core.accuracy import analyse
    from studio.core.accuracy.table import COLUMNS, tensor_rows

    plan = QuantPlan()
    plan.set_override(TensorOverride("/block/Add_output_0", bitwidth=16))
    built = build_qdq(cnn_stats, plan, tmp_path / "q.onnx")
    feeds = [{"input": np.full((1, 3, 32, 32), 0.5, np.float32)}]
    report = analyse(cnn_stats.prepared_model, built.qdq_path, feeds)
    rows = {row.tensor: row for row in tensor_rows(cnn_stats, plan, report)}
    assert list(rows["input"].to_json()) == list(COLUMNS)
    add = rows["/block/Add_output_0"]
    assert add.source == "override" and add.bitwidth == 16 and add.op_type == "Add"
    assert rows["input"].source == "default" and rows["input"].sqnr_db > 20
    w = rows["stem.weight"]
    assert w.kind == "param" and w.per_channel and w.shape == [8, 3, 3, 3]
    assert w.sqnr_db == pytest.approx(report.weights["stem.weight"])
