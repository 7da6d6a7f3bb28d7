"""Projects never lose work: atomic saves, autosave/recovery, migration, strict validation."""

from __future__ import annotations

import errno
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.core import atomic
from studio.core.errors import ConfigError, StudioError
from studio.core.project import (
    SCHEMA_VERSION,
    Constraints,
    Project,
    autosave_path,
    find_recovery,
    load_recovery,
)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(folder))
    return folder


def test_save_and_load_round_trip(tiny_model, tmp_path, data_dir):
    project = Project.new(tiny_model)
    project.update("input_shapes", {"x": [1, 3, 16, 16]})
    project.update("quant_plan", {"act_bitwidth": 16, "overrides": {"y": {"bitwidth": 8}}})
    project.update("constraints", {"power_critical": True, "pins": {"/relu1/Relu": "cpu"}})
    assert project.dirty
    path = project.save(tmp_path / "proj")
    assert path.suffix == ".npustudio" and not project.dirty

    loaded = Project.load(path)
    assert loaded.model_path == tiny_model.resolve()
    assert loaded.model_sha256 == project.model_sha256 and len(loaded.model_sha256) == 64
    assert loaded.quant_plan == project.quant_plan
    assert loaded.constraints.pins == {"/relu1/Relu": "cpu"} and loaded.constraints.power_critical
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    # the model path is stored relative to the project, so moving both together keeps working
    assert not os.path.isabs(json.loads(path.read_text())["model"]["path"])


def test_failed_save_leaves_previous_file_intact(tiny_model, tmp_path, monkeypatch, data_dir):
    project = Project.new(tiny_model)
    path = project.save(tmp_path / "p.npustudio")
    before = path.read_bytes()
    project.update("quant_plan", {"act_bitwidth": 16})

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(StudioError, match="No space left"):
        project.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert project.dirty, "a failed save must not mark the project clean"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_into_unwritable_location_names_the_file(tiny_model, tmp_path, data_dir):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(StudioError, match="not_a_folder"):
        Project.new(tiny_model).save(blocker / "p.npustudio")


def test_autosave_is_offered_back_after_a_crash(tiny_model, tmp_path, data_dir):
    project = Project.new(tiny_model)
    path = project.save(tmp_path / "p.npustudio")
    assert find_recovery(path) is None
    project.update("quant_plan", {"act_bitwidth": 16})
    recovery = project.autosave()
    os.utime(recovery, (path.stat().st_mtime + 5, path.stat().st_mtime + 5))
    assert find_recovery(path) == recovery
    restored = load_recovery(recovery, path)
    assert restored.quant_plan == {"act_bitwidth": 16}
    assert restored.dirty and restored.path == path.resolve()
    restored.save()
    assert not recovery.exists(), "saving discards the recovery file"


def test_untitled_project_autosaves_under_data_dir(tiny_model, data_dir):
    project = Project.new(tiny_model)
    target = project.autosave()
    assert target == autosave_path(project) and target.is_relative_to(data_dir)
    assert load_recovery(target).model_path == tiny_model.resolve()


def test_moved_or_changed_model_is_detected(tiny_model, tmp_path, data_dir):
    project = Project.new(tiny_model)
    assert project.check_model().status == "ok"
    moved = tmp_path / "moved.onnx"
    os.replace(tiny_model, moved)
    check = project.check_model()
    assert check.status == "missing" and "missing" in check.message
    assert project.relocate_model(moved).status == "ok" and project.model_path == moved.resolve()
    with open(moved, "ab") as handle:
        handle.write(b"\0")
    assert project.check_model().status == "changed"
    other = tmp_path / "other.onnx"
    other.write_bytes(b"different")
    assert project.relocate_model(other).status == "changed"
    assert project.model_path == moved.resolve(), "a different model is not taken silently"


def test_runs_are_stored_beside_the_project(tiny_model, tmp_path, data_dir):
    project = Project.new(tiny_model)
    project.save(tmp_path / "p.npustudio")
    project.add_run("run-1", "INT8 on HTP", {"stats": {"p50_ms": 1.5}}, backend="htp")
    project.save()
    loaded = Project.load(tmp_path / "p.npustudio")
    assert [r.label for r in loaded.runs] == ["INT8 on HTP"]
    assert loaded.load_run("run-1") == {"stats": {"p50_ms": 1.5}}


def test_runs_made_before_the_first_save_travel_with_it(tiny_model, tmp_path, data_dir):
    """A run profiled in an unsaved project, then "save" and "save as": nothing is lost."""
    project = Project.new(tiny_model)
    project.add_run("early", "before saving", {"stats": {"p50_ms": 2.0}})
    scratch = project.runs_dir()
    project.save(tmp_path / "first.npustudio")
    assert not scratch.exists(), "the unsaved project's scratch records were moved"
    assert Project.load(tmp_path / "first.npustudio").load_run("early") == {
        "stats": {"p50_ms": 2.0}
    }
    project.save(tmp_path / "copy.npustudio")
    for name in ("first", "copy"):
        assert Project.load(tmp_path / f"{name}.npustudio").load_run("early") == {
            "stats": {"p50_ms": 2.0}
        }


