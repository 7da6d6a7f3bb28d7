"""PyTorch imports made from small nn.Modules: TorchScript and torch.export, to ONNX, QDQ, HTP."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest

from studio.cli import main
from studio.core.errors import BadInputError, JobCancelledError
from studio.core.importers import sniff
from studio.core.importers.convert import import_model
from studio.core.jobs.protocol import JobContext

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def exported(torch_models, torch_python, tmp_path_factory):
    out = tmp_path_factory.mktemp("ep") / "net_ep.onnx"
    lines: list[str] = []
    stages: list[str] = []
    # every stage, unthrottled (a UI gets at most one progress update per interval)
    ctx = JobContext(
        on_log=lines.append, on_progress=lambda f, t: stages.append(t), min_interval_s=0.0
    )
    record = import_model(torch_models / "net_ep.pt2", out, python=torch_python, ctx=ctx)
    record["_log"], record["_stages"] = lines, stages
    return record, out


def test_conversion_streams_the_exporter_log_and_progress(exported):
    record, _ = exported
    assert any("[torch.onnx]" in line for line in record["_log"])  # the exporter's own words
    assert "exporting to ONNX" in record["_stages"]


def test_cancel_stops_the_exporter_and_writes_nothing(torch_models, torch_python, tmp_path):
    ctx = JobContext(min_interval_s=0.0)
    ctx.on_progress = lambda f, t: ctx.token.cancel() if "exporting" in t else None
    started = time.monotonic()
    with pytest.raises(JobCancelledError):
        import_model(torch_models / "net_ep.pt2", tmp_path / "c.onnx", python=torch_python, ctx=ctx)
    assert time.monotonic() - started < 120
    assert list(tmp_path.iterdir()) == []


def _quantise_and_run_on_htp(model, tmp_path, capsys):
    qdq = tmp_path / "q.onnx"
    assert main(["quantize", str(model), "-o", str(qdq), "--calib", "random:2", "--json"]) == 0
    capsys.readouterr()
    rc = main(["run", str(qdq), "--backend", "htp", "-o", str(tmp_path / "o.npz"), "--json"])
    text = capsys.readouterr()
    assert rc == 0, text.err  # refused when any node would fall back to the CPU EP
    with np.load(tmp_path / "o.npz") as got:
        return {k: got[k] for k in got.files}


def test_exported_program_converts_with_module_names(exported, tmp_path, capsys):
    record, out = exported
    assert record["check"]["agrees"], record["check"]["summary"]
    assert record["check"]["min_sqnr_db"] >= 40
    assert record["settings"]["opset"] == 18
    model = onnx.load(out)
    assert [i.name for i in model.graph.input] == ["image"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 16, 16]  # static, from the program's example input
    names = {n.name for n in model.graph.node}
    assert {"conv1", "fc"} <= names, names
    assert any(n.startswith("layer2.0.") for n in names), names  # layer2.0.bn1 / layer2.0.conv1
    got = _quantise_and_run_on_htp(out, tmp_path, capsys)
    assert next(iter(got.values())).shape == (1, 4)


def test_torchscript_needs_a_shape_then_converts(torch_models, torch_python, tmp_path, capsys):
    src = torch_models / "net_ts.pt"
    rc = main(["import", str(src), "-o", str(tmp_path / "ts.onnx"), "--python", torch_python])
    err = capsys.readouterr().err
    assert rc == 2 and "--input-shape image=" in err
    assert not (tmp_path / "ts.onnx").exists()
    record = import_model(
        src, tmp_path / "ts.onnx", python=torch_python, input_shapes={"image": [1, 3, 16, 16]}
    )
    assert record["check"]["agrees"], record["check"]["summary"]
    assert record["settings"]["exporter"] == "TorchScript" and record["settings"]["opset"] == 17
    model = onnx.load(tmp_path / "ts.onnx")
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert any(n.name.startswith("layer2.0.conv1") for n in model.graph.node)
    _quantise_and_run_on_htp(tmp_path / "ts.onnx", tmp_path, capsys)


def test_dynamic_program_needs_input_shape(torch_models, torch_python, tmp_path):
    src = torch_models / "net_dynamic.pt2"
    with pytest.raises(BadInputError, match=r"--input-shape image=2,3,16,16"):
        import_model(src, tmp_path / "d.onnx", python=torch_python)
    assert not (tmp_path / "d.onnx").exists()
    record = import_model(
        src, tmp_path / "d.onnx", python=torch_python, input_shapes={"image": [1, 3, 16, 16]}
    )
    assert record["check"]["agrees"] and record["inputs"] == [
        {"name": "image", "shape": [1, 3, 16, 16]}
    ]


def test_real_torch_save_checkpoints_are_refused(torch_models, tmp_path):
    with pytest.raises(sniff.PickleCheckpointError, match="Net") as info:
        import_model(torch_models / "pickled.pt", tmp_path / "p.onnx")
    assert "torch.jit.save" in str(info.value)
    with pytest.raises(sniff.PickleCheckpointError, match="state_dict"):
        import_model(torch_models / "state_dict.pt", tmp_path / "s.onnx")
    assert list(tmp_path.iterdir()) == []
