"""`npu-studio assign`: writes a plan from real op support; errors exit 2 or 3, never a traceback."""

from __future__ import annotations

import json

import pytest

from studio.cli import main
from tests import builders

pytestmark = pytest.mark.htp


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assign_cli")
    mp = pytest.MonkeyPatch()
    mp.setenv("NPU_STUDIO_CACHE_DIR", str(folder / "cache"))  # probe once for the module
    yield builders.save(builders.qdq_conv_erf(), folder / "qdq.onnx")
    mp.undo()


def test_assign_writes_a_plan(model, tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["assign", str(model), "-o", str(out), "--pin", "/tail/Mul=cpu"]) == 0
    plan = json.loads(out.read_text())
    assert plan["schema_version"] == 1 and plan["kind"] == "npu-studio.backend-plan"
    by_node = {n["node_id"]: n for n in plan["nodes"]}
    assert by_node["/tail/Erf"]["backend"] == "cpu"
    assert "Erf" in by_node["/tail/Erf"]["scores"]["htp"]["reason"]
    assert by_node["/conv/Conv"]["backend"] == "htp"
    assert by_node["/tail/Mul"]["pinned"] and plan["constraints"]["pins"] == {"/tail/Mul": "cpu"}
    assert plan["op_support"]["backends"]["gpu"]["available"] is False
    text = capsys.readouterr().out
    assert "GPU unavailable:" in text and "/tail/Erf" in text and "segment(s)" in text


def test_assign_json_and_constraints(model, tmp_path, capsys):
    out = tmp_path / "plan.json"
    args = ["assign", str(model), "-o", str(out), "--json", "--power-critical"]
    assert main([*args, "--latency-budget-ms", "0.001"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["constraints"]["power_critical"] is True
    assert printed["summary"]["over_budget"] is True
    assert json.loads(out.read_text())["nodes"] == printed["nodes"]


def test_assume_changes_the_plan_cost_and_is_recorded(model, tmp_path, capsys):
    base_out, out = tmp_path / "base.json", tmp_path / "plan.json"
    assert main(["assign", str(model), "-o", str(base_out)]) == 0
    capsys.readouterr()
    values = tmp_path / "assumed.json"
    values.write_text(json.dumps({"boundary_sync_ms": 1.0, "cpu_energy_per_ms": 9.0}))
    args = ["assign", str(model), "-o", str(out), "--assumptions", str(values)]
    assert main([*args, "--assume", "boundary_sync_ms=2.5"]) == 0  # the flag wins over the file
    assert "assumed (changed): boundary_sync_ms=2.5, cpu_energy_per_ms=9" in capsys.readouterr().out
    base, plan = json.loads(base_out.read_text()), json.loads(out.read_text())
    assumed = plan["summary"]["assumptions"]
    assert assumed["kind"] == "assumed" and assumed["values"]["boundary_sync_ms"] == 2.5
    assert plan["constraints"]["assumptions"] == {"boundary_sync_ms": 2.5, "cpu_energy_per_ms": 9.0}
    # by default the conv block runs on HTP and the Erf tail on CPU (real boundaries); at 2.5 ms
    # a hand-over, two boundaries cost more than the whole model on the CPU: one segment
    backend = {n["node_id"]: n["backend"] for n in base["nodes"]}
    assert backend["/conv/Conv"] == "htp" and base["summary"]["boundaries"] >= 1
    moved = {n["node_id"]: n for n in plan["nodes"]}
    assert moved["/conv/Conv"]["backend"] == "cpu" and plan["summary"]["boundaries"] == 0
    assert plan["summary"]["estimated_total_ms"] != base["summary"]["estimated_total_ms"]


def test_pin_to_unavailable_backend_exits_3(model, tmp_path, capsys):
    code = main(["assign", str(model), "-o", str(tmp_path / "p.json"), "--pin", "/conv/Conv=gpu"])
    assert code == 3
    err = capsys.readouterr().err
    assert "gpu" in err and "not available" in err and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pin", "ghost=cpu"], "ghost"),
        (["--pin", "no-backend"], "NODE=htp|gpu|cpu"),
        (["--latency-budget-ms", "-1"], "must be > 0"),
        (["--assume", "warp=9"], "--assume 'warp=9'"),
        (["--assumptions", "missing.json"], "missing.json: file not found"),
    ],
)
def test_bad_input_exits_2(model, tmp_path, capsys, extra, message):
    assert main(["assign", str(model), "-o", str(tmp_path / "p.json"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_dynamic_input_needs_input_shape_and_the_plan_remembers_it(tmp_path, capsys, monkeypatch):
    from studio.core.assignment.partitioned_run import run_plan

    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    model = builders.conv_relu()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    path = builders.save(model, tmp_path / "dyn.onnx")
    out = tmp_path / "plan.json"
    assert main(["assign", str(path), "-o", str(out), "--no-cache"]) == 0
    text = capsys.readouterr().out
    assert "HTP needs static shapes" in text
    loose = json.loads(out.read_text())
    assert {n["backend"] for n in loose["nodes"]} == {"cpu"}  # HTP rejected the dynamic nodes
    assert main(["assign", str(path), "-o", str(out), "--input-shape", "x=1,3,16,16"]) == 0
    plan = json.loads(out.read_text())
    assert plan["input_shapes"] == {"x": [1, 3, 16, 16]}
    assert plan["summary"]["per_backend"]["htp"]["nodes"] == 2
    result = run_plan(path, plan)  # shapes come from the plan
    assert result.outputs["y"].shape == (1, 8, 16, 16)


def test_run_and_profile_execute_the_plan(model, tmp_path, capsys):
    import numpy as np

    plan = tmp_path / "plan.json"
    assert main(["assign", str(model), "-o", str(plan), "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "out.npz"
    assert main(["run", str(model), "--plan", str(plan), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "segment 1 HTP" in text and "QNNExecutionProvider" in text and "segment 2 CPU" in text
    with np.load(out) as data:
        assert data["y"].shape == (1, 32, 32, 32)
    saved = tmp_path / "profile.json"
    args = ["profile", str(model), "--plan", str(plan), "--runs", "3", "--warmup", "1"]
    assert main([*args, "--json", "--save", str(saved)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "npu-studio.partitioned-profile" and data["runs"] == 3
    assert len(data["boundaries"]) == 2 and all(b["bytes"] > 0 for b in data["boundaries"])
    assert json.loads(saved.read_text())["timings"] == data["timings"]


def test_a_segment_the_backend_refuses_exits_3(model, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    assert main(["assign", str(model), "-o", str(plan), "--json"]) == 0
    capsys.readouterr()
    data = json.loads(plan.read_text())
    for node in data["nodes"]:  # hand-edit: Erf onto HTP, which rejects it
        node["backend"] = "cpu" if node["node_id"] == "x_Q" else "htp"
    plan.write_text(json.dumps(data))
    assert main(["run", str(model), "--plan", str(plan)]) == 3
    err = capsys.readouterr().err
    assert "segment 1 (HTP" in err and "Erf" in err and "Traceback" not in err
    data["nodes"][0]["node_id"] = "not-in-this-model"
    plan.write_text(json.dumps(data))
    assert main(["run", str(model), "--plan", str(plan)]) == 2
    assert "not-in-this-model" in capsys.readouterr().err
