"""Post-training techniques on real small models: each does what it claims, measured."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.accuracy import Analyser
from studio.core.accuracy.jobs import load_feeds
from studio.core.accuracy.techniques import choose_techniques, run_techniques
from studio.core.calibration import calibrate
from studio.core.errors import BadInputError
from studio.core.quantize import QuantPlan, build_qdq, encodings_of_qdq
from studio.core.quantize.techniques import apply_techniques, parse_techniques
from studio.core.quantize.techniques.cle import equalise
from studio.core.quantize.techniques.layers import (
    collect_inputs,
    fake_quant_rows,
    output_mse,
    symmetric_scales,
    weight_layers,
)
from tests import builders


def _unbalanced_pair(seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu -> Conv whose first conv's channels differ 100x in range (CLE's case)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.2, (8, 3, 3, 3)) * np.logspace(-1, 1, 8).reshape(8, 1, 1, 1)
    w2 = rng.normal(0, 0.2, (8, 8, 3, 3)) / np.logspace(-1, 1, 8).reshape(1, 8, 1, 1)
    inits = [
        numpy_helper.from_array(w1.astype(np.float32), "conv1.weight"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "conv1.bias"),
        numpy_helper.from_array(w2.astype(np.float32), "conv2.weight"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "conv2.bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["y"], name="conv2",
                         pads=[1, 1, 1, 1]),
    ]  # fmt: skip
    return builders.float_model("pair", nodes, inits, [1, 3, 16, 16], [1, 8, 16, 16])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def test_cle_keeps_the_function_and_balances_channels():
    model = _unbalanced_pair()
    x = np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)
    before = _run(model, x)
    w1 = numpy_helper.to_array(model.graph.initializer[0])
    spread = lambda w: np.abs(w).reshape(8, -1).max(1).max() / np.abs(w).reshape(8, -1).max(1).min()  # noqa: E731
    notes = equalise(model)
    assert len(notes) == 1 and "conv1 -> conv2" in notes[0]
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-4, atol=1e-5)
    after_w1 = numpy_helper.to_array(model.graph.initializer[0])
    assert spread(after_w1) < spread(w1) / 5


@pytest.fixture(scope="module")
def pair_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tech")
    path = tmp / "pair.onnx"
    onnx.save(_unbalanced_pair(), path)
    rng = np.random.default_rng(0)
    np.savez(tmp / "calib.npz", x=rng.random((16, 1, 3, 16, 16), dtype=np.float32))
    stats = calibrate(path, tmp / "calib.npz", cache_dir=tmp / "c")
    calib_feeds = load_feeds(str(stats.prepared_model), str(tmp / "calib.npz"), limit=16)
    eval_feeds = [{"x": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(6)]

    def recal(p):
        return calibrate(p, tmp / "calib.npz", cache_dir=tmp / "c")

    return tmp, stats, calib_feeds, eval_feeds, recal


def _db(stats, qdq, feeds) -> float:
    return Analyser(stats.prepared_model).analyse(qdq, feeds).output_sqnr_db


def test_cle_improves_per_tensor_w8(pair_setup):
    tmp, stats, calib_feeds, eval_feeds, recal = pair_setup
    plan = QuantPlan(per_channel=False)  # per-tensor weights: where CLE matters most
    base = _db(stats, build_qdq(stats, plan, tmp / "base.onnx").qdq_path, eval_feeds)
    run = run_techniques(stats, plan, ["cle"], tmp / "cle.onnx", calib_feeds=calib_feeds,
                         eval_feeds=eval_feeds, recalibrate=recal)  # fmt: skip
    assert run.technique.recalibrate and run.output_sqnr_db > base + 3.0, (base, run.output_sqnr_db)


def test_scale_search_and_adaround_lower_each_layers_output_error(pair_setup):
    tmp, stats, calib_feeds, _, _ = pair_setup
    proto = onnx.load(str(stats.prepared_model))
    layers = weight_layers(proto)
    inputs = collect_inputs(proto, layers, calib_feeds)
    assert {layer.node for layer in layers} == {"conv1", "conv2"} == set(inputs)
    result = apply_techniques(proto, QuantPlan(), calib_feeds, ["seqmse", "adaround"])
    assert len(result.effects) == 2
    for effect in result.effects:
        assert effect.after_db > effect.before_db, effect  # strictly better on every layer
    # the pinned encoding reproduces the learned codes exactly in the built model
    built = build_qdq(stats, result.plan_for(QuantPlan()), tmp / "ada.onnx", model=result.model)
    q = onnx.load(built.qdq_path)
    stored = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    enc = encodings_of_qdq(q)["conv2.weight"]
    w = numpy_helper.to_array(next(t for t in result.model.graph.initializer
                                   if t.name == "conv2.weight"))  # fmt: skip
    codes = np.round(w.reshape(8, -1) / np.asarray(enc.scale)[:, None])
    np.testing.assert_array_equal(stored["conv2.weight_quantized"].reshape(8, -1), codes)
    # and the MSE search never loses to min/max on the layer-output error it optimises
    layer = next(la for la in layers if la.node == "conv2")
    m = layer.matrix(numpy_helper.to_array(next(t for t in proto.graph.initializer
                                                 if t.name == "conv2.weight")).astype(np.float64))  # fmt: skip
    from studio.core.quantize.techniques.seqmse import best_scales

    s_mm = symmetric_scales(m, 8)
    s_mse = best_scales(m, inputs["conv2"], 8, True)
    h = inputs["conv2"].hessian
    assert np.all(
        output_mse(fake_quant_rows(m, s_mse, 8) - m, h)
        <= output_mse(fake_quant_rows(m, s_mm, 8) - m, h) + 1e-12
    )


def test_bias_correction_and_auto_on_a_cnn(tmp_path):
    stats, calib_feeds, eval_feeds, _ = builders.calibrated_cnn(tmp_path)
    base = _db(stats, build_qdq(stats, QuantPlan(), tmp_path / "b.onnx").qdq_path, eval_feeds)

    def recal(p):
        return calibrate(p, tmp_path / "d.npz", cache_dir=tmp_path / "c")

    bc = run_techniques(stats, QuantPlan(), ["bias-correction"], tmp_path / "bc.onnx",
                        calib_feeds=calib_feeds, eval_feeds=eval_feeds, recalibrate=recal)  # fmt: skip
    assert bc.output_sqnr_db > base + 0.5, (base, bc.output_sqnr_db, bc.technique.notes)
    best, tried = choose_techniques(
        stats, QuantPlan(), tmp_path / "auto.onnx", calib_feeds=calib_feeds,
        eval_feeds=eval_feeds, recalibrate=recal,
        candidates=((), ("bias-correction",), ("seqmse", "bias-correction")),
    )  # fmt: skip
    assert [t["techniques"] for t in tried] == [
        [],
        ["bias-correction"],
        ["seqmse", "bias-correction"],
    ]
    assert best.output_sqnr_db == max(t["output_sqnr_db"] for t in tried) >= base
    assert (tmp_path / "auto.onnx").is_file() and not list(tmp_path.glob("auto.cand*.onnx"))


def test_parse_techniques():
    assert parse_techniques("bias-correction,cle") == ["cle", "bias-correction"]
    assert parse_techniques("auto") == "auto" and parse_techniques(None) == []
    with pytest.raises(BadInputError, match="unknown technique"):
        parse_techniques("cle,magic")


def test_quantize_cli_techniques(tmp_path):
    import json
    import subprocess
    import sys

    path = builders.save(builders.small_cnn(), tmp_path / "cnn.onnx")
    np.savez(tmp_path / "d.npz", input=np.random.default_rng(5).random((20, 3, 32, 32), np.float32))
    base = [sys.executable, "-m", "studio", "quantize", str(path), "-o", str(tmp_path / "q.onnx"),
            "--calib", str(tmp_path / "d.npz"), "--cache-dir", str(tmp_path / "c"), "--json"]  # fmt: skip
    out = subprocess.run([*base, "--techniques", "bias-correction"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    tech = json.loads(out.stdout)["techniques"]
    assert tech["techniques"] == ["bias-correction"] and len(tech["layers"]) == 3
    assert all({"before_db", "after_db", "node"} <= set(e) for e in tech["layers"])
    bad = subprocess.run([*base, "--techniques", "magic"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown technique" in bad.stderr


def _channel_shift_rms(float_path, qdq_path, layers, feeds) -> float:
    """rms over every biased layer's channels of E[y_qdq] - E[y_float], in the real QDQ model
    (onnxruntime's integer kernels), on ``feeds``."""
    from studio.core.quantize.techniques.bias_correction import _channel_means

    names = [layer.output for layer in layers]
    f = _channel_means(onnx.load(str(float_path)), names, feeds)
    q = _channel_means(onnx.load(str(qdq_path)), names, feeds)
    return float(np.sqrt(np.mean(np.concatenate([(q[n] - f[n]).mean(0) for n in names]) ** 2)))


def test_bias_correction_removes_the_shift_that_float_statistics_miss(tmp_path):
    """On a MobileNetV3/ppocr_cls-shaped graph, the old bias correction, ``b - (Wq - W) E[x]``
    with E[x] from the float model, leaves most of the layers' output mean shift in place: that
    shift arrives through the layer's quantised input (depthwise convolutions, HardSwish, SE
    multiplies), which float statistics never see. The empirical, sequential correction removes
    it in the QDQ model as built, and never lowers the output SQNR."""
    from studio.core.quantize.techniques.bias_correction import bias_layers
    from studio.core.quantize.techniques.layers import initializer, set_initializer
    from tests import real_graphs

    path = builders.save(real_graphs.mobilenet_se(0), tmp_path / "mb.onnx")
    rng = np.random.default_rng(0)

    def images(n):
        base = np.repeat(np.repeat(rng.random((n, 3, 8, 8)), 4, 2), 4, 3) * 2 - 0.5
        return (base + 0.1 * rng.standard_normal((n, 3, 32, 32))).astype(np.float32)

    np.savez(tmp_path / "d.npz", x=images(16))
    stats = calibrate(path, tmp_path / "d.npz", cache_dir=tmp_path / "c")
    calib = load_feeds(str(stats.prepared_model), str(tmp_path / "d.npz"), limit=16)
    held_out = [{"x": images(1)} for _ in range(16)]
    proto = onnx.load(str(stats.prepared_model))
    layers = bias_layers(proto)
    assert any(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
               for n in proto.graph.node)  # fmt: skip
    base = build_qdq(stats, QuantPlan(), tmp_path / "base.onnx").qdq_path
    present = {o for n in onnx.load(base).graph.node for o in n.output}
    layers = [layer for layer in layers if layer.output in present]
    assert len(layers) >= 8

    # the old behaviour, as it was: float-input statistics, the layer's own weight error only
    old = onnx.ModelProto()
    old.CopyFrom(proto)
    wl = weight_layers(old)
    stats_in = collect_inputs(old, wl, calib)
    for layer in wl:
        if layer.bias is None or layer.groups > 1 or layer.node not in stats_in:
            continue
        m = layer.matrix(initializer(old, layer.weight).astype(np.float64))
        mq = fake_quant_rows(m, symmetric_scales(m, 8), 8)
        b = initializer(old, layer.bias).astype(np.float64)
        set_initializer(old, layer.bias, b - (mq - m) @ stats_in[layer.node].mean)
    old_qdq = build_qdq(stats, QuantPlan(), tmp_path / "old.onnx", model=old).qdq_path

    def recal(p):
        return calibrate(p, tmp_path / "d.npz", cache_dir=tmp_path / "c")

    new = run_techniques(stats, QuantPlan(), ["bias-correction"], tmp_path / "new.onnx",
                         calib_feeds=calib, eval_feeds=held_out, recalibrate=recal)  # fmt: skip
    shift = {
        name: _channel_shift_rms(stats.prepared_model, p, layers, held_out)
        for name, p in (("default", base), ("old", old_qdq), ("new", new.qdq_path))
    }
    # measured on held-out samples, in onnxruntime's integer kernels, not the fitting session
    assert shift["old"] > 0.5 * shift["default"], shift
    assert shift["new"] < 0.35 * shift["default"], shift
    assert new.output_sqnr_db >= _db(stats, base, held_out), new.technique.notes
    assert any("empirical" in n and "mean shift" in n for n in new.technique.notes)


def _depthwise_block(seed: int = 0) -> onnx.ModelProto:
    """Conv -> ReLU -> depthwise Conv (group 8, 3x3) -> ReLU -> pointwise Conv: MobileNet's block,
    the depthwise weights with channels of very different ranges (what 8 bits handle worst)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3))
    dw = rng.normal(0, 0.3, (8, 1, 3, 3)) * np.logspace(-1, 1, 8).reshape(8, 1, 1, 1)
    dw[:, :, 0, 0] *= 6.0  # an outlier tap per channel: min/max scales waste the grid on it
    w3 = rng.normal(0, 0.3, (4, 8, 1, 1))
    inits = [
        numpy_helper.from_array(a.astype(np.float32), n)
        for a, n in (
            (w1, "c1.w"),
            (rng.normal(0, 0.1, 8), "c1.b"),
            (dw, "dw.w"),
            (rng.normal(0, 0.1, 8), "dw.b"),
            (w3, "pw.w"),
            (rng.normal(0, 0.1, 4), "pw.b"),
        )
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["a"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ar"], name="r1"),
        helper.make_node("Conv", ["ar", "dw.w", "dw.b"], ["d"], name="dw", group=8,
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d"], ["dr"], name="r2"),
        helper.make_node("Conv", ["dr", "pw.w", "pw.b"], ["y"], name="pw"),
    ]  # fmt: skip
    return builders.float_model("dwblock", nodes, inits, [1, 3, 12, 12], [1, 4, 12, 12])


def test_weight_techniques_cover_depthwise_convolutions():
    """A depthwise Conv gets one H per group, and that H predicts the layer's real output error:
    the error of a perturbed weight computed from H equals the one ORT's Conv produces."""
    model = _depthwise_block()
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.random((1, 3, 12, 12), dtype=np.float32)} for _ in range(8)]
    layers = weight_layers(model)
    assert [la.node for la in layers] == ["c1", "dw", "pw"]
    inputs = collect_inputs(model, layers, feeds)
    assert inputs["dw"].hessian.shape == (8, 9, 9)
    # H from every patch (no subsampling at 8 x 144 rows) against the Conv itself, unshrunk
    assert next(la for la in layers if la.node == "dw").groups == 8
    w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "dw.w"))
    delta = rng.normal(0, 0.05, (8, 9))
    x = [np.maximum(_run_to(model, "ar", f), 0) for f in feeds]
    err = [_conv(xi, delta.reshape(w.shape), group=8) for xi in x]
    measured = np.mean([(e**2).sum(axis=(0, 2, 3)) / (12 * 12) for e in err], axis=0)
    n = inputs["dw"].rows
    rho = 9 / (9 + n)
    h = inputs["dw"].hessian
    traces = np.trace(h, axis1=1, axis2=2)[:, None, None] / 9
    raw = (h - rho * traces * np.eye(9)) / (1 - rho)  # undo the shrinkage
    np.testing.assert_allclose(output_mse(delta, raw), measured, rtol=1e-4)
    # the search and AdaRound now lower the depthwise layer's output error too (4-bit weights,
    # where the rounding choice matters most)
    result = apply_techniques(model, QuantPlan(weight_bitwidth=4), feeds, ["seqmse", "adaround"])
    effect = next(e for e in result.effects if e.node == "dw")
    assert effect.after_db > effect.before_db, effect
    assert "dw.w" in result.overrides


