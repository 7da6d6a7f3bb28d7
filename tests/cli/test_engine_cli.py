"""`npu-studio backends | run | compile`: exit codes, JSON output, messages (real worker, real HTP)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.cli import main
from tests import builders


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    cnn = builders.save(builders.small_cnn(), folder / "cnn.onnx")
    erf = builders.save(builders.small_cnn_erf_head(), folder / "erf.onnx")
    return {
        "cnn": builders.quantize_for_qnn(cnn, folder / "cnn_qdq.onnx"),
        "erf": builders.quantize_for_qnn(erf, folder / "erf_qdq.onnx"),
        "float": cnn,
    }


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.mark.htp
def test_backends_json_lists_the_registry(capsys):
    assert main(["backends", "--json"]) == 0
    data = _json(capsys)
    names = {b["name"]: b for b in data["backends"]}
    assert set(names) == {"htp", "gpu", "cpu", "qnn-cpu"}
    assert names["cpu"]["available"] and names["htp"]["available"]
    assert main(["backends"]) == 0
    text = capsys.readouterr().out
    assert "htp" in text and "versions: onnxruntime" in text


@pytest.mark.htp
def test_backends_offload_names_the_cpu_node(qdq, capsys):
    assert main(["backends", "--offload", str(qdq["erf"])]) == 0
    out = capsys.readouterr().out
    assert "CPU  /head/Erf (Erf): Operators of type `Erf` are not supported" in out


@pytest.mark.htp
def test_compile_then_run_bundle(qdq, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    code = main(
        ["compile", str(qdq["cnn"]), "--backend", "htp", "--soc-model", "60", "--htp-arch", "73",
         "-o", str(bundle), "--json"]
    )  # fmt: skip
    assert code == 0
    compiled = _json(capsys)
    assert compiled["offload"]["full_offload"] and (bundle / "manifest.json").is_file()
    inputs = tmp_path / "x.npz"
    np.savez(inputs, input=np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32))
    out = tmp_path / "y.npz"
    assert main(["run", str(bundle), "--inputs", str(inputs), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ran on HTP" in text and f"wrote {out}" in text and "random" not in text
    assert np.load(out)["logits"].shape == (1, 10)


def test_run_random_inputs_are_announced(qdq, capsys):
    assert main(["run", str(qdq["float"]), "--backend", "cpu", "--json"]) == 0
    result = _json(capsys)
    assert result["random_inputs"] is True and result["providers"] == ["CPUExecutionProvider"]
    assert main(["run", str(qdq["float"]), "--backend", "cpu"]) == 0
    assert "inputs: random (seed 0)" in capsys.readouterr().out


@pytest.mark.htp
def test_run_fallback_exits_3_with_node_names(qdq, capsys):
    assert main(["run", str(qdq["erf"])]) == 3
    err = capsys.readouterr().err
    assert "/head/Erf (Erf)" in err and "Traceback" not in err
    assert main(["run", str(qdq["erf"]), "--cpu-fallback", "allow"]) == 0
    assert main(["run", str(qdq["erf"]), "--allow-cpu-fallback"]) == 0  # the old spelling
    assert main(["run", str(qdq["erf"]), "--cpu-fallback", "forbid"]) == 3


def test_bad_inputs_and_paths_exit_2(qdq, tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
    cfg = tmp_path / "backend_config.json"
    cfg.write_text('{"cpu_config": {"num_threads": 1.5}}')
    assert main(["run", str(qdq["float"]), "--backend", "cpu", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "cpu_config.num_threads: expected an integer, got 1.5" in err and str(cfg) in err
    assert main(["run", str(qdq["float"]), "--backend", "tpu"]) == 2
    assert "unknown backend 'tpu'" in capsys.readouterr().err
    (tmp_path / "keep.txt").write_text("x")
    assert main(["compile", str(qdq["cnn"]), "-o", str(tmp_path)]) == 2
    assert "not a bundle" in capsys.readouterr().err


def test_compile_for_gpu_is_unavailable(qdq, tmp_path, capsys):
    assert main(["compile", str(qdq["cnn"]), "--backend", "gpu", "-o", str(tmp_path / "b")]) == 3
    assert "Adreno" in capsys.readouterr().err
