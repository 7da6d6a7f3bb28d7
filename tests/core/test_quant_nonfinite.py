"""Graph patterns that wrecked magika (PyPI ``magika==1.0.3``, a jax2tf export) under both the
studio's recipe and onnxruntime's: an infinite constant, and a skewed per-tensor MatMul weight.

- jax2tf writes a softmax as ``exp(x - max(-inf, ReduceMax(x)))``. Quantised, the ``-inf``
  constant got scale inf and zero point NaN, the Max then output 0 instead of the row maximum,
  and the softmax saturated: output SQNR -10.7 dB at W8A8 and -14.3 dB at W8A16 (where every
  other tensor was within 36 dB of float). The preparation now removes the identity; any other
  infinite constant keeps its consumer float, named in a warning.
- Its byte-embedding MatMul weight is quantised per tensor (QNN has no per-channel MatMul);
  symmetric int8 left half of the grid unused on skewed values, asymmetric uint8 does not.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from studio.core.accuracy import Analyser
from studio.core.calibration import calibrate
from studio.core.model.normalise import drop_unbounded_extrema
from studio.core.quantize import QuantPlan, build_qdq, check_htp_offload

N_IN, N_OUT, ROWS = 16, 10, 4


def _softmax_head(neg_inf: np.ndarray | float = -np.inf, *, skewed: bool = True) -> onnx.ModelProto:
    """x -> MatMul(W) + b -> softmax as jax2tf writes it: Max(-inf, ReduceMax) then
    Sub/Exp/ReduceSum/Div. W holds skewed values (0..1 with a few small negatives). Rows of
    x are 3-D, as magika's per-byte embedding."""
    rng = np.random.default_rng(3)
    w = rng.uniform(-0.05, 1.0, (N_IN, N_OUT)) if skewed else rng.normal(0, 0.5, (N_IN, N_OUT))
    inits = [
        numpy_helper.from_array(w.astype(np.float32), "W"),
        # a [1, 1, N] bias, as magika's: ORT's preparation then leaves the MatMul unfused
        numpy_helper.from_array(rng.normal(0, 0.1, (1, 1, N_OUT)).astype(np.float32), "b"),
        numpy_helper.from_array(np.asarray(neg_inf, np.float32), "neg_inf"),
        numpy_helper.from_array(np.asarray([2], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["mm"], name="dense"),
        helper.make_node("Add", ["mm", "b"], ["logits"], name="dense_bias"),
        helper.make_node("ReduceMax", ["logits"], ["row_max"], axes=[2], keepdims=1, name="rmax"),
        helper.make_node("Max", ["neg_inf", "row_max"], ["safe_max"], name="maximum"),
        helper.make_node("Sub", ["logits", "safe_max"], ["shifted"], name="sub"),
        helper.make_node("Exp", ["shifted"], ["e"], name="exp"),
        helper.make_node("ReduceSum", ["e", "axes"], ["s"], keepdims=1, name="rsum"),
        helper.make_node("Div", ["e", "s"], ["probs"], name="div"),
    ]
    graph = helper.make_graph(
        nodes,
        "softmax_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, ROWS, N_IN])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, ROWS, N_OUT])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _inputs(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 4, (count, 1, ROWS, N_IN)).astype(np.float32)


def _calibrated(model: onnx.ModelProto, tmp_path):
    path = tmp_path / "head.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "calib.npz", x=_inputs(16, 0))
    stats = calibrate(path, tmp_path / "calib.npz", cache_dir=tmp_path / "c")
    return stats, [{"x": r} for r in _inputs(8, 1)]


def _run(model: onnx.ModelProto | str, x: np.ndarray) -> np.ndarray:
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_max_with_minus_inf_is_removed_and_the_softmax_quantises(tmp_path):
    model = _softmax_head()
    stats, feeds = _calibrated(model, tmp_path)
    prepared = onnx.load(str(stats.prepared_model))
    assert "Max" not in {n.op_type for n in prepared.graph.node}
    assert "neg_inf" not in {t.name for t in prepared.graph.initializer}
    x = _inputs(1, 5)[0]
    np.testing.assert_array_equal(_run(prepared, x), _run(model, x))  # exact: the identity

    for bits in (8, 16):
        built = build_qdq(stats, QuantPlan(activation_bitwidth=bits), tmp_path / f"q{bits}.onnx")
        assert built.warnings == []
        for enc in built.encodings.values():  # validated on read: every scale finite, > 0
            assert np.all(np.isfinite(enc.scale)), enc.tensor
        report = Analyser(stats.prepared_model).analyse(built.qdq_path, feeds)
        # before the fix: the Max output was 0 and the probabilities saturated (-3.1 dB at both
        # widths); now 22 dB, the 8-bit MatMul weight's error through the Exp
        assert report.output_sqnr_db > 15.0, (bits, report.output_sqnr_db)
    assert check_htp_offload(tmp_path / "q8.onnx") == (True, "")


def test_an_infinite_constant_that_is_not_an_identity_keeps_its_consumer_float(tmp_path):
    """Max(row, [-inf, 0, -inf, ...]) clamps one column: not removable; quantising the constant
    would give scale inf. The build keeps that Max float and says so, naming the tensor."""
    model = _softmax_head(np.asarray([[-np.inf]], np.float32))
    assert drop_unbounded_extrema(_copy(model))  # [1, 1] against a rank-3 operand: identity
    model = _softmax_head(np.full((1, 1, 1, 1), -np.inf, np.float32))
    assert drop_unbounded_extrema(_copy(model)) == []  # it would broadcast to rank 4
    model = _softmax_head()
    model.graph.node[3].input[1] = "logits"  # Max(neg_inf, logits): elementwise
    clamp = np.full((1, N_OUT), -np.inf, np.float32)
    clamp[0, 0] = 0.0
    model.graph.initializer[2].CopyFrom(numpy_helper.from_array(clamp, "neg_inf"))
    assert drop_unbounded_extrema(_copy(model)) == []
    stats, feeds = _calibrated(model, tmp_path)
    built = build_qdq(stats, QuantPlan(), tmp_path / "q.onnx")
    assert any("'neg_inf'" in w and "'maximum'" in w and "kept float" in w for w in built.warnings)
    for enc in built.encodings.values():
        assert np.all(np.isfinite(enc.scale)), enc.tensor
    qdq = onnx.load(built.qdq_path)
    maximum = next(n for n in qdq.graph.node if n.name == "maximum")
    assert "neg_inf" in maximum.input  # read as float, not through a DequantizeLinear
    report = Analyser(stats.prepared_model).analyse(built.qdq_path, feeds)
    assert report.output_sqnr_db > 20.0, report.output_sqnr_db


def test_max_with_minus_inf_on_a_graph_output_becomes_an_identity():
    model = _softmax_head()
    graph = model.graph
    graph.output[0].name = "safe_max"
    graph.output[0].type.tensor_type.shape.dim[2].dim_value = 1
    for name in ("sub", "exp", "rsum", "div"):
        graph.node.remove(next(n for n in graph.node if n.name == name))
    x = _inputs(1, 2)[0]
    before = _run(model, x)
    notes = drop_unbounded_extrema(model)
    assert len(notes) == 1 and "'maximum'" in notes[0]
    node = next(n for n in graph.node if n.name == "maximum")
    assert node.op_type == "Identity" and list(node.input) == ["row_max"]
    np.testing.assert_array_equal(_run(model, x), before)


def test_the_calibration_log_names_the_rewrites_of_its_preparation(tmp_path):
    """The prepared model is not the file as written: the job's log says what was rewritten."""
    from studio.core.jobs.protocol import JobContext

    path = tmp_path / "head.onnx"
    onnx.save(_softmax_head(), path)
    np.savez(tmp_path / "calib.npz", x=_inputs(4, 0))
    lines: list[str] = []
    ctx = JobContext()
    ctx.on_log = lines.append
    calibrate(path, tmp_path / "calib.npz", cache_dir=tmp_path / "c", ctx=ctx)
    assert any(
        line.startswith("prepared model: Max 'maximum'") and "removed (the identity)" in line
        for line in lines
    ), lines


def test_per_tensor_matmul_weights_are_asymmetric_and_beat_symmetric(tmp_path):
    stats, feeds = _calibrated(_softmax_head(), tmp_path)
    default = build_qdq(stats, QuantPlan(), tmp_path / "asym.onnx")
    qdq = onnx.load(default.qdq_path)
    inits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    dq = next(
        n for n in qdq.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in
        {i for m in qdq.graph.node if m.op_type == "MatMul" for i in m.input[1:2]}
    )  # fmt: skip
    zero_point = inits[dq.input[2]]
    assert zero_point.dtype == np.uint8 and zero_point.size == 1 and int(zero_point) > 0
    # the global symmetric int8 (per-channel off: no per-tensor special case) for comparison
    symmetric = build_qdq(stats, QuantPlan(per_channel=False), tmp_path / "sym.onnx")
    analyser = Analyser(stats.prepared_model)
    a = analyser.analyse(default.qdq_path, feeds)
    s = analyser.analyse(symmetric.qdq_path, feeds)
    assert a.weights["W"] > s.weights["W"] + 3.0, (a.weights["W"], s.weights["W"])
    # the MatMul's own output (the softmax after it is limited by its 8-bit activations)
    assert a.layer("mm").sqnr_db > s.layer("mm").sqnr_db + 0.5, (a.layer("mm"), s.layer("mm"))
    assert check_htp_offload(default.qdq_path) == (True, "")
    # an explicit user choice of symmetric per-tensor weights is still honoured
    assert not build_qdq(stats, QuantPlan(per_channel=False), tmp_path / "s2.onnx").warnings


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
