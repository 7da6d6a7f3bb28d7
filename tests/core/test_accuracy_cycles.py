"""The speed axis of auto mixed precision: HTP cycles per point, measured on the QNN HTP simulator."""

from __future__ import annotations

import numpy as np
import pytest

from studio.core.accuracy import AutoMpResult
from studio.core.calibration import calibrate
from studio.core.errors import BackendUnavailableError, BadInputError
from studio.core.jobs.protocol import run_inline
from studio.core.profiling.cycles import htp_total_cycles
from studio.core.quantize import QuantPlan, build_qdq
from studio.core.workflows.automix import auto_mp_job
from tests import builders


@pytest.fixture
def setup(conv_model, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", input=rng.random((4, 3, 32, 32), dtype=np.float32))
    stats = calibrate(conv_model, tmp_path / "calib.npz", cache_dir=tmp_path / "cache")
    return stats, tmp_path


@pytest.mark.htp
def test_sixteen_bit_activations_cost_more_htp_cycles(setup):
    stats, tmp = setup
    a8 = build_qdq(stats, QuantPlan(), tmp / "a8.onnx").qdq_path
    a16 = build_qdq(stats, QuantPlan(activation_bitwidth=16), tmp / "a16.onnx").qdq_path
    c8, c16 = htp_total_cycles(a8), htp_total_cycles(a16)
    assert c8 > 10_000 and c16 > 10_000
    # measured on small_cnn: ~0.65 M (A8) vs ~1.06 M (A16) cycles on a quiet host. A busy host
    # only ADDS simulated cycles (up to 2x seen): a low A16/A8 ratio is checked again with more
    # readings, each lowering the minimum toward the uncontended figure.
    for _ in range(3):
        if c16 > 1.3 * c8:
            break
        c8, c16 = min(c8, htp_total_cycles(a8)), min(c16, htp_total_cycles(a16))
    assert c16 > 1.3 * c8, (c8, c16)


@pytest.mark.htp
def test_auto_mp_job_measures_cycles_of_every_point(setup):
    stats, tmp = setup
    out = run_inline(
        auto_mp_job,
        {
            "stats_dir": str(stats.folder),
            "data": str(tmp / "calib.npz"),
            "out": str(tmp / "mp.onnx"),
            "target_db": 200.0,  # out of reach: every step is measured
            "max_steps": 2,
            "step_size": 3,
            "samples": 2,
            "cycles": "htp",
        },
    )
    result = AutoMpResult.from_json(out)
    assert len(result.curve) == 3 and result.curve[0].wide_tensors == 0
    assert all(p.cycles is not None and p.cycles > 10_000 for p in result.curve)
    # a point with more 16-bit tensors is not cheaper than all-8-bit beyond the simulator's
    # noise. Noise only ADDS cycles, so a point's figure is at least its true cost; the
    # all-8-bit cost is the lowest of its readings (two more taken here).
    a8 = build_qdq(stats, QuantPlan(), tmp / "a8.onnx").qdq_path
    base = min(result.curve[0].cycles, htp_total_cycles(a8), htp_total_cycles(a8))
    for point in result.curve[1:]:
        assert point.wide_tensors > 0
        assert point.cycles > 0.9 * base, (point, base)


@pytest.mark.htp
def test_partial_offload_has_no_htp_cycles(tmp_path):
    float_path = builders.save(builders.small_cnn_erf_head(), tmp_path / "erf.onnx")
    qdq = builders.quantize_for_qnn(float_path, tmp_path / "erf.qdq.onnx", samples=2)
    with pytest.raises(BackendUnavailableError, match="Erf"):
        htp_total_cycles(qdq)


def test_bad_cycles_requests_fail_before_any_work(tmp_path):
    request = {"stats_dir": str(tmp_path / "missing"), "data": "random:2", "out": "x.onnx"}
    with pytest.raises(BadInputError, match="'cycles' must be one of htp"):
        run_inline(auto_mp_job, {**request, "target_db": 30.0, "cycles": "gpu"})
    with pytest.raises(BadInputError, match="not both"):
        run_inline(
            auto_mp_job,
            {
                **request,
                "target_db": 30.0,
                "cycles": "htp",
                "profile_fn": "studio.core.profiling.cycles:htp_total_cycles",
            },
        )
    with pytest.raises(BadInputError, match="runs must be >= 1"):
        htp_total_cycles(tmp_path / "x.onnx", runs=0)
