"""``npu-studio estimate`` / ``devices`` end to end (real subprocess-free CLI entry)."""

from __future__ import annotations

import json

from studio.cli import main
from studio.core.overlay import NodeOverlay


def test_estimate_json_top_level(conv_model, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["estimate", str(conv_model), "--device", "Samsung Galaxy S24", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["device"] == "Samsung Galaxy S24" and data["total_ms"] > 0
    assert data["nodes"] and set(data["nodes"][0]) >= {"id", "op_type", "ms"}
    overlay = NodeOverlay.from_json(data["overlay"])
    assert overlay.kind == "estimated" and overlay.unit == "ms"
    assert "Samsung Galaxy S24" in overlay.source and "error" in overlay.source
    assert overlay.values == {n["id"]: n["ms"] for n in data["nodes"]}


def test_estimate_unknown_device_exit_2(conv_model, capsys):
    assert main(["estimate", str(conv_model), "--device", "Pixel 99"]) == 2
    assert "Pixel 99" in capsys.readouterr().err


def test_default_target_is_printed(conv_model, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["estimate", str(conv_model)]) == 0
    io = capsys.readouterr()
    assert "Samsung Galaxy S24" in io.err and "default" in io.err
    assert "estimated" in io.out


def test_devices_lists_catalogue(capsys):
    assert main(["devices", "--catalogue", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any(d["name"] == "Samsung Galaxy S25" and d["htp_arch"] == 79 for d in data["devices"])


def test_estimate_cpu_figure_takes_assumed_constants(conv_model, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    args = ["estimate", str(conv_model), "--device", "Samsung Galaxy S24", "--json"]
    assert main(args) == 0
    base = json.loads(capsys.readouterr().out)
    assert main([*args, "--assume", "cpu_op_overhead_ms=1"]) == 0
    slow = json.loads(capsys.readouterr().out)
    assert slow["cpu_assumptions"]["op_overhead_ms"] == 1.0
    assert slow["cpu_total_ms"] >= base["cpu_total_ms"] + 0.9 * len(slow["cpu_nodes"])
    assert slow["total_ms"] == base["total_ms"]
    assert main([*args, "--assume", "cpu_op_overhead_ms=-1"]) == 2
