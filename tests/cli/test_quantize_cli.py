"""`npu-studio quantize` / `compare`: real models, real sessions, exit codes, atomic outputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from studio.cli import main
from studio.core.encodings import Encoding, EncodingSet, load_encodings, save_encodings


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def calib(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "calib.npz"
    np.savez(path, input=rng.random((5, 3, 32, 32), dtype=np.float32))
    return path


def _q_scale(model_path, tensor):
    model = onnx.load(str(model_path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = next(
        n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor
    )
    return float(inits[node.input[1]]), int(inits[node.input[2]])


def test_quantize_json_summary_and_export(capsys, conv_model, calib, tmp_path):
    out = tmp_path / "q.onnx"
    enc = tmp_path / "enc.json"
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", out, "--calib", calib, "--cache-dir",
        tmp_path / "cache", "--export-encodings", enc, "--format", "qnn", "--json",
    )  # fmt: skip
    assert rc == 0, err
    data = json.loads(stdout)
    assert data["schema_version"] == 1 and data["output"] == str(out)
    assert data["calibration"]["samples"] == 5 and data["calibration"]["cache_hit"] is False
    assert 15.0 < data["output_sqnr_db"] < 80.0
    assert data["promoted"] == [] and data["wide_tensors"] == []
    assert data["encodings_coverage"]["covered"] > 0 and not data["warnings"]
    exported, _ = load_encodings(enc, conv_model)
    scale, zp = _q_scale(out, "input")
    assert exported["input"].scale[0] == pytest.approx(scale, rel=1e-6)
    assert exported["input"].offset == [-zp]
    # same model + data: the second run reads the stats from the cache
    rc, stdout, _ = _run(
        capsys, "quantize", conv_model, "-o", out, "--calib", calib, "--cache-dir",
        tmp_path / "cache", "--method", "percentile", "--json",
    )  # fmt: skip
    assert rc == 0 and json.loads(stdout)["calibration"]["cache_hit"] is True


def test_quantize_imports_encodings_exactly(capsys, conv_model, calib, tmp_path):
    enc = tmp_path / "in.json"
    save_encodings(
        EncodingSet([Encoding.from_scale_offset("input", 0.005, -7, 8)]), enc, fmt="aimet1"
    )
    out = tmp_path / "q.onnx"
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", out, "--calib", calib, "--encodings", enc,
        "--cache-dir", tmp_path / "cache", "--json",
    )  # fmt: skip
    assert rc == 0, err
    scale, zp = _q_scale(out, "input")
    assert scale == np.float32(0.005) and zp == 7
    assert json.loads(stdout)["imported_encodings"] == str(enc)


def test_random_calibration_is_warned(capsys, tiny_model, tmp_path):
    rc, stdout, _ = _run(
        capsys, "quantize", tiny_model, "-o", tmp_path / "q.onnx", "--calib", "random:3",
        "--cache-dir", tmp_path / "c", "--json",
    )  # fmt: skip
    assert rc == 0
    assert any("random data" in w for w in json.loads(stdout)["warnings"])


def test_bad_calibration_file_exits_2_and_writes_nothing(capsys, conv_model, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=np.zeros((1, 3, 8, 8), np.float32))
    out, enc = tmp_path / "q.onnx", tmp_path / "enc.json"
    rc, _, err = _run(
        capsys, "quantize", conv_model, "-o", out, "--calib", bad, "--export-encodings", enc,
        "--cache-dir", tmp_path / "c",
    )  # fmt: skip
    assert rc == 2
    assert "bad.npz" in err and "'input'" in err and "Traceback" not in err
    assert not out.exists() and not enc.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".q.onnx")] == []


def test_unwritable_export_format_leaves_no_model(capsys, conv_model, calib, tmp_path):
    out = tmp_path / "q.onnx"
    rc, _, err = _run(
        capsys, "quantize", conv_model, "-o", out, "--calib", calib, "--export-encodings",
        tmp_path / "missing-dir" / "enc.json", "--cache-dir", tmp_path / "c",
    )  # fmt: skip
    assert rc == 2 and "enc.json" in err
    assert not out.exists()


def test_auto_mp_needs_a_target(capsys, conv_model, tmp_path):
    rc, _, err = _run(capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--auto-mp")
    assert rc == 2 and "--target-sqnr" in err


def test_auto_mp_reports_curve(capsys, conv_model, calib, tmp_path):
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--calib", calib,
        "--auto-mp", "--target-sqnr", "200", "--max-steps", "2", "--cache-dir", tmp_path / "c",
        "--json",
    )  # fmt: skip
    assert rc == 0, err
    data = json.loads(stdout)
    assert len(data["curve"]) == 3
    kept = [p for p in data["curve"] if p["kept"]]
    assert data["promoted"] == [t for p in kept for t in p["promoted"]]
    assert set(data["promoted"]) <= set(data["wide_tensors"])
    assert data["curve"][0]["wide_tensors"] == 0


def test_auto_mp_ranked_by_measured_sensitivity(capsys, conv_model, calib, tmp_path):
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--calib", calib,
        "--auto-mp", "--target-sqnr", "200", "--max-steps", "2", "--mp-rank", "measured",
        "--mp-techniques", "none", "--cache-dir", tmp_path / "c", "--json",
    )  # fmt: skip
    assert rc == 0, err
    data = json.loads(stdout)
    assert len(data["curve"]) == 3 and all("carried" in p for p in data["curve"])
    assert data["curve"][1]["moves"][0]["kind"] == "act16"
    assert set(data["promoted"]) <= set(data["wide_tensors"])


def test_compare_json(capsys, conv_model, calib, tmp_path):
    out = tmp_path / "q.onnx"
    assert _run(capsys, "quantize", conv_model, "-o", out, "--calib", calib, "--cache-dir",
                tmp_path / "c")[0] == 0  # fmt: skip
    rc, stdout, err = _run(capsys, "compare", conv_model, out, "--calib", calib, "--json")
    assert rc == 0, err
    data = json.loads(stdout)
    assert data["backend"] == "cpu" and data["samples"] == 5
    assert {layer["tensor"] for layer in data["layers"]} >= {"input", "logits"}
    assert isinstance(data["outputs"]["logits"], float)
    rc, stdout, _ = _run(capsys, "compare", conv_model, out, "--calib", calib)
    assert rc == 0 and "output logits:" in stdout


@pytest.mark.htp
def test_compare_on_htp(capsys, conv_model, calib, tmp_path):
    out = tmp_path / "q.onnx"
    assert _run(capsys, "quantize", conv_model, "-o", out, "--calib", calib, "--cache-dir",
                tmp_path / "c")[0] == 0  # fmt: skip
    rc, stdout, err = _run(
        capsys, "compare", conv_model, out, "--calib", calib, "--backend", "htp", "--json"
    )
    assert rc == 0, err
    data = json.loads(stdout)
    assert data["backend"] == "htp" and data["notes"]
    assert data["outputs"]["logits"] > 15.0


def test_compare_mismatched_models_exit_2(capsys, conv_model, tiny_model, tmp_path):
    rc, _, err = _run(capsys, "compare", conv_model, tiny_model, "--samples", "1")
    assert rc == 2 and "Traceback" not in err


@pytest.mark.htp
def test_auto_mp_measured_on_htp(capsys, conv_model, calib, tmp_path):
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--calib", calib,
        "--auto-mp", "--mp-backend", "htp", "--target-sqnr", "200", "--max-steps", "1",
        "--cache-dir", tmp_path / "c", "--json",
    )  # fmt: skip
    assert rc == 0, err
    data = json.loads(stdout)
    assert len(data["curve"]) == 2 and data["curve"][1]["wide_tensors"] > 0
    assert data["sqnr_backend"] == "htp"
    # the curve's first point is the HTP measurement of the plain A8W8 model
    rc, cmp_out, _ = _run(capsys, "quantize", conv_model, "-o", tmp_path / "base.onnx",
                          "--calib", calib, "--cache-dir", tmp_path / "c", "--json")  # fmt: skip
    base = tmp_path / "base.onnx"
    rc, cmp_out, _ = _run(capsys, "compare", conv_model, base, "--calib", calib,
                          "--samples", "5", "--backend", "htp", "--json")  # fmt: skip
    htp_db = json.loads(cmp_out)["output_sqnr_db"]
    assert data["curve"][0]["output_sqnr_db"] == pytest.approx(htp_db, abs=1e-6)


@pytest.mark.htp
def test_check_htp_reports_offload_and_refusal(capsys, conv_model, calib, tmp_path):
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--calib", calib,
        "--check-htp", "--cache-dir", tmp_path / "c", "--json",
    )  # fmt: skip
    assert rc == 0, err
    assert json.loads(stdout)["htp_full_offload"] == {"ok": True, "reason": ""}
    # 16-bit Conv weights: an HTP v68 target (Galaxy S21) refuses them, so the CLI does not build
    # them (and says why); the default target (Galaxy S24, HTP v75) runs them.
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "w16.onnx", "--calib", calib,
        "--weight-bw", "16", "--act-bw", "16", "--check-htp", "--cache-dir", tmp_path / "c",
        "--json", "--device", "Samsung Galaxy S21",
    )  # fmt: skip
    assert rc == 2 and "16-bit weights cannot run on QNN HTP" in err and "Conv" in err
    assert not (tmp_path / "w16.onnx").exists()
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "w16b.onnx", "--calib", calib,
        "--weight-bw", "16", "--act-bw", "16", "--check-htp", "--cache-dir", tmp_path / "c",
        "--json",
    )  # fmt: skip
    assert rc == 0, err
    assert json.loads(stdout)["htp_full_offload"]["ok"] is True


def test_quantize_human_output(capsys, tiny_model, tmp_path):
    rc, stdout, err = _run(
        capsys, "quantize", tiny_model, "-o", tmp_path / "q.onnx", "--calib", "random:2",
        "--cache-dir", tmp_path / "c",
    )  # fmt: skip
    assert rc == 0, err
    assert "warning: calibrating on random data" in stdout
    assert "output SQNR (CPU, 2 samples):" in stdout and (tmp_path / "q.onnx").is_file()


def test_mp_cycles_needs_auto_mp(capsys, conv_model, tmp_path):
    rc, _, err = _run(capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--mp-cycles")
    assert rc == 2 and "--auto-mp" in err and not (tmp_path / "q.onnx").exists()


@pytest.mark.htp
def test_auto_mp_curve_carries_htp_cycles(capsys, conv_model, calib, tmp_path):
    args = (
        "quantize", conv_model, "-o", tmp_path / "q.onnx", "--calib", calib, "--auto-mp",
        "--target-sqnr", "200", "--max-steps", "1", "--mp-cycles", "--cache-dir", tmp_path / "c",
    )  # fmt: skip
    rc, stdout, err = _run(capsys, *args, "--json")
    assert rc == 0, err
    data = json.loads(stdout)
    assert data["curve_cycles"] == "htp" and len(data["curve"]) == 2
    assert all(p["cycles"] > 10_000 for p in data["curve"])  # small_cnn: ~0.65 M cycles at A8
    rc, stdout, err = _run(capsys, *args)
    assert rc == 0, err
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "HTP cycles" in line)
    assert lines[head].split()[:4] == ["step", "16-bit", "SQNR", "dB"]
    rows = [line.split() for line in lines[head + 1 : head + 3]]
    assert [r[0] for r in rows] == ["0", "1"] and rows[0][1] == "0"
    assert all(int(r[3].replace(",", "")) > 10_000 for r in rows)


def test_quantize_block_wise_int4(capsys, tmp_path):
    from tests import builders
    from tests import real_graphs as rg

    model = builders.save(rg.pointwise_int4(), tmp_path / "pw.onnx")
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((6, 64, 8, 8), np.float32))
    out = tmp_path / "q.onnx"
    rc, stdout, err = _run(
        capsys, "quantize", model, "-o", out, "--calib", tmp_path / "d.npz", "--cache-dir",
        tmp_path / "c", "--weight-bw", "4", "--act-bw", "16", "--block-size", "32",
        "--device", "Samsung Galaxy S24", "--json",
    )  # fmt: skip
    assert rc == 0, err
    data = json.loads(stdout)
    assert data["blockwise_weights"] == {"pw1.w": 32, "pw2.w": 32, "fc.w": 32}
    assert any("'k3.w' stays per-channel INT4" in w for w in data["warnings"])
    blocked = [
        n for n in onnx.load(str(out)).graph.node
        if n.op_type == "DequantizeLinear" and any(a.name == "block_size" for a in n.attribute)
    ]  # fmt: skip
    assert len(blocked) == 3
    rc, _, err = _run(capsys, "quantize", model, "-o", out, "--calib", tmp_path / "d.npz",
                      "--weight-bw", "4", "--block-size", "24")  # fmt: skip
    assert rc == 2 and "power of two" in err


def test_auto_mp_json_has_moves_techniques_and_the_device_estimate(
    capsys, conv_model, calib, tmp_path
):
    rc, stdout, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--calib", calib,
        "--weight-bw", "4", "--auto-mp", "--target-sqnr", "200", "--max-steps", "1",
        "--mp-techniques", "seqmse", "--latency-budget-ms", "50", "--cache-dir", tmp_path / "c",
        "--json",
    )  # fmt: skip
    assert rc == 0, err
    data = json.loads(stdout)
    extra = data["auto_mp"]
    assert extra["mp_techniques"] == ["seqmse"] and extra["latency_budget_ms"] == 50.0
    assert (
        extra["estimated_for"] in extra["estimate_label"] and "estimated" in extra["estimate_label"]
    )
    assert {e["weight"] for e in extra["technique_effects"]} >= {"stem.weight", "head.weight"}
    assert set(extra["pareto_steps"]) <= {p["step"] for p in data["curve"]}
    for point in data["curve"][1:]:
        (move,) = point["moves"]
        assert move["kind"] in ("act16", "weight8", "seqmse") and move["predicted_ms"] is not None
    kept = [p for p in data["curve"] if p["kept"]]
    assert data["promoted"] == [t for p in kept for t in p["promoted"]]
    assert extra["chosen_estimated_ms"] == kept[-1]["estimated_ms"]


def test_unknown_mp_technique_is_refused(capsys, conv_model, tmp_path):
    rc, _, err = _run(
        capsys, "quantize", conv_model, "-o", tmp_path / "q.onnx", "--auto-mp",
        "--target-sqnr", "30", "--mp-techniques", "cle",
    )  # fmt: skip
    assert rc == 2 and "--mp-techniques" in err and "cle" in err