def _run_to(model: onnx.ModelProto, name: str, feed: dict) -> np.ndarray:
    from studio.core.model.expose import with_outputs

    sess = ort.InferenceSession(with_outputs(model, [name]).SerializeToString())
    return sess.run([name], feed)[0]


def _conv(x: np.ndarray, w: np.ndarray, group: int) -> np.ndarray:
    """ORT's Conv of x with weight w (no bias, SAME 3x3 padding)."""
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=group, pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "c",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape)),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )  # fmt: skip
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(m.SerializeToString())
    return sess.run(None, {"x": x.astype(np.float32), "w": w.astype(np.float32)})[0]


def _decomposed_layernorm(keepdims: int) -> onnx.ModelProto:
    """LayerNorm over the last axis with its variance as E[x²] - E[x]² (as jax2tf exports it):
    ReduceSum * 1/n without keepdims (magika's form) or ReduceMean with keepdims."""
    n = 32
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in (
        ("inv_n", 1.0 / n), ("eps", 1e-6), ("two", 2.0),
        ("gamma", np.linspace(0.5, 1.5, n)))]  # fmt: skip
    inits.append(numpy_helper.from_array(np.asarray([2], np.int64), "axes"))
    if keepdims:
        mean = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=1)]
        second = [
            helper.make_node("Pow", ["x", "two"], ["x2"]),
            helper.make_node("ReduceMean", ["x2"], ["ex2"], axes=[2], keepdims=1),
        ]
        m_b = "m"
    else:
        mean = [
            helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
            helper.make_node("Mul", ["s", "inv_n"], ["m"]),
        ]
        second = [
            helper.make_node("Mul", ["x", "x"], ["x2"]),
            helper.make_node("ReduceSum", ["x2", "axes"], ["s2"], keepdims=0),
            helper.make_node("Mul", ["s2", "inv_n"], ["ex2"]),
        ]
        mean.append(helper.make_node("Unsqueeze", ["m", "axes"], ["m_u"]))
        m_b = "m_u"
    nodes = (
        mean
        + second
        + [
            helper.make_node("Mul", ["m", "m"], ["m2"]),
            helper.make_node("Sub", ["ex2", "m2"], ["var"], name="var_sub"),
            helper.make_node("Add", ["var", "eps"], ["var_eps"]),
            helper.make_node("Sqrt", ["var_eps"], ["std"]),
            helper.make_node("Reciprocal", ["std"], ["rstd"]),
        ]
    )
    if not keepdims:
        nodes.append(helper.make_node("Unsqueeze", ["rstd", "axes"], ["rstd_u"]))
    nodes += [
        helper.make_node("Sub", ["x", m_b], ["xc"]),
        helper.make_node("Mul", ["xc", "rstd" if keepdims else "rstd_u"], ["xn"]),
        helper.make_node("Mul", ["xn", "gamma"], ["y"]),
    ]
    return builders.float_model("ln", nodes, inits, [1, 16, n], [1, 16, n])


