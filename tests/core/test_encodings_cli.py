"""``npu-studio encodings convert|check``, run in-process through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

from studio.cli import main
from studio.core.encodings import load_encodings

DATA = Path(__file__).resolve().parent.parent / "data" / "encodings"


def test_convert_aimet_to_qnn_with_model_and_coverage(tiny_model, tmp_path, capsys):
    out = tmp_path / "qnn.json"
    rc = main(
        ["encodings", "convert", str(DATA / "aimet_100.json"), "-o", str(out), "--format", "qnn",
         "--model", str(tiny_model), "--json"]
    )  # fmt: skip
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_format"] == "aimet1" and report["output_format"] == "qnn"
    assert report["coverage"]["missing_tensors"] == ["y"]
    assert report["coverage"]["unknown_tensors"] == []
    written = json.loads(out.read_text())
    assert len(written["param_encodings"]["conv1.weight"]) == 8
    back, _ = load_encodings(out, model=tiny_model)
    assert back["conv1.weight"].axis == 0 and back["conv1.weight"].offset == [-128] * 8


def test_check_text_output_and_warnings(capsys):
    assert main(["encodings", "check", str(DATA / "qnn_legacy.json")]) == 0
    captured = capsys.readouterr()
    assert "qnn, 3 encodings" in captured.out
    assert "positive offset 127" in captured.err and "legacy" in captured.err


def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "0.6.1", "activation_encodings": {"a": [{"bitwidth": 8, '
                   '"scale": "x", "offset": 0}]}, "param_encodings": {}}')  # fmt: skip
    out = tmp_path / "out.json"
    rc = main(["encodings", "convert", str(bad), "-o", str(out), "--format", "aimet2"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad.json: tensor 'a': field 'scale': expected a number" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["encodings", "check", str(tmp_path / "none.json")]) == 2
