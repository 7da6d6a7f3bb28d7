"""`compile --plan` writes a heterogeneous bundle; `run BUNDLE` equals `run MODEL --plan` exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.cli import main
from tests import builders

pytestmark = pytest.mark.htp


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan_bundle_cli")
    mp = pytest.MonkeyPatch()
    mp.setenv("NPU_STUDIO_CACHE_DIR", str(folder / "cache"))
    model = builders.save(builders.qdq_conv_erf(), folder / "qdq.onnx")
    plan = folder / "plan.json"
    assert main(["assign", str(model), "-o", str(plan), "--pin", "/tail/Mul=cpu", "--json"]) == 0
    bundle = folder / "bundle"
    assert main(["compile", str(model), "--plan", str(plan), "-o", str(bundle)]) == 0
    yield model, plan, bundle
    mp.undo()


def test_run_bundle_is_identical_to_run_with_plan(compiled, tmp_path, capsys):
    model, plan, bundle = compiled
    capsys.readouterr()
    planned, shipped = tmp_path / "planned.npz", tmp_path / "shipped.npz"
    assert main(["run", str(model), "--plan", str(plan), "-o", str(planned)]) == 0
    assert main(["run", str(bundle), "-o", str(shipped)]) == 0
    text = capsys.readouterr().out
    assert "segment 1 HTP" in text and "QNNExecutionProvider" in text and "segment 2 CPU" in text
    with np.load(planned) as a, np.load(shipped) as b:
        assert a.files == b.files == ["y"]
        assert a["y"].shape == (1, 32, 32, 32)
        assert np.array_equal(a["y"], b["y"])  # bit for bit: same chain, same inputs


def test_profile_bundle_reports_each_segment(compiled, capsys):
    _, _, bundle = compiled
    capsys.readouterr()
    assert main(["profile", str(bundle), "--runs", "3", "--warmup", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "npu-studio.partitioned-profile" and data["bundle"] == str(bundle)
    assert [t["backend"] for t in data["timings"]] == ["cpu", "htp", "cpu"]
    assert all(len(t["run_ms_all"]) == 3 for t in data["timings"])


def test_a_modified_bundle_file_is_refused_naming_it(compiled, tmp_path, capsys):
    import shutil

    _, _, bundle = compiled
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    binary = copy / "context_binaries" / "segment1_htp.bin"
    data = bytearray(binary.read_bytes())
    data[-1] ^= 0xFF
    binary.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["run", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "context_binaries/segment1_htp.bin" in err and "Traceback" not in err