@pytest.mark.parametrize("keepdims", [0, 1])
def test_stable_variance_rewrites_a_decomposed_layernorm(tmp_path, keepdims):
    """E[x²] - E[x]² becomes E[(x - E[x])²]: the float function stays, the quantised one stops
    drowning the variance in the rounding of two large terms (rows with mean ~3, std ~0.05)."""
    from studio.core.quantize.techniques.variance import stabilise_variance

    model = _decomposed_layernorm(keepdims)
    rng = np.random.default_rng(5)

    def rows(count):
        offset = rng.uniform(2.0, 4.0, (count, 1, 16, 1))
        spread = rng.uniform(0.02, 0.2, (count, 1, 16, 1))
        return (offset + spread * rng.standard_normal((count, 1, 16, 32))).astype(np.float32)

    x = rows(1)[0]
    before = _run(model, x)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    notes = stabilise_variance(rewritten)
    assert len(notes) == 1 and "var_sub" in notes[0]
    assert "var_sub" not in {n.name for n in rewritten.graph.node}
    onnx.checker.check_model(rewritten)
    np.testing.assert_allclose(_run(rewritten, x), before, rtol=1e-3, atol=1e-3)
    assert stabilise_variance(rewritten) == []  # nothing left to rewrite

    path = tmp_path / "ln.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "calib.npz", x=rows(16))
    # prepared without optimisation: the graph as exported (the default preparation already
    # applies the rewrite, checked below)
    stats = calibrate(path, tmp_path / "calib.npz", cache_dir=tmp_path / "c", optimize=False)
    assert "var_sub" in {n.name for n in onnx.load(str(stats.prepared_model)).graph.node}
    calib = load_feeds(str(stats.prepared_model), str(tmp_path / "calib.npz"), limit=16)
    held_out = [{"x": r} for r in rows(8)]
    base = _db(stats, build_qdq(stats, QuantPlan(), tmp_path / "base.onnx").qdq_path, held_out)
    run = run_techniques(stats, QuantPlan(), ["stable-variance"], tmp_path / "sv.onnx",
                         calib_feeds=calib, eval_feeds=held_out,
                         recalibrate=lambda p: calibrate(p, tmp_path / "calib.npz",
                                                         cache_dir=tmp_path / "c"))  # fmt: skip
    assert run.technique.recalibrate
    assert run.output_sqnr_db > base + 6.0, (base, run.output_sqnr_db, run.technique.notes)

    # the default preparation rewrites it for every model: the default W8A8 has the gain too
    default = calibrate(path, tmp_path / "calib.npz", cache_dir=tmp_path / "c")
    names = {n.name for n in onnx.load(str(default.prepared_model)).graph.node}
    assert "var_sub" not in names and any(n.endswith(".stable_var.reduce") for n in names)
    built = build_qdq(default, QuantPlan(), tmp_path / "default.onnx").qdq_path
    assert _db(stats, built, held_out) > base + 6.0
