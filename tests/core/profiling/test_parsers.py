"""QNN profiler CSV, ORT profile JSON and qnn-profile-viewer text parsers."""

from __future__ import annotations

import json

import pytest

from studio.core.engine.sessions import make_session, random_inputs
from studio.core.errors import BadInputError
from studio.core.profiling.readers.ort_profile import parse_ort_profile, parse_ort_profile_events
from studio.core.profiling.readers.qnn_csv import (
    parse_qnn_csv,
    parse_qnn_csv_text,
    split_op_identifier,
)
from studio.core.profiling.readers.viewer_text import parse_viewer_text

HEADER = "Msg Timestamp,Message,Time,Unit of Measurement,Timing Source,Event Level,Event Identifier"


def _block(conv_cycles: int, accel: int) -> list[str]:
    return [
        f"0,BACKEND,{accel},CYCLES,BACKEND,ROOT,Accelerator (execute) time (cycles)",
        "0,NODE,500,CYCLES,BACKEND,SUB-EVENT,Input OpId_2 (cycles)",
        # An op name with commas: the CSV does not escape them.
        f"0,NODE,{conv_cycles},CYCLES,BACKEND,SUB-EVENT,/blocks.0/Conv,fused,a=1:OpId_24 (cycles)",
        "0,NODE,0,CYCLES,BACKEND,SUB-EVENT,Gemm13:OpId_62 (cycles)",
        "0,BACKEND,900,US,BACKEND,ROOT,Accelerator (execute) time",
        "0,EXECUTE,950,US,BACKEND,ROOT,QNN (execute) time",
    ]


def test_csv_blocks_commas_and_incomplete_tail():
    lines = [
        HEADER,
        "0,FINALIZE,12243,US,BACKEND,ROOT,QNN (finalize) time",
        "0,UNKNOWN,235,US,BACKEND,SUB-EVENT,Graph Preparation Initializing",
        *_block(1000, 1500),
        *_block(3000, 3500),
        "0,NODE,7,CYCLES,BACKEND,SUB-EVENT,Input OpId_2 (cycles)",  # run cut short
    ]
    prof = parse_qnn_csv_text("\n".join(lines))
    assert len(prof.blocks) == 2
    assert prof.setup_us("QNN (finalize) time") == 12243
    assert len(prof.setup) == 2
    ops = prof.blocks[1].ops
    assert [o.name for o in ops] == ["Input", "/blocks.0/Conv,fused,a=1", "Gemm13"]
    assert ops[1].value == 3000 and ops[1].op_id == 24 and ops[1].unit == "CYCLES"
    assert prof.blocks[1].accelerator_cycles == 3500
    assert prof.blocks[0].accelerator_us == 900 and prof.blocks[0].execute_us == 950
    assert any("dropped" in n for n in prof.notes)


def test_csv_rejects_non_profile(tmp_path):
    with pytest.raises(BadInputError, match="not a QNN profiler CSV"):
        parse_qnn_csv_text("a,b,c\n1,2,3")
    with pytest.raises(BadInputError, match="empty"):
        parse_qnn_csv_text("")
    with pytest.raises(BadInputError):
        parse_qnn_csv(tmp_path / "missing.csv")


def test_split_op_identifier():
    assert split_op_identifier("/stem/Conv_token_1:OpId_24 (cycles)") == (
        "/stem/Conv_token_1",
        24,
        "cycles",
    )
    assert split_op_identifier("Output OpId_3 (cycles)") == ("Output", 3, "cycles")
    assert split_op_identifier("Accelerator (execute) time (cycles)") == (
        "Accelerator (execute) time",
        None,
        "cycles",
    )


@pytest.mark.htp
def test_csv_from_a_real_htp_session(prof_models, tmp_path):
    csv = tmp_path / "prof.csv"
    sess, _ = make_session(
        prof_models["qdq"],
        "htp",
        provider_options={"profiling_level": "detailed", "profiling_file_path": str(csv)},
    )
    feeds = random_inputs(sess)
    for _ in range(3):
        sess.run(None, feeds)
    del sess
    prof = parse_qnn_csv(csv)
    assert len(prof.blocks) == 3
    for block in prof.blocks:
        names = [o.name for o in block.ops]
        assert "/block/conv/Conv_token_7" in names or any("/block/conv/Conv" in n for n in names)
        # Per-op cycles add up to the accelerator's total.
        assert sum(o.value for o in block.ops) == pytest.approx(block.accelerator_cycles)
    assert prof.setup_us("QNN (finalize) time") > 0


