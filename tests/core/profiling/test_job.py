"""The profile job: set-up times, loop, per-layer table mapped to ONNX nodes, record round trip."""

from __future__ import annotations

import threading

import pytest

from studio.core.errors import BackendUnavailableError, BadInputError, JobCancelledError
from studio.core.jobs.client import run_in_worker
from studio.core.jobs.protocol import JobContext, job_kind, run_inline
from studio.core.model.graph import ModelGraph
from studio.core.profiling.job import profile_model
from studio.core.profiling.mapping import BackendOp, build_layer_rows
from studio.core.profiling.records import ProfileRun


def _rows(record: ProfileRun) -> dict[str, object]:
    return {r.node_id: r for r in record.layers}


def test_cpu_profile_inline(prof_models, tmp_path):
    out = tmp_path / "run.json"
    events = []
    ctx = JobContext(on_progress=lambda f, t: events.append((f, t)), min_interval_s=0.0)
    data = run_inline(
        profile_model,
        {
            "model": str(prof_models["float"]),
            "backend": "cpu",
            "runs": 30,
            "warmup": 2,
            "out": str(out),
        },
        ctx,
    )
    rec = ProfileRun.from_json(data)
    assert rec.stats.count == 30 and len(rec.latencies_ms) == 30
    assert rec.stats.min_ms <= rec.stats.p50_ms <= rec.stats.p99_ms <= rec.stats.max_ms
    assert rec.setup["session_create_s"] > 0 and rec.setup["first_run_ms"] > 0
    assert rec.resources["rss_max_mb"] > 0 and rec.resources["cpu_percent"] >= 0
    rows = _rows(rec)
    # Every compute node is accounted for: measured, or fused into a measured row.
    assert {"/stem/Conv", "/block/conv/Conv", "/head/Gemm"} <= set(rows)
    covered = set(rows) | {f for r in rec.layers for f in r.fused}
    assert {n.id for n in ModelGraph.load(prof_models["float"]).nodes} <= covered
    assert "/stem/Relu" in rows["/stem/Conv"].fused  # ORT's NCHWc Conv+Relu fusion
    assert rows["/block/conv/Conv"].macs == 8 * 8 * 9 * 32 * 32
    shares = [r.share for r in rec.all_rows if r.share is not None]
    assert sum(shares) == pytest.approx(1.0)
    assert any(r.inserted and r.op_type == "ReorderOutput" for r in rec.extra)
    assert events and events[-1][0] == 1.0
    assert ProfileRun.load(out).to_json() == rec.to_json()


def test_unnamed_nodes_map_to_synthetic_ids(prof_models):
    rec = ProfileRun.from_json(
        run_inline(
            profile_model, {"model": str(prof_models["unnamed"]), "backend": "cpu", "runs": 5}
        )
    )
    assert {"Conv_0", "Conv_2", "Gemm_7"} <= set(_rows(rec))


def test_sustained_mode_keeps_a_timeline(prof_models):
    rec = ProfileRun.from_json(
        run_inline(
            profile_model,
            {
                "model": str(prof_models["float"]),
                "backend": "cpu",
                "runs": 0,
                "duration_s": 0.6,
                "timeline_bin_s": 0.2,
                "layers": False,
                "max_saved_latencies": 50,
            },
        )
    )
    assert rec.stats.wall_s >= 0.6
    assert rec.stats.count > 50 and len(rec.latencies_ms) <= 50 and rec.latency_stride > 1
    assert len(rec.latency_offsets_s) == len(rec.latencies_ms)
    assert rec.latency_offsets_s == sorted(rec.latency_offsets_s)
    assert 0.4 < rec.latency_offsets_s[-1] <= rec.stats.wall_s
    assert len(rec.timeline) >= 3
    assert sum(b["count"] for b in rec.timeline) == rec.stats.count


def test_cancel_stops_the_loop(prof_models):
    ctx = JobContext()
    threading.Timer(0.3, ctx.token.cancel).start()
    with pytest.raises(JobCancelledError):
        run_inline(
            profile_model,
            {"model": str(prof_models["float"]), "backend": "cpu", "runs": 0, "duration_s": 30},
            ctx,
        )


def test_bad_requests(prof_models):
    with pytest.raises(BadInputError, match="model"):
        run_inline(profile_model, {})
    with pytest.raises(BadInputError, match="runs"):
        run_inline(
            profile_model, {"model": str(prof_models["float"]), "backend": "cpu", "runs": "x"}
        )


def test_gpu_is_reported_unavailable(prof_models):
    # No Adreno GPU here: QNN GPU fails to initialise and ORT would silently run on CPU.
    with pytest.raises(BackendUnavailableError, match="GPU"):
        run_inline(profile_model, {"model": str(prof_models["float"]), "backend": "gpu"})


def test_runs_in_the_worker_process(prof_models):
    data = run_in_worker(
        job_kind(profile_model),
        {"model": str(prof_models["float"]), "backend": "cpu", "runs": 10, "warmup": 1},
        timeout_s=120,
    )
    rec = ProfileRun.from_json(data)
    assert rec.stats.count == 10 and rec.layers


