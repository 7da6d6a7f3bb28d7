"""The quantise workflow as a worker job: the GUI's Build QDQ sends it what the CLI builds from.

The window calibrates once, the user edits the plan, then builds from those statistics; the
workflow must build exactly what ``npu-studio quantize`` builds from the same model, data and
plan, so the two cannot drift apart.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from studio.core.calibration import Preprocess, calibrate
from studio.core.errors import BadInputError
from studio.core.jobs.client import run_in_worker
from studio.core.jobs.protocol import JobContext, job_kind, resolve_job
from studio.core.quantize import QuantPlan, TensorOverride, encodings_of_qdq
from studio.core.workflows.quantize import (
    QuantizeRequest,
    calibrate_stage,
    quantize_job,
    quantize_model,
    split_stage,
)
from tests import builders

WIDE = "y"  # the Relu output (the Conv output is fused into it)


@pytest.fixture
def model(tmp_path):
    return builders.save(builders.conv_relu(), tmp_path / "conv_relu.onnx")


@pytest.fixture
def calib(tmp_path):
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.random.default_rng(0).random((6, 3, 16, 16), dtype=np.float32))
    return path


def _plan() -> QuantPlan:
    plan = QuantPlan(method="percentile", percentile=99.9)
    plan.set_override(TensorOverride(WIDE, bitwidth=16))
    return plan


def test_a_request_crosses_to_the_worker_as_json_and_back():
    req = QuantizeRequest(
        model="m.onnx",
        output="q.onnx",
        calib="random:4",
        plan=_plan(),
        input_shapes={"x": [1, 3, 16, 16]},
        preprocess=Preprocess(size=(16, 16), layout="NCHW"),
        techniques="cle",
        check_htp=True,
        stats_dir="/stats",
    )
    back = QuantizeRequest.from_json(json.loads(json.dumps(req.to_json())))
    assert back.plan.to_json() == req.plan.to_json()
    assert back.preprocess == req.preprocess
    back.plan, req.plan = None, None  # compared above; QuantPlan has no __eq__ of its own
    assert back == req
    with pytest.raises(BadInputError, match="unknown field.*outptu"):
        QuantizeRequest.from_json({"model": "m.onnx", "outptu": "q.onnx"})
    with pytest.raises(BadInputError, match="output"):
        QuantizeRequest.from_json({"model": "m.onnx"})


def test_the_worker_job_builds_from_given_stats_what_the_cli_builds(model, calib, tmp_path):
    cache = tmp_path / "cache"
    stats = calibrate(model, str(calib), cache_dir=cache)  # the window's Calibrate
    gui_out = tmp_path / "gui.qdq.onnx"
    gui = QuantizeRequest(
        model=str(model),
        output=str(gui_out),
        calib=str(calib),
        plan=_plan(),
        sqnr=False,
        stats_dir=str(stats.folder),
    )
    kind = job_kind(quantize_job)
    assert resolve_job(kind) is quantize_job
    result = run_in_worker(kind, gui.to_json())
    assert result["built"]["qdq_path"] == str(gui_out) and gui_out.is_file()
    assert result["calibration"]["cache_hit"] and result["calibration"]["samples"] == 6
    assert WIDE in result["wide_tensors"] and result["report"] is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    cli_out = tmp_path / "cli.qdq.onnx"
    cli = QuantizeRequest(
        model=str(model),
        output=str(cli_out),
        calib=str(calib),
        plan=_plan(),
        sqnr=False,
        cache_dir=str(cache),
    )
    outcome = quantize_model(cli)  # the CLI's path: calibrates (a cache hit here) and builds
    assert outcome.cache_hit
    gui_enc = encodings_of_qdq(onnx.load(str(gui_out)))
    cli_enc = encodings_of_qdq(onnx.load(str(cli_out)))
    assert gui_enc[WIDE].bitwidth == 16
    assert {n: e.to_json() for n, e in gui_enc.items()} == {
        n: e.to_json() for n, e in cli_enc.items()
    }
    assert outcome.built.wide_tensors == result["wide_tensors"]


def test_given_stats_are_used_as_they_are_and_a_technique_model_is_calibrated(
    model, calib, tmp_path
):
    stats = calibrate(model, str(calib), cache_dir=tmp_path / "a")
    req = QuantizeRequest(
        model=str(model), output="q.onnx", calib="random:3", stats_dir=str(stats.folder)
    )
    given, hit = calibrate_stage(req, ctx=JobContext())
    assert hit and given.folder == stats.folder and given.num_samples == 6  # not random:3
    req.cache_dir = str(tmp_path / "b")
    fresh, hit = calibrate_stage(req, ctx=JobContext(), model=str(model))
    assert not hit and fresh.num_samples == 3


def test_with_given_stats_nothing_is_called_held_out(model, calib, tmp_path):
    # calibration saw every sample of calib: the figures are on calibration data, and say so
    split = split_stage(
        QuantizeRequest(model=str(model), output="q.onnx", calib=str(calib), stats_dir="s")
    )
    assert split.kind == "calibration" and split.calib_limit is None
    assert len(split.feeds) == 6 and "not held out" in split.label
    rnd = split_stage(
        QuantizeRequest(model=str(model), output="q.onnx", calib="random:16", stats_dir="s")
    )
    assert rnd.kind == "random" and "drawn apart from calibration's" in rnd.label
    assert len(rnd.feeds) == 8  # eval_samples
    # a separate --eval source is still held out
    held = split_stage(
        QuantizeRequest(
            model=str(model), output="q.onnx", calib=str(calib), eval="random:2", stats_dir="s"
        )
    )
    assert held.kind == "eval" and "calibration never saw them" in held.label
