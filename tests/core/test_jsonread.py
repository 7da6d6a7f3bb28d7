"""The shared typed-JSON reader: one wording for every file, naming the file and the field path."""

from __future__ import annotations

import pytest

from studio.core import jsonread
from studio.core.errors import BadInputError, ConfigError


def _plan(tmp_path, text):
    path = tmp_path / "plan.json"
    path.write_text(text)
    return jsonread.read(path)


def test_errors_name_the_file_and_the_field_path(tmp_path):
    doc = _plan(tmp_path, '{"nodes": [{"backend": "htp"}, {}, {}, {"backend": 12}]}')
    nodes = list(doc.key("nodes").elements())
    assert nodes[0].key("backend").string() == "htp"
    with pytest.raises(BadInputError) as info:
        nodes[3].key("backend").string()
    assert (
        str(info.value) == f"{tmp_path / 'plan.json'}: nodes[3].backend: expected a string, got 12"
    )
    with pytest.raises(BadInputError, match=r"plan\.json: nodes\[1\]\.backend: missing"):
        nodes[1].key("backend")
    assert nodes[2].key("backend", "cpu").string() == "cpu"


def test_types_are_strict(tmp_path):
    doc = jsonread.parse(
        '{"n": 8.0, "b": 1, "i": true, "x": 3, "s": "warp", "o": [], "f": 2}', "c.json", ConfigError
    )
    with pytest.raises(ConfigError, match="c.json: n: expected an integer, got 8.0"):
        doc.key("n").integer()
    with pytest.raises(ConfigError, match="b: expected true or false, got 1"):
        doc.key("b").boolean()
    with pytest.raises(ConfigError, match="i: expected a finite number, got true"):
        doc.key("i").number()
    with pytest.raises(ConfigError, match=r"x: 3 is outside \[4, 9\]"):
        doc.key("x").integer(low=4, high=9)
    with pytest.raises(ConfigError, match='s: "warp" is not one of burst, balanced'):
        doc.key("s").string(choices=("burst", "balanced"))
    with pytest.raises(ConfigError, match=r"o: expected an object, got \[\]"):
        doc.key("o").key("deeper")
    assert doc.key("f").number() == 2.0 and doc.key("x").integer(low=1) == 3


def test_bad_json_and_missing_files_name_the_file(tmp_path):
    with pytest.raises(BadInputError, match=r"plan\.json: malformed JSON at line 1"):
        _plan(tmp_path, '{"nodes": [')
    with pytest.raises(BadInputError, match="NaN is not allowed"):
        _plan(tmp_path, '{"x": NaN}')
    with pytest.raises(BadInputError, match="file not found"):
        jsonread.read(tmp_path / "absent.json")


def test_a_saved_profile_run_names_the_file_and_the_row(tmp_path):
    from studio.core.profiling.records import LayerRow, ProfileRun
    from studio.core.profiling.stats import latency_stats

    run = ProfileRun(
        "m.onnx",
        "",
        "cpu",
        latency_stats([1.0, 2.0]),
        [1.0, 2.0],
        layers=[LayerRow("a", "Conv", "cpu", time_us=3.0), LayerRow("b", "Relu", "cpu")],
    )
    path = run.save(tmp_path / "run.json")
    assert [r.node_id for r in ProfileRun.load(path).layers] == ["a", "b"]
    data = run.to_json()
    del data["layers"][1]["node_id"]
    with pytest.raises(BadInputError, match=r"run\.json: layers\[1\]\.node_id: missing"):
        ProfileRun.from_json(data, str(path))
    with pytest.raises(BadInputError, match=r"run\.json: schema_version: 9 is newer"):
        ProfileRun.from_json({**run.to_json(), "schema_version": 9}, str(path))
    with pytest.raises(BadInputError, match=r"profile run: backend: expected a string, got 3"):
        ProfileRun.from_json({**run.to_json(), "backend": 3})