def test_live_latencies_stream_through_the_worker_while_measuring(prof_models):
    """``data`` events carry the runs measured so far: contiguous, small, the record's values."""
    chunks: list[dict] = []
    stages: list[str] = []
    ctx = JobContext()
    ctx.on_data = lambda payload: (chunks.append(payload), stages.append(ctx.stage))
    data = run_in_worker(
        job_kind(profile_model),
        {
            "model": str(prof_models["float"]),
            "backend": "cpu",
            "runs": 0,
            "duration_s": 1.0,
            "warmup": 1,
            "layers": False,
            "max_saved_latencies": 10**7,
        },
        ctx,
        timeout_s=120,
    )
    rec = ProfileRun.from_json(data)
    assert len(chunks) >= 2 and set(stages) == {"measure"}
    assert chunks[0]["start"] == 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after["start"] == before["count"]  # nothing sent twice, nothing skipped
    for c in chunks:
        assert c["kind"] == "latencies" and 0 < len(c["latencies_ms"]) <= 256
        assert len(c["offsets_s"]) == len(c["latencies_ms"])
        expected = rec.latencies_ms[c["start"] : c["count"] : c["stride"]]
        assert c["latencies_ms"] == pytest.approx(expected)
    assert chunks[-1]["count"] < rec.stats.count  # sent while the loop was still running


def test_mapping_of_qnn_names(prof_models):
    graph = ModelGraph.load(prof_models["unnamed"])
    ops = [
        BackendOp("Input", 100, "CYCLES", "htp"),
        BackendOp("Transpose", 400, "CYCLES", "htp"),
        BackendOp("_token_2", 0, "CYCLES", "htp", "Conv2d", ["/stem/Conv_output_0"]),
        BackendOp("Relu1", 1000, "CYCLES", "htp"),
        BackendOp("_token_7", 2500, "CYCLES", "htp", "Conv2d", ["/block/conv/Conv_output_0"]),
        BackendOp("Gemm7", 0, "CYCLES", "htp"),
    ]
    layers, extra, unmapped = build_layer_rows(graph, ops)
    by_id = {r.node_id: r for r in layers}
    assert by_id["Conv_2"].cycles == 2500 and "Gemm_7" in by_id
    # "_token_2: 0 cycles" then "Relu1: 1000": the fused group's cycles belong to the Conv.
    assert by_id["Conv_0"].cycles == 1000 and by_id["Conv_0"].fused == ["Relu_1"]
    assert "Relu_1" not in by_id
    assert by_id["Conv_2"].macs >= 8 * 8 * 9 * 32 * 32
    assert by_id["Conv_2"].cycles_per_mac == pytest.approx(2500 / by_id["Conv_2"].macs)
    assert {r.node_id: r.note for r in extra} == {
        "Input": "graph I/O op inserted by backend",
        "Transpose": "layout conversion inserted by backend",
    }
    assert sum(r.share for r in layers + extra) == pytest.approx(1.0)
    assert by_id["Conv_2"].share == pytest.approx(2500 / 4000)
    # Add_3 and Relu_4 were not reported: attributed to the Conv before them, marked inferred.
    assert by_id["Conv_2"].inferred == ["Add_3", "Relu_4"]
    assert "GlobalAveragePool_5" in unmapped and "Flatten_6" in unmapped


@pytest.mark.htp
def test_htp_profile_of_a_qdq_model(prof_models, tmp_path):
    rec = ProfileRun.from_json(
        run_inline(
            profile_model,
            {
                "model": str(prof_models["qdq"]),
                "backend": "htp",
                "runs": 10,
                "warmup": 2,
                "layer_runs": 2,
                "artifacts_dir": str(tmp_path / "art"),
            },
        )
    )
    assert rec.providers[0] == "QNNExecutionProvider"
    rows = _rows(rec)
    for node in ("/stem/Conv", "/block/conv/Conv", "/block/Add", "/head/Gemm"):
        assert rows[node].backend == "htp" and rows[node].cycles is not None
    assert rows["/block/conv/Conv"].cycles > rows["/head/Gemm"].cycles
    assert rows["/block/conv/Conv"].cycles_per_mac > 0
    assert any(r.op_type == "Transpose" and r.inserted for r in rec.extra)
    cyc = [r.cycles for r in rec.all_rows if r.cycles is not None]
    # Per-op cycles add up to the accelerator's own total. Both are lowest readings (a busy host
    # only adds simulated cycles), so the sum of per-op minima sits at or just under the lowest
    # total; the median total moves with host load and is no yardstick.
    accel = rec.backend_stats["accelerator_cycles"]
    assert sum(cyc) <= accel["max"] * 1.05
    assert sum(cyc) == pytest.approx(accel["min"], rel=0.35)
    assert any("simulated" in n for n in rec.notes) or rec.host["machine"] != "x86_64"
    assert any("separate" in n for n in rec.notes)
    assert (tmp_path / "art" / "qnn_profile.csv").exists()
    assert rec.setup["qnn_register_s"] >= 0 and rec.backend_stats["qnn_finalize_us"] > 0


