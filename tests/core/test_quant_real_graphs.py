"""Quantisation on graphs shaped like real exports: no crash, honest figures, imports that hold.

The graphs (tests/real_graphs.py) carry what broke the studio on models shipped in PyPI
packages: a decomposed LayerNorm with a ``[1, N]`` Dense bias, an LSTM with an int32
``sequence_lens`` input, Paddle Reshapes that hard-code batch 1 through unnamed Constants, and a
detector output mixing pixel boxes with 0-1 scores.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from studio.core.accuracy import Analyser, auto_mixed_precision
from studio.core.calibration import calibrate
from studio.core.encodings import load_encodings, save_encodings
from studio.core.engine.sessions import simulation_session
from studio.core.model.normalise import fixed_batch_nodes, normalise_gemm_biases
from studio.core.quantize import QuantPlan, build_coverage, build_qdq
from tests import real_graphs as rg

CASES = {
    "layernorm": (rg.decomposed_layernorm, lambda n, r: {"x": r.normal(0, 1, (n, 1, 8, 32))}),
    "lstm": (rg.lstm_seq, lambda n, r: rg.lstm_feeds(n, seed=int(r.integers(100)))),
    "paddle": (rg.paddle_fixed_reshape, lambda n, r: {"x": r.random((n, 1, 3, 16, 16))}),
    "yolo": (rg.yolo_head, lambda n, r: {"images": r.random((n, 1, 3, 32, 32))}),
}


def _data(kind: str, count: int, seed: int) -> dict[str, np.ndarray]:
    arrays = CASES[kind][1](count, np.random.default_rng(seed))
    return {k: v if v.dtype == np.int32 else v.astype(np.float32) for k, v in arrays.items()}


def _feeds(data: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    count = len(next(iter(data.values())))
    return [{k: v[i] for k, v in data.items()} for i in range(count)]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """Each graph saved, calibrated on 12 samples; 8 held-out samples for evaluation."""
    root = tmp_path_factory.mktemp("real_graphs")
    out = {}
    for kind, (build, _) in CASES.items():
        model = build()
        onnx.checker.check_model(model)
        path = root / f"{kind}.onnx"
        onnx.save(model, path)
        np.savez(root / f"{kind}_calib.npz", **_data(kind, 12, 0))
        stats = calibrate(path, root / f"{kind}_calib.npz", cache_dir=root / "cache")
        out[kind] = (path, stats, _feeds(_data(kind, 8, 1)))
    return root, out


@pytest.mark.parametrize("kind", list(CASES))
def test_real_graph_quantises_and_scores_on_held_out_data(calibrated, kind, tmp_path):
    _, cases = calibrated
    path, stats, feeds = cases[kind]
    built = build_qdq(stats, QuantPlan(), tmp_path / "q.onnx")
    report = Analyser(stats.prepared_model).analyse(built.qdq_path, feeds)
    assert report.samples == 8
    for name, db in report.outputs.items():
        assert 15.0 < db < 200.0, (kind, name, db)  # quantised (finite) and not wrecked
    assert report.layers, kind


def test_gemm_bias_of_shape_1_n_is_rewritten_as_a_vector_with_the_same_outputs(tmp_path):
    model = rg.decomposed_layernorm()
    # what ORT's pre-processing makes of MatMul + Add: a Gemm whose C is [1, N]
    onnx.save(model, tmp_path / "m.onnx")
    stats = calibrate(
        tmp_path / "m.onnx", "random:2", cache_dir=tmp_path / "cache", input_shapes=None
    )
    prepared = onnx.load(str(stats.prepared_model))
    inits = {t.name: t for t in prepared.graph.initializer}
    gemms = [n for n in prepared.graph.node if n.op_type == "Gemm" and len(n.input) > 2]
    assert gemms, "ORT's pre-processing should have fused the Dense into a Gemm"
    assert all(len(inits[g.input[2]].dims) == 1 for g in gemms)
    x = np.random.default_rng(3).normal(0, 1, (1, 8, 32)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    got = ort.InferenceSession(prepared.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_full_gemm_addend_moves_to_an_add(tmp_path):
    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "B")
    c = numpy_helper.from_array(rng.normal(size=(2, 3)).astype(np.float32), "C")
    node = onnx.helper.make_node("Gemm", ["a", "B", "C"], ["y"])  # unnamed
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [2, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
        [b, c],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    a = rng.normal(size=(2, 4)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"a": a})[0]
    notes = normalise_gemm_biases(model)
    assert notes and "Gemm_0" in notes[0] and "moved to an Add" in notes[0]
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Add"]
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"a": a})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_fixed_batch_reshapes_are_found_and_evaluation_runs_per_sample(calibrated, tmp_path):
    _, cases = calibrated
    path, stats, feeds = cases["paddle"]
    fixed = fixed_batch_nodes(onnx.load(str(path)))
    assert len(fixed) == 2 and all(name.startswith("Reshape_") for name in fixed)  # unnamed
    assert fixed_batch_nodes(rg.decomposed_layernorm()) == []
    built = build_qdq(stats, QuantPlan(), tmp_path / "q.onnx")
    analyser = Analyser(stats.prepared_model)
    assert analyser.fixed_batch
    report = analyser.analyse(built.qdq_path, feeds)
    # the pooled figure equals the per-sample figures pooled by hand (QDQ simulated unfused)
    fsess = ort.InferenceSession(str(stats.prepared_model))
    qsess = simulation_session(built.qdq_path)
    out = fsess.get_outputs()[0].name
    sig = noise = 0.0
    for feed in feeds:
        ref = fsess.run([out], feed)[0].astype(np.float64)
        test = qsess.run([out], feed)[0].astype(np.float64)
        sig += float(np.sum(ref * ref))
        noise += float(np.sum((ref - test) ** 2))
    assert report.outputs[out] == pytest.approx(10 * np.log10(sig / noise), abs=1e-3)


def test_auto_mixed_precision_runs_on_a_model_that_does_not_batch(calibrated, tmp_path):
    _, cases = calibrated
    _, stats, feeds = cases["paddle"]
    result = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp_path / "mp.onnx", target_db=200.0, max_steps=2
    )
    assert len(result.curve) >= 2 and result.qdq_path
    assert all(np.isfinite(p.output_sqnr_db) for p in result.curve)


@pytest.mark.parametrize("fmt", ["aimet1", "aimet2"])
@pytest.mark.parametrize("kind", list(CASES))
def test_aimet_files_for_real_graphs_import_and_reproduce(calibrated, kind, fmt, tmp_path):
    """An AIMET-format file of each graph's encodings imports and rebuilds the same model; for
    the LSTM, the int32 bias entry AIMET 2.0.0 writes stays float, with a coverage line."""
    _, cases = calibrated
    _, stats, feeds = cases[kind]
    first = build_qdq(stats, QuantPlan(), tmp_path / "first.onnx")
    enc_path = tmp_path / "enc.json"
    save_encodings(first.encodings, enc_path, fmt=fmt)
    lstm_bias = "onnx::LSTM_211"
    if kind == "lstm":
        data = json.loads(enc_path.read_text())
        if fmt == "aimet2":
            data["encodings"] = [e for e in data["encodings"] if e["name"] != lstm_bias]
            data["encodings"].append(
                {"name": lstm_bias, "output_dtype": "int32", "y_scale": [1e-5] * 192, "axis": 1}
            )
        else:
            data["param_encodings"] = [e for e in data["param_encodings"] if e["name"] != lstm_bias]
            data["param_encodings"].append(
                {
                    "name": lstm_bias,
                    "enc_type": "PER_TENSOR",
                    "dtype": "INT",
                    "bw": 32,
                    "is_sym": True,
                    "scale": [1e-5],
                    "offset": [-2147483648],
                }
            )
        enc_path.write_text(json.dumps(data))
    imported, _warnings = load_encodings(enc_path, str(stats.prepared_model))
    plan = QuantPlan()
    plan.imported, plan.imported_source = imported, str(enc_path)
    again = build_qdq(stats, plan, tmp_path / "again.onnx")
    cov = build_coverage(again, stats)
    if kind == "lstm":
        assert any(lstm_bias in n and "kept float" in n for n in cov.notes), cov.notes
        assert lstm_bias not in again.encodings
    else:
        assert cov.notes == []
        ref = Analyser(stats.prepared_model).analyse(first.qdq_path, feeds).output_sqnr_db
        got = Analyser(stats.prepared_model).analyse(again.qdq_path, feeds).output_sqnr_db
        assert got == pytest.approx(ref, abs=0.05)