def test_background_run_write_lands_and_a_failed_one_leaves_the_history(
    tiny_model, tmp_path, data_dir
):
    project = Project.new(tiny_model)
    project.save(tmp_path / "p.npustudio")
    project.add_run("bg", "written on the writer thread", {"p50_ms": 3.0}, background=True)
    assert [r.id for r in project.runs] == ["bg"], "listed at once"
    assert project.load_run("bg") == {"p50_ms": 3.0}, "reading waits for the write"
    project.add_run("bad", "not JSON-safe", {"p50_ms": float("nan")}, background=True)
    write = project.run_write("bad")
    assert write is not None and write.exception() is not None
    with pytest.raises(ConfigError, match="was not saved"):
        project.load_run("bad")
    project.save()
    assert [r.id for r in Project.load(tmp_path / "p.npustudio").runs] == ["bg"]


def test_v1_project_is_migrated(tiny_model, tmp_path, data_dir):
    legacy = {
        "schema_version": 1,
        "model_path": str(tiny_model),
        "model_sha256": "ab" * 32,
        "pins": {"n": "htp"},
        "future_section": {"kept": True},
    }
    path = tmp_path / "old.npustudio"
    path.write_text(json.dumps(legacy))
    project = Project.load(path)
    assert project.constraints.pins == {"n": "htp"} and project.model_sha256 == "ab" * 32
    assert project.to_json()["future_section"] == {"kept": True}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "malformed JSON"),
        ("{not json", "malformed JSON"),
        ('{"schema_version": 2, "model": {"path": "m.onnx"}, "x": NaN}', "NaN"),
        ("[1, 2]", "expected an object, got [1, 2]"),
        ('{"schema_version": "2", "model": {"path": "m.onnx"}}', "schema_version"),
        ('{"schema_version": 99, "model": {"path": "m.onnx"}}', "newer npu-studio"),
        ('{"schema_version": 2, "model": {"path": 3}}', "model.path: expected a string, got 3"),
        (
            '{"schema_version": 2, "model": {"path": "m"}, "input_shapes": {"x": [1, -3]}}',
            "input_shapes.x[1]: must be >= 1, got -3",
        ),
        (
            '{"schema_version": 2, "model": {"path": "m"}, "constraints": {"pins": {"n": "tpu"}}}',
            "tpu",
        ),
        (
            '{"schema_version": 2, "model": {"path": "m"}, "constraints": {"latency_budget_ms": -1}}',
            "constraints.latency_budget_ms: must be > 0",
        ),
        (
            '{"schema_version": 2, "model": {"path": "m"}, "runs": [{"id": "r", "file": "../../etc/passwd"}]}',
            "runs[0].file: must stay inside the runs folder",
        ),
        (
            '{"schema_version": 2, "model": {"path": "m"}, "quant_plan": []}',
            "quant_plan: expected an object, got []",
        ),
    ],
)
def test_bad_project_files_name_the_file_and_field(tmp_path, text, needle):
    path = tmp_path / "bad.npustudio"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Project.load(path)
    assert "bad.npustudio" in str(info.value) and needle in str(info.value)


def test_writing_non_finite_numbers_is_refused_and_nothing_written(tiny_model, tmp_path, data_dir):
    project = Project.new(tiny_model)
    project.update("overlays", {"sqnr": {"n": float("nan")}})
    with pytest.raises(StudioError, match="non-finite"):
        project.save(tmp_path / "p.npustudio")
    assert not (tmp_path / "p.npustudio").exists()


def test_constraints_validation():
    assert Constraints.from_json({"latency_budget_ms": 5}).latency_budget_ms == 5.0
    with pytest.raises(ConfigError, match="power_critical"):
        Constraints.from_json({"power_critical": "yes"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
project_keys = st.sampled_from(
    ["schema_version", "model", "input_shapes", "constraints", "runs", "quant_plan", "ui", "id"]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=st.dictionaries(project_keys, json_values, max_size=8) | json_values)
def test_fuzz_project_loader_raises_only_studio_errors(doc, tmp_path):
    path = tmp_path / "fuzz.npustudio"
    path.write_text(json.dumps(doc))
    try:
        Project.load(path)
    except StudioError:
        pass


def test_rename_run_keeps_order_and_record(tiny_model, tmp_path, data_dir):
    project = Project.new(tiny_model)
    project.save(tmp_path / "p.npustudio")
    project.add_run("r1", "INT8", {"p50_ms": 1.0})
    project.add_run("r2", "A16", {"p50_ms": 2.0})
    project.save()
    project.rename_run("r1", "  INT8 baseline ")
    assert project.dirty
    assert [(r.id, r.label) for r in project.runs] == [("r1", "INT8 baseline"), ("r2", "A16")]
    project.save()
    again = Project.load(tmp_path / "p.npustudio")
    assert again.runs[0].label == "INT8 baseline"
    assert again.load_run("r1") == {"p50_ms": 1.0}
    with pytest.raises(ConfigError, match="empty"):
        again.rename_run("r1", " ")
    with pytest.raises(ConfigError, match="no run 'nope'"):
        again.rename_run("nope", "x")
