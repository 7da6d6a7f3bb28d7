"""Accuracy figures that say what they are: mismatches are errors, data splits and targets are
named, HTP per-layer figures are really from HTP, quantisation MSE per tensor."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from studio.core.accuracy import Analyser
from studio.core.accuracy.simcheck import compare_sim_htp
from studio.core.accuracy.split import MIN_SPLIT, split_for_eval
from studio.core.calibration import calibrate
from studio.core.encodings import Encoding
from studio.core.errors import BadInputError
from studio.core.quantize import QuantPlan, build_qdq
from studio.core.quantize.mse import check_mse, encoding_mse, quantisation_mse
from tests import builders


def _save_cnn(tmp_path):
    return builders.save(builders.small_cnn(), tmp_path / "cnn.onnx")


def test_an_output_of_the_wrong_shape_is_an_error_naming_the_tensor(tmp_path):
    float_path = _save_cnn(tmp_path)
    # a "quantised" model with the same input and output names but 5 logits instead of 10
    w = helper.make_tensor("w", TensorProto.FLOAT, [5, 3], np.ones(15, np.float32))
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1),
        ],
        "wrong",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        [w],
    )
    wrong = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(wrong, tmp_path / "wrong.onnx")
    feeds = [{"input": np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)}]
    with pytest.raises(BadInputError, match=r"tensor 'logits'.*\[1, 5\].*\[1, 10\]"):
        Analyser(float_path).analyse(tmp_path / "wrong.onnx", feeds)


def test_split_holds_back_the_tail_of_calibration_data(tmp_path):
    path = _save_cnn(tmp_path)
    data = np.random.default_rng(0).random((40, 3, 32, 32), dtype=np.float32)
    np.savez(tmp_path / "d40.npz", input=data)
    split = split_for_eval(str(path), str(tmp_path / "d40.npz"))
    assert split.kind == "held-out" and split.calib_limit == 30 and len(split.feeds) == 10
    np.testing.assert_array_equal(split.feeds[0]["input"][0], data[30])
    assert "last 10 of 40" in split.label and "first 30" in split.label
    stats = calibrate(path, tmp_path / "d40.npz", cache_dir=tmp_path / "c", limit=30)
    assert stats.num_samples == 30  # calibration never sees the held-out samples


def test_split_with_few_samples_uses_all_and_says_so(tmp_path):
    path = _save_cnn(tmp_path)
    np.savez(tmp_path / "d.npz", input=np.zeros((MIN_SPLIT - 6, 3, 32, 32), np.float32))
    np.savez(tmp_path / "e.npz", input=np.ones((5, 3, 32, 32), np.float32))
    few = split_for_eval(str(path), str(tmp_path / "d.npz"))
    assert few.kind == "calibration" and few.calib_limit is None and len(few.feeds) == 10
    assert "fitted to" in few.label and f"< {MIN_SPLIT}" in few.label
    given = split_for_eval(str(path), str(tmp_path / "d.npz"), str(tmp_path / "e.npz"))
    assert given.kind == "eval" and len(given.feeds) == 5 and "never saw" in given.label


def test_quantize_cli_names_the_split_and_target(tmp_path):
    path = _save_cnn(tmp_path)
    np.savez(tmp_path / "d.npz", input=np.random.default_rng(1).random((20, 3, 32, 32), np.float32))
    out = subprocess.run(
        [sys.executable, "-m", "studio", "quantize", str(path), "-o", str(tmp_path / "q.onnx"),
         "--calib", str(tmp_path / "d.npz"), "--cache-dir", str(tmp_path / "c"), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["calibration"]["samples"] == 12
    assert summary["sqnr_samples"] == 8 and summary["sqnr_data"]["kind"] == "held-out"
    assert "CPU QDQ reference" in summary["sqnr_target"]


@pytest.fixture(scope="module")
def cnn_qdq(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("honest")
    path = _save_cnn(tmp)
    rng = np.random.default_rng(2)
    np.savez(tmp / "d.npz", input=rng.random((8, 3, 32, 32), dtype=np.float32))
    stats = calibrate(path, tmp / "d.npz", cache_dir=tmp / "c")
    built = build_qdq(stats, QuantPlan(), tmp / "q.onnx")
    feeds = [{"input": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(3)]
    return stats, built, feeds


def test_htp_per_layer_figures_come_from_htp_for_the_named_target(cnn_qdq):
    stats, built, feeds = cnn_qdq
    report = Analyser(stats.prepared_model).analyse(
        built.qdq_path, feeds, backend="htp", device="Samsung Galaxy S23"
    )
    # fails when QNN refuses the instrumented model and only outputs are compared
    assert report.htp_intermediates, report.notes
    assert report.layer("/stem/Relu_output_0") is not None
    assert "HTP v73" in report.target and "Galaxy S23" in report.target


def test_sim_vs_htp_view_joins_layers_and_flags_by_threshold(cnn_qdq):
    stats, built, feeds = cnn_qdq
    view = compare_sim_htp(stats.prepared_model, built.qdq_path, feeds, threshold_db=3.0)
    assert view.htp_per_layer and view.layers
    assert all(row.htp_db is not None for row in view.layers)
    diffs = [abs(row.diff_db) for row in view.layers]
    assert view.flagged == [r.tensor for r, d in zip(view.layers, diffs, strict=True) if d > 3.0]
    strict = compare_sim_htp(stats.prepared_model, built.qdq_path, feeds, threshold_db=0.0)
    assert len(strict.flagged) == sum(1 for d in diffs if d > 0.0) > 0  # CPU and HTP differ
    assert "HTP v75" in view.target and view.to_json()["layers"][0]["cpu_sqnr_db"] is not None


def test_quantisation_mse_per_tensor_and_threshold(cnn_qdq):
    stats, built, _ = cnn_qdq
    values = quantisation_mse(stats, built.encodings)
    assert "stem.weight" in values and "/stem/Relu_output_0" in values
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 20000).astype(np.float32)
    enc8 = Encoding.from_range("t", float(x.min()), float(x.max()), 8)
    enc4 = Encoding.from_range("t", float(x.min()), float(x.max()), 4)
    direct = encoding_mse(enc8, values=x)
    counts, edges = np.histogram(x, bins=4096)
    from_hist = encoding_mse(enc8, histogram=(counts, edges))
    assert from_hist.relative == pytest.approx(direct.relative, rel=0.2)
    assert encoding_mse(enc4, values=x).relative > 100 * direct.relative
    # the seed's validate_quantization_range: mean((x - dq(q(x)))^2)
    assert direct.mse == pytest.approx(float(np.mean((x - enc8.fake_quant(x)) ** 2)), rel=1e-6)
    worst = max(values.values(), key=lambda m: m.relative)
    over = check_mse(values, worst.relative / 2)
    assert over and over[0].tensor == worst.tensor
    assert check_mse(values, worst.relative * 2) == []