def test_ort_fusions_map_back_to_the_nodes_they_replaced(tmp_path):
    from studio.core.model.synthetic import transformer_like
    from tests import builders

    path = builders.save(transformer_like(150), tmp_path / "t.onnx")
    rec = ProfileRun.from_json(
        run_inline(
            profile_model, {"model": str(path), "backend": "cpu", "runs": 3, "layer_runs": 1}
        )
    )
    graph = ModelGraph.load(path)
    # ORT fuses each LayerNorm subgraph into one SkipLayerNormalization kernel (a new name):
    # it maps to the LayerNorm's nodes, not to an "inserted" row.
    ln = [r for r in rec.layers if any(o.startswith("SkipLayerNorm") for o in r.backend_ops)]
    assert ln and all("LayerNorm" in r.node_id for r in ln)
    assert all(any("LayerNorm" in f for f in r.fused) for r in ln)
    fused_mm = [r for r in rec.layers if any("MatMulAddFusion" in o for o in r.backend_ops)]
    assert fused_mm and all(graph.node_by_id[r.node_id].op_type == "MatMul" for r in fused_mm)
    assert not [
        r for r in rec.extra if r.op_type in ("SkipLayerNormalization", "Gemm", "FusedMatMul")
    ]
    # Every id in the table is a real node of the model.
    assert all(r.node_id in graph.node_by_id for r in rec.layers)
    assert all(f in graph.node_by_id for r in rec.layers for f in r.fused)


def test_nchwc_sum_fusion_is_attributed_from_the_reorder_after_it():
    from pathlib import Path

    demo = Path(__file__).resolve().parents[3] / "resources/models/demo_cnn.onnx"
    rec = ProfileRun.from_json(
        run_inline(
            profile_model, {"model": str(demo), "backend": "cpu", "runs": 3, "layer_runs": 1}
        )
    )
    rows = _rows(rec)
    # ORT's NCHWc Conv fuses BN, the residual Add and the Relu; its ReorderOutput writes the Relu's
    # tensor, which is how we know the Add belongs to conv2 and not to the branch it adds.
    assert {"/res/Add", "/res/relu_out/Relu"} <= set(rows["/res/conv2/Conv"].fused)
    assert "/res/Add" not in rows["/dsconv/pw/Conv"].fused
    assert not rows["/res/conv2/Conv"].inferred  # known from ORT's graph, not inferred
    assert rec.unmapped_nodes == []


@pytest.mark.htp
def test_fp16_fused_conv_relu_cycles_go_to_the_conv(tiny_model):
    # A float model on HTP (fp16): QNN reports the fused Conv+Relu as "Conv_token: 0 cycles" and
    # the whole group's cycles on the Relu. The table gives them to the Conv that does the work.
    rec = ProfileRun.from_json(
        run_inline(
            profile_model,
            {"model": str(tiny_model), "backend": "htp", "runs": 2, "warmup": 1, "layer_runs": 2},
        )
    )
    rows = _rows(rec)
    assert rec.options["provider_options"].get("enable_htp_fp16_precision") == "1"
    assert rows["/conv1/Conv"].cycles > 0 and "/relu1/Relu" in rows["/conv1/Conv"].fused
    assert "/relu1/Relu" not in rows
    assert len(rows["/conv1/Conv"].backend_ops) == 2


@pytest.mark.htp
def test_dynamic_batch_on_htp_needs_and_uses_input_shapes(tmp_path):
    from tests import builders

    model = builders.conv_relu()
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    path = builders.save(model, tmp_path / "dyn.onnx")
    req = {"model": str(path), "backend": "htp", "runs": 2, "warmup": 1, "layer_runs": 1}
    with pytest.raises(BadInputError, match="input-shape x="):
        run_inline(profile_model, req)
    rec = ProfileRun.from_json(
        run_inline(profile_model, dict(req, input_shapes={"x": [1, 3, 16, 16]}))
    )
    assert any("fixed in a copy" in n for n in rec.notes)
    assert rec.setup["qnn_partitions_run"] >= 1 and "/conv1/Conv" in _rows(rec)


@pytest.mark.htp
def test_unnamed_model_on_htp_maps_through_the_graph_structure(prof_models):
    # No node names: QNN calls the Convs "_token_2"/"_token_7" and renames their tensors too.
    # They are matched through their matched neighbours (Relu1 -> Relu_1, Add3 -> Add_3).
    rec = ProfileRun.from_json(
        run_inline(
            profile_model,
            {"model": str(prof_models["unnamed"]), "backend": "htp", "runs": 2, "layer_runs": 1},
        )
    )
    rows = _rows(rec)
    assert {"Conv_0", "Conv_2", "GlobalAveragePool_5", "Gemm_7"} <= set(rows)
    assert "_token_7" in rows["Conv_2"].backend_ops and rows["Conv_2"].cycles > 0
    assert rec.unmapped_nodes == []
    assert not [r for r in rec.extra if r.node_id.startswith("_token")]