def test_ort_profile_groups_runs(prof_models, tmp_path):
    sess, _ = make_session(
        prof_models["float"], "cpu", enable_profiling=True, profile_prefix=str(tmp_path / "p")
    )
    feeds = random_inputs(sess)
    for _ in range(3):
        sess.run(None, feeds)
    prof = parse_ort_profile(sess.end_profiling())
    assert len(prof.runs) == 3
    for run in prof.runs:
        names = {n.name for n in run.nodes}
        ops = {n.op_type for n in run.nodes}
        # where ORT rewrites Conv/pool into NCHWc kernels (AVX2 hosts) it names them after their
        # outputs ('/pool/GAP_output_0_nchwc'): the op types stay, the Gemm keeps its name
        assert "/head/Gemm" in names and {"Conv", "GlobalAveragePool", "Gemm"} <= ops
        assert all(n.provider == "CPUExecutionProvider" for n in run.nodes)
        assert sum(n.dur_us for n in run.nodes) <= run.dur_us
    assert prof.setup_us["session_initialization"] > 0


def test_ort_profile_rejects_non_trace(tmp_path):
    with pytest.raises(BadInputError):
        parse_ort_profile_events({"not": "a list"})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(BadInputError):
        parse_ort_profile(bad)
    assert parse_ort_profile_events(json.loads("[]")).runs == []


# Shaped after published qnn-profile-viewer output (sections underlined with dashes, graphs,
# "Backend (...)" metrics); the per-op lines wrap the CSV's Event Identifier the same way.
VIEWER_SAMPLE = """\
Input Log File Location: output/qnn-profiling-data_0.log
Log File Created: Thu Mar 14 10:22:31 2024
Time Scale: 1e-06
Epoch Timestamp: 1710411751285327 Steady Clock Timestamp: 1589372713962
Generated using:
qnn-profile-viewer v2.20.0.240223141202_82758
qnn-net-run        v2.20.0.240223141202_82758
Backend            v2.20.0.240223141202_82758

Qnn Init/Prepare/Finalize/De-Init/Execute/Lib-Load Statistics:
------------------------------------------------------------
Init Stats:
-----------
    NetRun: 331158 us

Compose Graphs Stats:
--------------
    NetRun: 74748 us

Finalize Stats:
---------------
Graph 0 (model):
    NetRun: 256372 us
    Backend (RPC (finalize) time): 4922 us
    Backend (QNN accelerator (finalize) time): 4504 us
    Backend (Accelerator (finalize) time): 4421 us
    Backend (QNN (finalize) time): 256364 us

De-Init Stats:
--------------
    NetRun: 15810 us
    Backend (QNN (deinit) time): 15801 us

Execute Stats (Average):
------------------------
Total Inference Time:
---------------------
Graph 0 (model):
    NetRun: 2952 us
    Backend (Number of HVX threads used): 4 count
    Backend (RPC (execute) time): 2920 us
    Backend (QNN accelerator (execute) time): 2600 us
    Backend (Accelerator (execute) time): 2492 us
    Backend (Accelerator (execute) time (cycles)): 3415149 cycles
    Backend (Input OpId_2 (cycles)): 3102 cycles
    Backend (/stem/Conv_token_1:OpId_24 (cycles)): 1410140 cycles
    Backend (/head/Gemm:OpId_47 (cycles)): 6639 cycles
    Backend (QNN (execute) time): 2949 us

Execute Stats (Overall):
------------------------
    NetRun IPS: 214.8888 inf/sec
"""


def test_viewer_text():
    rep = parse_viewer_text(VIEWER_SAMPLE)
    assert rep.execute_us == 2949
    assert rep.metric("Finalize Stats", "QNN (finalize) time", graph="model") == 256364
    assert rep.metric("Init Stats", "NetRun") == 331158
    assert rep.metric("Execute Stats (Overall)", "NetRun IPS") == pytest.approx(214.8888)
    assert rep.metric("Execute Stats (Average)", "Number of HVX threads used") == 4
    ops = rep.ops()
    assert [(o.name, o.value) for o in ops] == [
        ("Input", 3102),
        ("/stem/Conv_token_1", 1410140),
        ("/head/Gemm", 6639),
    ]
    with pytest.raises(BadInputError):
        parse_viewer_text("hello\nworld\n")


def test_viewer_ops_map_to_onnx_nodes(prof_models):
    from studio.core.model.graph import ModelGraph
    from studio.core.profiling.readers.viewer_text import viewer_layer_rows

    layers, extra, _ = viewer_layer_rows(
        parse_viewer_text(VIEWER_SAMPLE), ModelGraph.load(prof_models["qdq"])
    )
    by_id = {r.node_id: r for r in layers}
    assert by_id["/stem/Conv"].cycles == 1410140 and by_id["/head/Gemm"].cycles == 6639
    assert [r.node_id for r in extra] == ["Input"] and extra[0].inserted
