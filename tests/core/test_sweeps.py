"""Sweeps: the spec and the Pareto front (no Ray), then real sweeps on a real local Ray (2 CPUs).

The Ray tests share one local Ray for the module (starting one costs ~10-20 s on a busy 2-core
host). Every point runs the real calibrate -> quantize -> SQNR -> compile (QNN HTP) chain.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import pytest

from studio.core.errors import ConfigError
from studio.core.jobs.protocol import CancelToken, job_kind
from studio.core.sweeps import SweepSpec, mark_pareto, parse_grid_arg, records_dir, run_sweep
from studio.core.sweeps import testing as sweep_testing
from tests import builders

# ---------------------------------------------------------------- the spec, without Ray


def test_spec_expands_the_grid_over_models_and_points(tmp_path):
    spec = SweepSpec(
        models=["a.onnx", "b.onnx"],
        grid={"act_bw": [8, 16], "per_channel": [True, False]},
        points=[{"method": "percentile", "percentile": 99.9}],
    )
    points = spec.expand()
    assert len(points) == 2 * (4 + 1)
    assert {(p["act_bw"], p["per_channel"]) for p in points[:4]} == {
        (8, True),
        (8, False),
        (16, True),
        (16, False),
    }
    assert points[4]["method"] == "percentile" and points[4]["act_bw"] == 8  # defaults filled
    assert points[5]["model"] == "b.onnx"


def test_spec_file_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(
        json.dumps({"schema_version": 1, "models": ["m.onnx"], "grid": {"act_bw": [8, 12]}})
    )
    with pytest.raises(ConfigError, match=r"act_bw=12") as err:
        SweepSpec.load(path)
    assert err.value.path == str(path)
    path.write_text(json.dumps({"schema_version": 1, "models": ["m.onnx"], "grid": {"bits": [8]}}))
    with pytest.raises(ConfigError, match="unknown key 'bits'"):
        SweepSpec.load(path)
    path.write_text(json.dumps({"schema_version": 9, "models": ["m.onnx"]}))
    with pytest.raises(ConfigError, match="newer"):
        SweepSpec.load(path)


def test_spec_file_paths_are_relative_to_the_file(tmp_path):
    path = tmp_path / "sub" / "sweep.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"schema_version": 1, "models": ["m.onnx"], "calib": "data.npz"}))
    spec = SweepSpec.load(path)
    assert spec.models == [str(path.parent / "m.onnx")]
    assert spec.calib == str(path.parent / "data.npz")


def test_techniques_accept_only_what_the_quantiser_implements():
    from studio.core.sweeps.spec import available_techniques

    with pytest.raises(ConfigError, match="techniques"):
        SweepSpec(models=["m.onnx"], grid={"techniques": [["no-such-technique"]]}).expand()
    for name in available_techniques():  # whatever exists is accepted
        SweepSpec(models=["m.onnx"], grid={"techniques": [[name]]}).expand()


def test_grid_flags_are_typed_like_the_quantise_flags():
    assert parse_grid_arg("act_bw=8,16") == ("act_bw", [8, 16])
    assert parse_grid_arg("per-channel=true,off") == ("per_channel", [True, False])
    assert parse_grid_arg("techniques=none,cle+adaround") == (
        "techniques",
        [[], ["cle", "adaround"]],
    )
    with pytest.raises(ConfigError, match="whole number"):
        parse_grid_arg("act_bw=eight")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_grid_arg("speed=1")


def test_pareto_is_per_device_and_uses_device_latency_only():
    def row(db, ms, device="S24", **kw):
        return {"status": "done", "sqnr_db": db, "estimated_ms": ms, "device": device, **kw}

    rows = [
        row(40.0, 1.0),  # front
        row(35.0, 1.2),  # dominated by the first
        row(45.0, 2.0),  # front: more accurate, slower
        row(30.0, 0.5),  # front: fastest
        row(50.0, 9.0, device="S23"),  # alone on its device: front
        row(60.0, None, emulated_ms=0.1),  # no device figure: never on the front
        {"status": "failed", "sqnr_db": 99.0, "estimated_ms": 0.1, "device": "S24"},
        row(41.0, 5.0, measured_ms=0.9),  # measured on hardware wins over its estimate: front
    ]
    mark_pareto(rows)
    assert [r["pareto"] for r in rows] == [False, False, True, True, True, False, False, True]


# ---------------------------------------------------------------- real sweeps on a local Ray


@pytest.fixture(scope="module")
def local_ray():
    from studio.core.sweeps.engine import Cluster

    cluster = Cluster(num_cpus=2).__enter__()
    yield cluster
    cluster.__exit__(None, None, None)


@pytest.fixture
def model(tmp_path):
    return builders.save(builders.small_cnn(), tmp_path / "small_cnn.onnx")


@pytest.fixture(autouse=True)
def _node_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_SWEEP_CACHE", str(tmp_path / "node-cache"))


@pytest.mark.htp
@pytest.mark.slow
def test_two_by_two_grid_on_local_ray(local_ray, model, tmp_path):
    from studio.core.profiling.records import ProfileRun
    from studio.core.quantize import QuantPlan

    out = tmp_path / "SWEEP.json"
    spec = SweepSpec(
        models=[str(model)],
        grid={"act_bw": [8, 16], "per_channel": [True, False]},
        calib="random:8",
        options={"profile_runs": 2},
    )
    seen: list[tuple[str, str]] = []
    doc = run_sweep(spec, out, on_row=lambda r: seen.append((r["key"], r["status"])))
    assert doc["engine"] == "ray" and doc["ray_version"]
    assert doc["cluster"]["nodes"] == 1 and doc["cluster"]["cpus"] == 2.0
    rows = doc["rows"]
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows), [
        r.get("error") for r in rows
    ]
    assert {(r["params"]["act_bw"], r["params"]["per_channel"]) for r in rows} == {
        (8, True),
        (8, False),
        (16, True),
        (16, False),
    }
    for r in rows:
        assert math.isfinite(r["sqnr_db"]) and 10 < r["sqnr_db"] < 120
        assert r["fully_on_htp"] is True  # this CNN is all HTP ops at 8 and 16 bit activations
        assert r["size_bytes"] > 0 and r["bundle_bytes"] > 0
        assert r["where"]["ip"] and r["where"]["pid"] > 0
        assert isinstance(r["pareto"], bool)
        # the records are the ones the workspaces read
        plan = QuantPlan.from_json(json.loads((out.parent / r["records"]["plan"]).read_text()))
        assert plan.activation_bitwidth == r["params"]["act_bw"]
        assert plan.per_channel == r["params"]["per_channel"]
        run = ProfileRun.load(out.parent / r["records"]["profile"])
        assert run.backend == "htp" and run.stats.count == 2
    # 16-bit activations are more accurate than 8-bit ones on the same weights
    by = {(r["params"]["act_bw"], r["params"]["per_channel"]): r["sqnr_db"] for r in rows}
    assert by[(16, True)] > by[(8, True)] and by[(16, False)] > by[(8, False)]
    # every point went queued -> running -> done, and the file on disk says the same
    for r in rows:
        assert [s for k, s in seen if k == r["key"]] == ["queued", "running", "done"]
    assert [r["status"] for r in json.loads(out.read_text())["rows"]] == ["done"] * 4
    # inputs moved once per node: only the first point on the node fetched the blobs
    fetched = sorted(r["transfer"]["blob_bytes"] for r in rows)
    assert fetched[:3] == [0, 0, 0] and fetched[3] == doc["summary"]["object_store_put_bytes"]

    # a re-run with nothing changed runs nothing; a changed axis runs only the new points
    again = run_sweep(spec, out)
    assert again["summary"]["ran"] == 0 and again["summary"]["reused"] == 4
    assert [r["sqnr_db"] for r in again["rows"]] == [r["sqnr_db"] for r in rows]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.htp
@pytest.mark.slow
def test_crash_fails_one_point_and_cancel_keeps_the_finished_ones(local_ray, model, tmp_path):
    """(8, on) runs, (8, off) aborts natively, (16, on) runs, (16, off) sleeps until cancelled.

    On 2 CPUs the crash frees its CPU at once, so both real points finish while the sleeper
    is still asleep; the sweep is cancelled when they have.
    """
    out = tmp_path / "SWEEP.json"
    pid_dir = tmp_path / "pids"
    spec = SweepSpec(
        models=[str(model)],
        grid={"act_bw": [8, 16], "per_channel": [True, False]},
        calib="random:4",
        options={"profile_runs": 0},
    )
    token = CancelToken()
    statuses: dict[str, str] = {}

    def cancel_once_the_sleeper_sleeps():
        deadline = time.monotonic() + 120
        while not list(pid_dir.glob("*.pid")) and time.monotonic() < deadline:
            time.sleep(0.1)
        token.cancel()

    def on_row(row):
        statuses[row["key"]] = row["status"]
        if row["status"] == "done" and list(statuses.values()).count("done") == 2:
            threading.Thread(target=cancel_once_the_sleeper_sleeps, daemon=True).start()

    doc = run_sweep(
        spec,
        out,
        token=token,
        on_row=on_row,
        point_job=job_kind(sweep_testing.misbehaving_point),
        point_extra={
            "crash_when": {"act_bw": 8, "per_channel": False},
            "slow_when": {"act_bw": 16, "per_channel": False},
            "pid_dir": str(pid_dir),
            "seconds": 300,
        },
    )
    by = {(r["params"]["act_bw"], r["params"]["per_channel"]): r for r in doc["rows"]}
    assert by[(8, True)]["status"] == "done" and by[(16, True)]["status"] == "done"
    assert all(math.isfinite(by[k]["sqnr_db"]) for k in ((8, True), (16, True)))
    crashed = by[(8, False)]
    assert crashed["status"] == "failed", crashed
    assert crashed["error"]["kind"] == "JobFailedError"
    assert "SIGABRT" in crashed["error"]["message"], crashed["error"]
    assert by[(16, False)]["status"] == "cancelled"
    assert doc["summary"]["cancelled"] is True
    # the file on disk holds the same: finished points kept, the failure with its error
    saved = json.loads(out.read_text())
    assert [r["status"] for r in saved["rows"]] == [r["status"] for r in doc["rows"]]
    assert saved["summary"]["counts"] == {
        "queued": 0,
        "running": 0,
        "done": 2,
        "failed": 1,
        "cancelled": 1,
    }
    # the sleeping point was killed with its Ray task, not left behind
    pids = [int(p.read_text()) for p in pid_dir.glob("*.pid")]
    assert len(pids) == 1
    deadline = time.monotonic() + 15
    while _alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pids[0])


def test_point_keys_change_with_data_parameters_and_versions():
    from studio.core.sweeps.results import point_key

    point = {"model": "m.onnx", "act_bw": 8}
    hashes = {"model": "a", "calib": "b", "eval": "c"}
    base = point_key(point, hashes, {"profile_runs": 3}, {"onnxruntime": "1"}, "job")
    assert base == point_key(
        dict(point), dict(hashes), {"profile_runs": 3}, {"onnxruntime": "1"}, "job"
    )
    assert base == point_key(
        {**point, "model": "moved.onnx"}, hashes, {"profile_runs": 3}, {"onnxruntime": "1"}, "job"
    )  # the path is not the model: its hash is
    for other in (
        point_key(
            {**point, "act_bw": 16}, hashes, {"profile_runs": 3}, {"onnxruntime": "1"}, "job"
        ),
        point_key(
            point, {**hashes, "calib": "x"}, {"profile_runs": 3}, {"onnxruntime": "1"}, "job"
        ),
        point_key(point, hashes, {"profile_runs": 0}, {"onnxruntime": "1"}, "job"),
        point_key(point, hashes, {"profile_runs": 3}, {"onnxruntime": "2"}, "job"),
    ):
        assert other != base


def test_records_dir_sits_beside_the_sweep_file(tmp_path):
    assert records_dir(tmp_path / "SWEEP.json") == tmp_path / "SWEEP.points"
    assert Path(records_dir("a/b.json")).name == "b.points"


def test_report_section_plots_device_figures_only(tmp_path):
    from studio.core.sweeps.report import pareto_svg, write_sweep_report

    def row(key, db, ms, device="Samsung Galaxy S24", **kw):
        return {
            "key": key,
            "label": key,
            "status": "done",
            "sqnr_db": db,
            "estimated_ms": ms,
            "device": device,
            "size_bytes": 1024,
            "fully_on_htp": True,
            **kw,
        }

    doc = {
        "ray_version": "x",
        "cluster": {"nodes": 1, "cpus": 2.0},
        "rows": [
            row("fast", 30.0, 0.1),
            row("slow-good", 45.0, 0.3),
            row("dominated", 29.0, 0.2),
            row("emulated-only", 50.0, None, emulated_ms=9.0),
            {"key": "bad", "label": "bad", "status": "failed", "error": {"message": "QNN refused"}},
        ],
    }
    mark_pareto(doc["rows"])
    svg = pareto_svg(doc)
    assert svg.count("<circle") == 3  # the emulator-only and the failed points are not drawn
    assert svg.count("<polyline") == 1 and "estimated" in svg
    page = write_sweep_report(doc, tmp_path / "sweep.html").read_text()
    # every finished point is listed; one without a device figure says so
    assert "QNN refused" in page and page.count("<tr>") == 1 + 4
    assert "<td>emulated-only</td><td>Samsung Galaxy S24</td><td>50.00</td><td>-</td>" in page
