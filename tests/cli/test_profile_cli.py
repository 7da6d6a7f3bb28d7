"""`npu-studio profile`: JSON with ONNX node names, report, exports, bundles, exit codes."""

from __future__ import annotations

import json

import pytest

from studio.cli import main
from studio.core.overlay import NodeOverlay
from tests import builders
from tests.core.profiling.qdq import quantize_for_qnn


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile_cli")
    fp = builders.save(builders.small_cnn(), folder / "cnn.onnx")
    return {"float": fp, "qdq": quantize_for_qnn(fp, folder / "cnn_qdq.onnx")}


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_cpu_profile_json_report_export_compare(models, tmp_path, capsys):
    report, saved, export = tmp_path / "r.html", tmp_path / "run.json", tmp_path / "exp"
    argv = ["profile", str(models["float"]), "--backend", "cpu", "--runs", "15", "--json"]
    assert (
        main([*argv, "--report", str(report), "--save", str(saved), "--export", str(export)]) == 0
    )
    out = _json(capsys)
    assert out["schema_version"] == 1 and out["backend"] == "cpu"
    assert out["stats"]["count"] == 15 and len(out["latencies_ms"]) == 15
    assert {"/stem/Conv", "/block/conv/Conv", "/head/Gemm"} <= {r["node_id"] for r in out["layers"]}
    assert any(s["kind"] == "depthwise" for s in out["suggestions"])
    overlay = NodeOverlay.from_json(out["overlay"])
    shares = {r["node_id"]: r["share"] for r in out["layers"] if r["share"] is not None}
    assert overlay.values == pytest.approx(shares) and overlay.unit == "fraction"
    assert overlay.kind == "derived" and "measured" in overlay.source  # a CPU run on this host
    assert report.read_text().startswith("<!DOCTYPE html>")
    assert json.loads(saved.read_text())["id"] == out["id"]
    assert sorted(p.suffix for p in export.iterdir()) == [".csv", ".csv", ".json"]
    # A second run compared with the saved one in one report.
    report2 = tmp_path / "r2.html"
    assert (
        main([*argv[:-1], "--label", "again", "--compare", str(saved), "--report", str(report2)])
        == 0
    )
    text = report2.read_text()
    assert "Comparison of runs" in text and "again" in text
    human = capsys.readouterr().out
    assert "latency over 15 runs" in human and "/block/conv/Conv" in human


def test_errors_exit_codes(models, tmp_path, capsys):
    assert main(["profile", str(tmp_path / "missing.onnx"), "--backend", "cpu"]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1}')
    assert main(["profile", str(models["float"]), "--compare", str(bad)]) == 2
    assert main(["profile", str(models["float"]), "--backend", "cpu", "--runs", "0"]) == 2
    # No Adreno GPU here: the QNN GPU backend cannot initialise -> backend unavailable.
    assert main(["profile", str(models["float"]), "--backend", "gpu", "--runs", "2"]) == 3
    err = capsys.readouterr().err
    assert "GPU" in err and "Traceback" not in err


@pytest.mark.htp
def test_htp_profile_of_model_and_bundle(models, tmp_path, capsys):
    assert main(["profile", str(models["qdq"]), "--runs", "10", "--json"]) == 0
    out = _json(capsys)
    assert out["backend"] == "htp" and out["providers"][0] == "QNNExecutionProvider"
    conv = next(r for r in out["layers"] if r["node_id"] == "/block/conv/Conv")
    assert conv["cycles"] > 0 and conv["macs"] == 8 * 8 * 9 * 32 * 32
    assert any(r["inserted"] and r["op_type"] == "Transpose" for r in out["extra"])
    bundle = tmp_path / "bundle"
    compile_argv = ["compile", str(models["qdq"]), "--backend", "htp", "-o", str(bundle)]
    assert main([*compile_argv, "--soc-model", "60", "--htp-arch", "73", "--json"]) == 0
    capsys.readouterr()
    assert main(["profile", str(bundle), "--runs", "5", "--json"]) == 0
    out = _json(capsys)
    assert out["options"]["layers_mapped_to"] == str(models["qdq"])
    assert "/block/conv/Conv" in {r["node_id"] for r in out["layers"]}


@pytest.mark.htp
def test_pipeline_writes_report_and_stages(tmp_path, capsys):
    out = tmp_path / "out"
    model = builders.save(builders.small_cnn(), tmp_path / "cnn.onnx")
    assert main(["pipeline", str(model), "-o", str(out), "--runs", "5", "--json"]) == 0
    result = _json(capsys)
    assert result["schema_version"] == 1
    stages = ["inspect", "quantize", "compile", "accuracy", "profile", "report"]
    assert list(result["stages"]) == stages
    assert [s["status"] for s in result["stages"].values()] == ["ok"] * len(stages)
    assert json.loads((out / "pipeline.json").read_text()) == result
    assert (out / "model_qdq.onnx").is_file() and (out / "bundle" / "manifest.json").is_file()
    assert result["stages"]["profile"]["backend"] == "htp"
    assert len(result["stages"]["profile"]["outputs"]) == 2  # HTP run + CPU baseline
    text = (out / "report.html").read_text()
    assert "Quantisation" in text and "random:16" in text and "Comparison of runs" in text
    assert any("random data" in n for n in result["notes"])
