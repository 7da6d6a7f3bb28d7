"""A transformer block quantised with the studio's defaults runs entirely on QNN HTP.

Before: every quantised LayerNormalization was refused by HTP (signed INT8 scale) and every
exported erf-GELU left its Erf on the CPU; vit_b_16's default QDQ model compiled into 38 HTP
partitions. The build now stores LayerNorm scales as UINT8 and fuses erf-GELU into one Gelu.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from studio.core.calibration import calibrate
from studio.core.engine.sessions import make_session
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq, check_htp_offload
from studio.core.quantize.build import build_coverage
from studio.core.quantize.fusion import fuse_erf_gelu
from tests import builders

GELU_PARTS = ["gelu_div", "gelu_erf", "gelu_add", "gelu_mul"]


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    """The float block, its calibration (normal activations, as a transformer's residual stream
    carries) and held-out feeds."""
    tmp = tmp_path_factory.mktemp("block")
    path = builders.save(builders.transformer_mlp_block(), tmp / "block.onnx")
    rng = np.random.default_rng(1)
    np.save(tmp / "calib.npy", rng.standard_normal((8, 1, 16, 64)).astype(np.float32))
    stats = calibrate(path, str(tmp / "calib.npy"), cache_dir=tmp / "cache")
    feeds = [{"x": rng.standard_normal((1, 16, 64)).astype(np.float32)} for _ in range(4)]
    return path, stats, feeds


def _sqnr_db(float_path, sess, feeds) -> float:
    ref = ort.InferenceSession(str(float_path), providers=["CPUExecutionProvider"])
    signal = noise = 0.0
    for feed in feeds:
        want = ref.run(None, feed)[0].astype(np.float64)
        got = sess.run(None, feed)[0].astype(np.float64)
        signal += float(np.sum(want**2))
        noise += float(np.sum((want - got) ** 2))
    return 10.0 * np.log10(signal / noise)


@pytest.mark.parametrize(
    ("plan", "min_db"),
    [
        # measured on this host: 34.0 dB (A8W8) and 39.8 dB (A16W8) on the HTP emulator
        (QuantPlan(), 28.0),
        (QuantPlan(activation_bitwidth=16), 33.0),
    ],
    ids=["w8a8", "w8a16"],
)
def test_default_build_of_a_transformer_block_runs_fully_on_htp(block, tmp_path, plan, min_db):
    float_path, stats, feeds = block
    built = build_qdq(stats, plan, tmp_path / "block.qdq.onnx")
    qdq = onnx.load(built.qdq_path)
    ops = [(n.op_type, n.domain, n.name) for n in qdq.graph.node]
    assert not [o for o in ops if o[0] == "Erf"]
    assert [o for o in ops if o[0] == "Gelu"] == [("Gelu", "com.microsoft", "/mlp/act/Gelu")]
    gamma = next(t for t in qdq.graph.initializer if t.name == "ln.weight_quantized")
    assert gamma.data_type == onnx.TensorProto.UINT8  # HTP refuses the signed INT8 scale
    # the GELU's intermediates no longer exist: folded, so coverage does not miss them
    assert set(GELU_PARTS) <= set(built.folded_tensors)
    assert build_coverage(built, stats).missing_tensors == []

    assert check_htp_offload(built.qdq_path) == (True, "")
    sess, info = make_session(built.qdq_path, "htp", disable_cpu_fallback=True)
    assert info.cpu_fallback_disabled and info.providers[0] == "QNNExecutionProvider"
    assert _sqnr_db(float_path, sess, feeds) > min_db


def test_a_gelu_whose_intermediate_the_plan_keeps_float_is_not_fused(block, tmp_path):
    _, stats, _ = block
    plan = QuantPlan()
    plan.set_override(TensorOverride("gelu_erf", dtype="float", bitwidth=32))
    built = build_qdq(stats, plan, tmp_path / "pinned.qdq.onnx")
    ops = {n.op_type for n in onnx.load(built.qdq_path).graph.node}
    assert "Erf" in ops and "Gelu" not in ops
    assert not set(GELU_PARTS) & set(built.folded_tensors)
    ok, reason = check_htp_offload(built.qdq_path)
    assert not ok and "/mlp/act/Erf" in reason  # the user's float Erf runs off the NPU, named


def test_a_gelu_whose_constant_the_plan_edits_is_not_fused(block, tmp_path):
    _, stats, _ = block
    plan = QuantPlan()
    plan.set_override(TensorOverride("half", bitwidth=16))
    built = build_qdq(stats, plan, tmp_path / "edited.qdq.onnx")
    qdq = onnx.load(built.qdq_path)
    assert "Erf" in {n.op_type for n in qdq.graph.node}
    half = next(t for t in qdq.graph.initializer if t.name == "half_quantized")
    assert half.data_type == onnx.TensorProto.UINT16  # the edit is applied, not dropped


def _gelu_half_first() -> onnx.ModelProto:
    """The other torch pattern: ``(x * 0.5) * (1 + erf(x / sqrt 2))``."""
    from onnx import helper

    nodes = [
        helper.make_node("Mul", ["x", "half"], ["xh"], name="/act/Mul"),
        helper.make_node("Div", ["x", "sqrt2"], ["d"], name="/act/Div"),
        helper.make_node("Erf", ["d"], ["e"], name="/act/Erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="/act/Add"),
        helper.make_node("Mul", ["xh", "a"], ["y"], name="/act/Mul_1"),
    ]
    inits = [
        builders._init("half", np.array(0.5)),
        builders._init("sqrt2", np.array(np.sqrt(2.0))),
        builders._init("one", np.array(1.0)),
    ]
    return builders.float_model("gelu", nodes, inits, [1, 32], [1, 32])


@pytest.mark.parametrize(
    "make", [_gelu_half_first, builders.transformer_mlp_block], ids=["half-first", "block"]
)
def test_fused_gelu_computes_what_the_five_nodes_did(make):
    original = make()
    fused = make()
    removed = fuse_erf_gelu(fused)
    assert len(removed) == 7  # four intermediates, three constants
    assert [n.op_type for n in fused.graph.node].count("Gelu") == 1
    assert not [n for n in fused.graph.node if n.op_type in ("Erf", "Div")]
    onnx.checker.check_model(fused)
    shape = [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3
    outs = []
    for model in (original, fused):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"x": x})[0])
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
