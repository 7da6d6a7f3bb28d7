"""Every command that reads a model meets every kind of broken file the same way.

One clear line naming the file and the problem, exit code 2, no traceback, nothing written.
"""

from __future__ import annotations

import pytest

from studio.cli import main
from tests import bad_models

BROKEN = {
    "empty": (bad_models.empty, "empty"),
    "truncated": (bad_models.truncated, ""),
    "png": (bad_models.png_renamed, "PNG"),
    "checker": (bad_models.checker_failure, "checker"),
    "missing-data": (bad_models.missing_external_data, "missing"),
    "traversal": (bad_models.path_traversal, "escapes"),
    "cycle": (bad_models.cycle, "cycle"),
}
COMMANDS = {
    "inspect": lambda m, out: ["inspect", m],
    "quantize": lambda m, out: ["quantize", m, "-o", str(out / "q.onnx"), "--calib", "random:2"],
    "compile": lambda m, out: ["compile", m, "-o", str(out / "bundle")],
    "run": lambda m, out: ["run", m, "--backend", "cpu", "-o", str(out / "y.npz")],
    "profile": lambda m, out: ["profile", m, "--backend", "cpu", "--runs", "2"],
    "assign": lambda m, out: ["assign", m, "-o", str(out / "plan.json")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_model_is_a_clear_error_with_exit_2(kind, command, tmp_path, capsys):
    make, needle = BROKEN[kind]
    model = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    code = main(COMMANDS[command](str(model), out))
    err = capsys.readouterr().err
    assert code == 2, f"{command} on a {kind} model exited {code}: {err}"
    last = err.strip().splitlines()[-1]
    assert model.name in last and needle.lower() in last.lower(), last
    assert "Traceback" not in err
    assert not any(out.iterdir()), f"{command} wrote {list(out.iterdir())} for a broken model"
