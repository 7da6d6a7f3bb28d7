"""Calibration: one pass, exact histograms, methods from stored stats, cache, bad data."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from studio.core.calibration import (
    RANDOM_WARNING,
    CalibrationStats,
    Preprocess,
    RunningHistogram,
    calibrate,
    calibrate_job,
    compute_range,
)
from studio.core.errors import BadInputError, JobCancelledError
from studio.core.jobs.protocol import JobContext, run_inline


def _batches(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # widening ranges force growth and power-of-two merges of the grid
    return [rng.normal(0.5 * i, 1.0 + 3 * i, 5000).astype(np.float32) for i in range(5)] + [
        np.full(100, 40.0, dtype=np.float32)
    ]


def test_histogram_is_exact_over_growing_batches():
    h = RunningHistogram(max_bins=512)
    data = _batches()
    for b in data:
        h.update(b)
    allx = np.concatenate(data)
    counts, edges = h.clipped_counts()
    assert h.minimum == allx.min() and h.maximum == allx.max()
    assert counts.sum() == allx.size and counts.size <= 512
    ref, _ = np.histogram(allx.astype(np.float64), bins=h.edges)
    # edges are multiples of the width: numpy's binning and ours agree except float32 rounding
    assert np.abs(ref - counts).sum() <= 4
    assert h.mean == pytest.approx(allx.astype(np.float64).mean(), abs=h.width)


def test_constant_then_wide_tensor():
    h = RunningHistogram()
    h.update(np.zeros(10, np.float32))
    h.update(np.linspace(-3, 5, 1000, dtype=np.float32))
    assert h.counts.sum() == 1010
    assert compute_range(h, "minmax") == (-3.0, 5.0)


def test_methods_shrink_heavy_tails_and_stay_inside_minmax():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 200_000).astype(np.float32)
    x[:20] = 60.0  # rare outliers
    h = RunningHistogram()
    h.update(x)
    lo_p, hi_p = compute_range(h, "percentile", percentile=99.9)
    ref_lo, ref_hi = np.percentile(x, [0.05, 99.95])
    assert lo_p == pytest.approx(ref_lo, abs=2 * h.width)
    assert hi_p == pytest.approx(ref_hi, abs=2 * h.width)
    for method in ("entropy", "percentile"):
        lo, hi = compute_range(h, method, percentile=99.9)
        assert h.minimum <= lo <= 0 <= hi <= h.maximum
        assert hi < 20.0, f"{method} kept the outliers: {hi}"


def test_mse_clips_a_laplace_tail_at_8_bits_not_at_16():
    x = np.random.default_rng(2).laplace(0, 1, 200_000).astype(np.float32)
    h = RunningHistogram()
    h.update(x)
    lo8, hi8 = compute_range(h, "mse", bitwidth=8)
    lo16, hi16 = compute_range(h, "mse", bitwidth=16)
    assert h.minimum < lo8 < 0 < hi8 < h.maximum
    assert 0.5 * h.maximum < hi8  # Banner et al.: about 10 b for 8-bit Laplace, not a collapse
    assert hi16 > hi8 and lo16 < lo8

    def mse(lo, hi, bits=8):
        scale = (hi - lo) / (2**bits - 1)
        q = np.clip(np.round((x - lo) / scale), 0, 2**bits - 1) * scale + lo
        return float(np.mean((q - x) ** 2))

    assert mse(lo8, hi8) < mse(h.minimum, h.maximum)


def _conv_relu_reference(model_path, samples):
    ref = ReferenceEvaluator(onnx.load(str(model_path)))
    conv = [ref.run(["/conv1/Conv_output_0"], {"x": s})[0] for s in samples]
    return np.concatenate([c.ravel() for c in conv])


def test_stats_match_an_independent_reference(tiny_model, tmp_path):
    rng = np.random.default_rng(3)
    samples = [rng.normal(0, 1, (1, 3, 16, 16)).astype(np.float32) for _ in range(6)]
    np.savez(tmp_path / "calib.npz", x=np.concatenate(samples))  # [6, 3, 16, 16] = 6 samples
    stats = calibrate(tiny_model, tmp_path / "calib.npz", cache_dir=tmp_path / "cache")
    assert stats.num_samples == 6
    conv = _conv_relu_reference(tiny_model, samples)
    lo, hi = stats.range("/conv1/Conv_output_0")
    assert lo == pytest.approx(conv.min(), rel=1e-5) and hi == pytest.approx(conv.max(), rel=1e-5)
    assert stats.range("y") == pytest.approx((0.0, max(conv.max(), 0.0)), rel=1e-5)
    assert stats.tensor("x").count == 6 * 3 * 16 * 16
    assert stats.prepared_model.is_file()


def test_cache_hit_and_method_change_need_no_model_run(tiny_model, tmp_path):
    np.save(tmp_path / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    hits: list[bool] = []
    first = calibrate(
        tiny_model, tmp_path / "a.npy", cache_dir=tmp_path / "c", on_cache=hits.append
    )
    second = calibrate(
        tiny_model, tmp_path / "a.npy", cache_dir=tmp_path / "c", on_cache=hits.append
    )
    assert hits == [False, True]
    assert second.folder == first.folder
    for name in first.tensor_names():
        assert np.array_equal(first.histograms[name].counts, second.histograms[name].counts)
        assert first.range(name, "mse") == second.range(name, "mse")
    # different data -> a different cache entry
    np.save(tmp_path / "a.npy", np.full((1, 3, 16, 16), 2.0, np.float32))
    third = calibrate(
        tiny_model, tmp_path / "a.npy", cache_dir=tmp_path / "c", on_cache=hits.append
    )
    assert hits[-1] is False and third.folder != first.folder


def test_save_load_roundtrip_keeps_histograms(tiny_model, tmp_path):
    stats = calibrate(tiny_model, "random:3", cache_dir=tmp_path / "c")
    loaded = CalibrationStats.load(stats.folder)
    assert loaded.to_json() == stats.to_json()
    for name in stats.tensor_names():
        assert loaded.histogram(name)[0].tolist() == stats.histogram(name)[0].tolist()


def test_random_source_warns(tiny_model, tmp_path):
    logs: list[str] = []
    stats = calibrate(
        tiny_model, "random:2", cache_dir=tmp_path / "c", ctx=JobContext(on_log=logs.append)
    )
    assert RANDOM_WARNING in stats.warnings
    assert any("random data" in line for line in logs)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((1, 3, 8, 8), np.float32), "does not match"),
        (np.full((1, 3, 16, 16), np.nan, np.float32), "NaN"),
        (np.full((1, 3, 16, 16), np.inf, np.float32), "Inf"),
        (np.array(["a"]), "dtype"),
    ],
)
def test_bad_calibration_files_name_file_and_input(tiny_model, tmp_path, array, message):
    path = tmp_path / "bad.npz"
    np.savez(path, x=array)
    with pytest.raises(BadInputError) as err:
        calibrate(tiny_model, path, cache_dir=tmp_path / "c")
    assert message in str(err.value) and "bad.npz" in str(err.value)
    if message != "dtype":
        assert "'x'" in str(err.value)


def test_missing_input_key_is_named(conv_model, tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 3, 32, 32), np.float32), b=np.zeros(3))
    with pytest.raises(BadInputError, match="missing input 'input'"):
        calibrate(conv_model, tmp_path / "two.npz", cache_dir=tmp_path / "c")


def test_image_folder_with_preprocessing(tiny_model, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, value in enumerate((0, 128, 255)):
        Image.new("RGB", (20, 24), (value, value, value)).save(folder / f"{i}.png")
    pp = Preprocess(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    stats = calibrate(tiny_model, folder, preprocess=pp, cache_dir=tmp_path / "c")
    assert stats.num_samples == 3
    assert stats.range("x") == pytest.approx((-2.0, 2.0), abs=1e-6)


def test_cancel_stops_the_pass(tiny_model, tmp_path):
    ctx = JobContext()
    ctx.token.cancel()
    with pytest.raises(JobCancelledError):
        calibrate(tiny_model, "random:4", cache_dir=tmp_path / "c", ctx=ctx)
    assert not any((tmp_path / "c").iterdir())  # no half-written cache entry


def test_job_reports_progress_and_cache(tiny_model, tmp_path):
    seen: list[float] = []
    request = {"model": str(tiny_model), "data": "random:3", "cache_dir": str(tmp_path / "c")}
    result = run_inline(calibrate_job, request, JobContext(on_progress=lambda f, t: seen.append(f)))
    assert result["num_samples"] == 3 and result["cache_hit"] is False
    assert seen[-1] == 1.0
    again = run_inline(calibrate_job, request)
    assert again["cache_hit"] is True and again["stats_dir"] == result["stats_dir"]


def test_dynamic_input_needs_a_shape(tmp_path):
    from tests import builders

    model = builders.conv_relu()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = builders.save(model, tmp_path / "dyn.onnx")
    with pytest.raises(BadInputError, match="--input-shape"):
        calibrate(path, "random:2", cache_dir=tmp_path / "c")
    stats = calibrate(
        path, "random:2", cache_dir=tmp_path / "c", input_shapes={"x": [1, 3, 16, 16]}
    )
    assert stats.shapes["y"] == [1, 8, 16, 16]


def test_batching_falls_back_when_the_model_hardcodes_its_batch(tmp_path):
    from onnx import TensorProto, helper

    from tests import builders

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1])
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("Relu", ["flat"], ["y"]),
        ],
        "hardcoded_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", builders.OPSET)])
    path = builders.save(model, tmp_path / "hard.onnx")
    rng = np.random.default_rng(4)
    data = rng.normal(0, 1, (6, 3, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=data)
    logs: list[str] = []
    stats = calibrate(
        path, tmp_path / "d.npz", cache_dir=tmp_path / "c", ctx=JobContext(on_log=logs.append)
    )
    assert any("one sample at a time" in line for line in logs)
    assert stats.num_samples == 6
    assert stats.range("flat") == pytest.approx((data.min(), data.max()))
    assert stats.tensor("y").count == data.size and stats.shapes["y"] == [1, 48]


@pytest.mark.parametrize(("lo", "hi"), [(0.0, None), (0.0, 6.0), (-1.5, 2.25), (None, 0.7)])
def test_clamped_histograms_derive_exactly(lo, hi):
    from studio.core.calibration.derive import Derivation, derive

    x = np.random.default_rng(7).normal(0.5, 3.0, 50_000).astype(np.float32)
    h = RunningHistogram()
    h.update(x)
    d = derive(h, Derivation("y", "x", lo, hi))
    y = np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    assert (d.minimum, d.maximum) == (float(y.min()), float(y.max()))
    assert d.count == x.size and d.counts.sum() == x.size
    ref, _ = np.histogram(y.astype(np.float64), bins=d.edges)
    ref[0] += np.count_nonzero(y < d.edges[0])
    ref[-1] += np.count_nonzero(y >= d.edges[-1])
    assert np.abs(ref - d.counts).sum() <= 2  # float32 rounding at bin edges only
    for q in (99.0, 99.9):
        got = compute_range(d, "percentile", percentile=q)
        want = np.percentile(y, [(100 - q) / 2, 100 - (100 - q) / 2])
        assert got == pytest.approx(tuple(want), abs=2 * d.width)


def test_relu_and_reshape_outputs_are_derived_not_run(conv_model, tmp_path):
    from studio.core.calibration.collect import _float_tensors
    from studio.core.calibration.derive import derivations

    stats = calibrate(conv_model, "random:3", cache_dir=tmp_path / "c")
    proto = onnx.load(str(stats.prepared_model))
    derived = {d.output: d.source for d in derivations(proto, set(_float_tensors(proto)[0]))}
    assert derived["/stem/Relu_output_0"] == "/stem/Conv_output_0"
    assert derived["/pool/Flatten_output_0"] == "/pool/GAP_output_0"
    # and still measured correctly: compare with a plain run of the model
    import onnxruntime as ort

    aug = onnx.load(str(stats.prepared_model))
    aug.graph.output.extend([onnx.ValueInfoProto(name=n) for n in derived])
    sess = ort.InferenceSession(aug.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)  # random:N draws with the source's seed 0
    feeds = [rng.random((1, 3, 32, 32), dtype=np.float32) for _ in range(3)]
    outs = [
        dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": f}), strict=True))
        for f in feeds
    ]
    for name in derived:
        values = np.concatenate([o[name].ravel() for o in outs])
        assert stats.range(name) == pytest.approx((values.min(), values.max()), rel=1e-6)


def test_npz_sample_count_reads_headers_only(conv_model, tmp_path):
    from studio.core.calibration import CalibrationSource, load_fixed, model_inputs
    from studio.core.calibration.data import _npz_headers

    specs = model_inputs(load_fixed(conv_model, None))
    rng = np.random.default_rng(3)
    arr = rng.random((5, *specs[0].shape[1:]), dtype=np.float32)
    np.savez_compressed(tmp_path / "a.npz", **{specs[0].name: arr})
    np.savez(tmp_path / "b.npz", arr[:2])  # one unnamed array for a one-input model
    heads = _npz_headers(tmp_path / "a.npz", [specs[0].name])
    assert heads[specs[0].name].shape == arr.shape and heads[specs[0].name].dtype == np.float32
    assert heads[specs[0].name].strides == (0,) * arr.ndim  # no data behind it
    source = CalibrationSource(tmp_path, specs)
    assert source.count() == 7 == sum(1 for _ in source)
    (tmp_path / "c.npz").write_bytes(b"not a zip")  # unreadable: the full reader names it
    with pytest.raises(BadInputError, match="c.npz"):
        CalibrationSource(tmp_path, specs).count()
