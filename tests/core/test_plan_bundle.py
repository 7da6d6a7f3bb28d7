"""Heterogeneous bundles: a plan compiled into HTP context binaries + CPU ONNX, run as planned."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from studio.core.assignment.partitioned_run import random_feeds, run_plan
from studio.core.assignment.scoring import plan_for
from studio.core.errors import BadInputError
from studio.core.hashing import file_sha256
from studio.core.workflows.plan_bundle import (
    compile_plan_bundle,
    load_chain,
    profile_bundle_chain,
    run_bundle_chain,
)
from tests import builders

pytestmark = pytest.mark.htp


@pytest.fixture(scope="module")
def chain(qdq_erf_probed, tmp_path_factory):
    path, graph, report = qdq_erf_probed
    plan = plan_for(graph, report)
    folder = tmp_path_factory.mktemp("chain")
    result = compile_plan_bundle(path, plan.to_json(), folder / "bundle")
    return path, graph, plan, folder / "bundle", result


def test_bundle_holds_one_file_per_segment_in_plan_order(chain):
    _, graph, plan, bundle, result = chain
    manifest = json.loads((bundle / "manifest.json").read_text())
    segments = manifest["segments"]
    assert [s["backend"] for s in segments] == [t.backend for t in _plan_segments(graph, plan)]
    assert {s["backend"] for s in segments} == {"htp", "cpu"}
    for seg in segments:
        assert file_sha256(bundle / seg["file"]) == seg["sha256"]
        assert manifest["files"][seg["file"]]["sha256"] == seg["sha256"]
        if seg["backend"] == "htp":
            assert seg["file"] == f"context_binaries/segment{seg['index']}_htp.bin"
            wrapper = onnx.load(str(bundle / seg["context_model"]))
            assert [n.op_type for n in wrapper.graph.node].count("EPContext") == 1
        else:
            assert seg["file"] == f"segments/segment{seg['index']}_cpu.onnx"
            onnx.checker.check_model(onnx.load(str(bundle / seg["file"])))
        assert seg["inputs"] and seg["outputs"] and all("name" in t for t in seg["inputs"])
    assert (bundle / "plan.json").is_file() and (bundle / "input_specs.json").is_file()
    assert not (bundle / "context_binaries" / "htp_context.bin").exists()
    assert [s["file"] for s in result["segments"]] == [s["file"] for s in segments]


def _plan_segments(graph, plan):
    from studio.core.assignment.partition import split_segments

    return split_segments(graph, plan.assignment)


def test_bundle_outputs_are_identical_to_the_planned_run(chain):
    path, graph, plan, bundle, _ = chain
    feeds = random_feeds(graph, seed=5)
    planned = run_plan(path, plan, feeds)
    shipped = run_bundle_chain(bundle, feeds)
    assert list(shipped.outputs) == list(planned.outputs) == ["y"]
    assert np.array_equal(shipped.outputs["y"], planned.outputs["y"])
    assert [t.backend for t in shipped.timings] == [t.backend for t in planned.timings]
    htp = next(t for t in shipped.timings if t.backend == "htp")
    assert htp.providers[0] == "QNNExecutionProvider" and htp.run_ms > 0


def test_profile_times_every_segment(chain):
    *_, bundle, _ = chain
    data = profile_bundle_chain(bundle, runs=3, warmup=1)
    assert data["runs"] == 3 and all(len(t["run_ms_all"]) == 3 for t in data["timings"])
    assert len(data["boundaries"]) == len(data["timings"]) - 1
    assert "emulated" in data["note"]


def test_tampered_bundles_are_refused_naming_the_file(chain, tmp_path):
    import shutil

    path, _, _, bundle, _ = chain
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    cpu = next(p for p in (copy / "segments").iterdir())
    cpu.write_bytes(cpu.read_bytes() + b"\0")
    with pytest.raises(BadInputError, match=f"segments/{cpu.name}"):
        load_chain(copy)

    # a plan edited (and its checksum "fixed" in the manifest) no longer matches the segments
    shutil.rmtree(copy)
    shutil.copytree(bundle, copy)
    plan = json.loads((copy / "plan.json").read_text())
    moved = next(n for n in plan["nodes"] if n["backend"] == "htp")
    moved["backend"] = "cpu"
    (copy / "plan.json").write_text(json.dumps(plan))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["plan.json"]["sha256"] = file_sha256(copy / "plan.json")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match=r"plan\.json.*no longer matches.*" + moved["node_id"]):
        load_chain(copy)


def test_a_changed_source_model_no_longer_matching_the_plan_is_refused(tmp_path, qdq_erf_probed):
    path, graph, report = qdq_erf_probed
    model = tmp_path / "m.onnx"
    model.write_bytes(path.read_bytes())
    plan = plan_for(graph, report)
    compile_plan_bundle(model, plan.to_json(), tmp_path / "b")
    builders.save(builders.conv_relu(), model)  # the user overwrote the model with another one
    with pytest.raises(BadInputError, match="plan no longer matches") as info:
        load_chain(tmp_path / "b")
    assert str(model) in str(info.value)
