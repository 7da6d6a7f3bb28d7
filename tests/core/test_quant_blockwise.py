"""Block-wise INT4 weights (QNN BQ/LPBQ): written where the target's HTP takes them, checked on
real QNN HTP sessions with CPU fallback disabled, and more accurate than per-channel INT4."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from studio.core.accuracy import Analyser
from studio.core.calibration import calibrate
from studio.core.engine.sessions import TARGET_ENV, make_session
from studio.core.errors import ConfigError
from studio.core.quantize import QuantPlan, build_qdq, check_htp_offload
from studio.core.quantize.blockwise import blockwise_why_not
from tests import builders
from tests import real_graphs as rg


@pytest.fixture(scope="module")
def stats(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blockwise")
    path = builders.save(rg.pointwise_int4(), tmp / "pw.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp / "d.npz", x=rng.random((8, 64, 8, 8), dtype=np.float32))
    return calibrate(path, tmp / "d.npz", cache_dir=tmp / "c")


def _feeds(n=6):
    rng = np.random.default_rng(1)
    return [{"x": rng.random((1, 64, 8, 8), dtype=np.float32)} for _ in range(n)]


def test_the_measured_rules():
    assert blockwise_why_not("Conv", (64, 64, 1, 1), 16, 75, 32) is None
    assert blockwise_why_not("Gemm", (64, 10), 16, 69, 32) is None
    assert "16-bit activations" in blockwise_why_not("Conv", (64, 64, 1, 1), 8, 75, 32)
    assert "larger than 1x1" in blockwise_why_not("Conv", (64, 64, 3, 3), 16, 75, 32)
    assert "v69" in blockwise_why_not("Gemm", (64, 10), 16, 68, 32)
    assert blockwise_why_not("MatMul", (64, 10), 16, 68, 32, lpbq=True) is None
    assert "divides" in blockwise_why_not("Gemm", (48, 10), 16, 75, 32)
    with pytest.raises(ConfigError, match="power of two"):
        QuantPlan(weight_bitwidth=4, weight_block_size=24)


def test_blockwise_int4_runs_fully_on_htp_and_beats_per_channel(stats, tmp_path, monkeypatch):
    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S24|57|75")
    per_channel = build_qdq(
        stats, QuantPlan(weight_bitwidth=4, activation_bitwidth=16), tmp_path / "pc.onnx"
    )
    plan = QuantPlan(weight_bitwidth=4, activation_bitwidth=16, weight_block_size=32)
    built = build_qdq(stats, plan, tmp_path / "bw.onnx")
    assert built.blockwise == {"pw1.w": 32, "pw2.w": 32, "fc.w": 32}
    assert any("'k3.w' stays per-channel INT4" in w and "1x1" in w for w in built.warnings)
    proto = onnx.load(built.qdq_path)
    dqs = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    blocked = [n for n in dqs if any(a.name == "block_size" and a.i == 32 for a in n.attribute)]
    assert len(blocked) == 3
    inits = {t.name: list(t.dims) for t in proto.graph.initializer}
    # 64 output channels x 2 blocks of 32 inputs (1x1 Conv), 2 blocks x 10 outputs (Gemm [K, N])
    assert sorted(inits[n.input[1]] for n in blocked) == [[2, 10], [64, 2, 1, 1], [64, 2, 1, 1]]
    # the real HTP backend takes the whole model for v75, CPU fallback off
    assert check_htp_offload(built.qdq_path, "Samsung Galaxy S24") == (True, "")
    feeds = _feeds()
    sess, _ = make_session(built.qdq_path, "htp", disable_cpu_fallback=True)
    cpu, _ = make_session(built.qdq_path, "cpu")
    htp_out = sess.run(None, feeds[0])[0]
    cpu_out = cpu.run(None, feeds[0])[0]
    assert np.sqrt(np.mean((htp_out - cpu_out) ** 2)) < 0.05 * np.sqrt(np.mean(cpu_out**2))
    analyser = Analyser(stats.prepared_model)
    pc = analyser.analyse(per_channel.qdq_path, feeds)
    bw = analyser.analyse(built.qdq_path, feeds)
    for name in built.blockwise:  # a block per half: the weak half gets its own scale
        assert bw.weights[name] > pc.weights[name] + 0.5, (name, pc.weights, bw.weights)
    assert bw.weights["k3.w"] == pytest.approx(pc.weights["k3.w"])
    assert bw.output_sqnr_db > pc.output_sqnr_db + 1.5, (pc.output_sqnr_db, bw.output_sqnr_db)


def test_blockwise_is_not_written_where_htp_refuses_it(stats, tmp_path, monkeypatch):
    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S21|30|68")  # HTP v68: no block-wise Gemm
    plan = QuantPlan(weight_bitwidth=4, activation_bitwidth=16, weight_block_size=32)
    built = build_qdq(stats, plan, tmp_path / "v68.onnx")
    assert built.blockwise == {}
    assert sum("v69" in w for w in built.warnings) == 3
    assert check_htp_offload(built.qdq_path, "Samsung Galaxy S21") == (True, "")
    eight = build_qdq(
        stats, QuantPlan(weight_bitwidth=4, weight_block_size=32), tmp_path / "a8.onnx"
    )
    assert eight.blockwise == {} and any("16-bit activations" in w for w in eight.warnings)


def test_blockwise_encodings_read_back_and_round_trip_through_aimet2(stats, tmp_path, monkeypatch):
    from studio.core.encodings import load_encodings, save_encodings
    from studio.core.errors import EncodingsError

    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S24|57|75")
    plan = QuantPlan(weight_bitwidth=4, activation_bitwidth=16, weight_block_size=32)
    built = build_qdq(stats, plan, tmp_path / "bw.onnx")
    enc = built.encodings["pw1.w"]
    assert (enc.block_size, enc.block_shape, enc.axis) == (32, [64, 2, 1, 1], 1)
    assert enc.bitwidth == 4 and enc.symmetric and len(enc.scale) == 128
    assert built.encodings["k3.w"].block_size is None  # stayed per-channel
    save_encodings(built.encodings, tmp_path / "a2.json", "aimet2")
    back, _ = load_encodings(tmp_path / "a2.json", str(stats.prepared_model))
    assert back["pw1.w"].block_size == 32 and back["pw1.w"].block_shape == [64, 2, 1, 1]
    assert back["pw1.w"].scale == pytest.approx(enc.scale, rel=1e-6)
    with pytest.raises(
        EncodingsError, match=r"q.json: not saved: tensor '\S+' is block-wise.*aimet2"
    ):
        save_encodings(built.encodings, tmp_path / "q.json", "qnn")
    assert not (tmp_path / "q.json").exists()
    # importing them is refused gracefully: the build says the block encoding was not applied
    again = build_qdq(
        stats,
        QuantPlan(activation_bitwidth=16, imported=back, imported_source="a2.json"),
        tmp_path / "imp.onnx",
    )
    assert any("'pw1.w': imported block-wise encoding" in w for w in again.warnings)
