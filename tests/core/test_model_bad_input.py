"""Every kind of broken model file becomes one ModelLoadError that names the file and the problem."""

from __future__ import annotations

import pytest

from studio.core.errors import ModelLoadError
from studio.core.model.graph import ModelGraph
from tests import bad_models


@pytest.mark.parametrize("case", sorted(bad_models.CASES))
def test_bad_model_is_a_clear_error(tmp_path, case):
    make, expect = bad_models.CASES[case]
    path = make(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        ModelGraph.load(path)
    message = str(info.value)
    assert str(path) in message
    assert expect.lower() in message.lower()
    assert "Traceback" not in message


def test_path_traversal_reads_nothing_outside(tmp_path):
    path = bad_models.path_traversal(tmp_path)
    with pytest.raises(ModelLoadError, match="escapes the model's folder"):
        ModelGraph.load(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        ModelGraph.load(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="folder"):
        ModelGraph.load(tmp_path)
