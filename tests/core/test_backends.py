"""Backend registry, availability probe, backend_config.json and the CPU-fallback report."""

from __future__ import annotations

import json

import pytest

from studio.core.engine import registry as backends
from studio.core.engine.config import BackendConfig, is_quantized_model
from studio.core.engine.offload import OffloadReport, offload_report, parse_rejections
from studio.core.engine.registry import REGISTRY, BackendStatus, probe_backends
from studio.core.errors import BadInputError, ConfigError
from tests import builders


@pytest.fixture(scope="module")
def qdq_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qdq")
    cnn = builders.save(builders.small_cnn(), folder / "cnn.onnx")
    erf = builders.save(builders.small_cnn_erf_head(), folder / "cnn_erf.onnx")
    return {
        "cnn": builders.quantize_for_qnn(cnn, folder / "cnn_qdq.onnx"),
        "erf": builders.quantize_for_qnn(erf, folder / "cnn_erf_qdq.onnx"),
        "float": cnn,
    }


# --- probe -------------------------------------------------------------------------------------


@pytest.mark.htp
def test_probe_in_worker_reports_real_availability_and_reasons():
    statuses = {s.name: s for s in probe_backends(refresh=True)}
    assert set(statuses) == set(REGISTRY)
    assert statuses["cpu"].available
    htp = statuses["htp"]
    assert htp.available, htp.reason
    assert htp.library_present and htp.library_path.endswith("libQnnHtp.so")
    assert htp.versions["onnxruntime_qnn"] and htp.versions["qnn_sdk"]
    if backends.is_x86_host():
        assert htp.simulated and "simulation" in htp.note
        # No Adreno GPU on an x86 host: the reason is QNN's own error, not the generic CPU one.
        gpu = statuses["gpu"]
        assert not gpu.available
        assert "QNN" in gpu.reason and "fallback to CPU EP" not in gpu.reason
    qnn_cpu = statuses["qnn-cpu"]
    if not qnn_cpu.library_present:
        assert not qnn_cpu.available and "libQnnCpu.so" in qnn_cpu.reason
    # Cached per versions: the second call does not start a worker.
    assert probe_backends() == list(statuses.values())


def test_status_json_round_trip():
    status = BackendStatus("htp", "QNN HTP", True, versions={"onnxruntime": "1"}, simulated=True)
    data = json.loads(json.dumps(status.to_json()))
    assert data["schema_version"] == 1
    assert BackendStatus.from_json(data) == status


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(BadInputError, match="htp, gpu, cpu"):
        backends.get_spec("npu")


# --- backend_config.json ----------------------------------------------------------------------


def _write(tmp_path, data) -> str:
    path = tmp_path / "backend_config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_config_maps_onto_qnn_provider_options(tmp_path):
    path = _write(
        tmp_path,
        {
            "schema_version": 1,
            "htp_config": {
                "performance_mode": "burst",
                "precision_mode": "fp16",
                "vtcm_mb": 8,
                "soc_model": 57,
                "htp_arch": 75,
                "graph_finalization_mode": 3,
                "offload_graph_io_quantization": False,
                "context_priority": "high",
            },
            "cpu_config": {"num_threads": 2, "graph_optimization_level": "basic"},
        },
    )
    config = BackendConfig.load(path)
    htp = config.session_args("htp")
    assert htp.provider_options == {
        "htp_performance_mode": "burst",
        "vtcm_mb": "8",
        "soc_model": "57",
        "htp_arch": "75",
        "htp_graph_finalization_optimization_mode": "3",
        "offload_graph_io_quantization": "0",
        "qnn_context_priority": "high",
        "enable_htp_fp16_precision": "1",
    }
    assert any("cpu_config" in w for w in htp.warnings)  # does not apply to htp: said so
    cpu = config.session_args("cpu")
    assert cpu.intra_op_num_threads == 2 and cpu.graph_optimization_level == "basic"
    # round trip
    again = BackendConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again.htp_config == config.htp_config and again.cpu_config == config.cpu_config


def test_auto_precision_uses_fp16_for_float_models_and_says_which_soc(tmp_path):
    args = BackendConfig().session_args("htp", quantized=False)
    assert args.provider_options["enable_htp_fp16_precision"] == "1"
    # the target device's soc_model (the default target here: Samsung Galaxy S24, v75)
    assert (args.provider_options["soc_model"], args.provider_options["htp_arch"]) == ("57", "75")
    assert (
        "enable_htp_fp16_precision"
        not in BackendConfig().session_args("htp", quantized=True).provider_options
    )


def test_unknown_keys_are_reported_not_dropped_silently(tmp_path):
    path = _write(
        tmp_path,
        {
            "htp_config": {"performance_mode": "burst", "turbo": True},
            "npu_config": {},
            "cpu_config": {"session_options": {"session.intra_op.allow_spinning": "0"}},
        },
    )
    config = BackendConfig.load(path)
    text = "\n".join(config.warnings)
    assert "htp_config.turbo: unknown key" in text
    assert "unknown section 'npu_config'" in text
    assert "passed through unchecked: session.intra_op.allow_spinning" in text
    assert path in text
    assert config.session_args("cpu").session_config == {"session.intra_op.allow_spinning": "0"}


@pytest.mark.parametrize(
    "data, field",
    [
        ('{"htp_config": {"vtcm_mb": "8"}}', 'htp_config.vtcm_mb: expected an integer, got "8"'),
        ('{"htp_config": {"vtcm_mb": 8.0}}', "htp_config.vtcm_mb: expected an integer, got 8.0"),
        (
            '{"htp_config": {"offload_graph_io_quantization": 1}}',
            "offload_graph_io_quantization: expected true or false, got 1",
        ),
        ('{"htp_config": {"performance_mode": "warp"}}', "performance_mode = 'warp' is not one of"),
        ('{"htp_config": {"graph_finalization_mode": 7}}', "outside [0, 3]"),
        ('{"htp_config": {"htp_arch": 70}}', "htp_arch = 70 is not one of"),
        ('{"cpu_config": {"num_threads": NaN}}', "NaN is not allowed"),
        ('{"cpu_config": {"num_threads": 4', "malformed JSON at line 1"),
        ('{"htp_config": []}', "htp_config: expected an object, got []"),
        ("[1, 2]", "expected an object, got [1, 2]"),
        ('{"schema_version": "1"}', 'schema_version: expected an integer, got "1"'),
        ('{"schema_version": 0}', "schema_version: must be >= 1, got 0"),
    ],
)
def test_bad_config_is_a_config_error_naming_file_and_field(tmp_path, data, field):
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        BackendConfig.load(path)
    assert field in str(info.value)
    assert path in str(info.value)


def test_nan_given_in_memory_is_refused():
    with pytest.raises(ConfigError, match="htp_config.vtcm_mb is nan"):
        BackendConfig.from_json({"htp_config": {"vtcm_mb": float("nan")}})


def test_quantized_model_detection(qdq_models):
    assert is_quantized_model(qdq_models["cnn"])
    assert not is_quantized_model(qdq_models["float"])


def test_one_quantized_model_answer_for_a_file_a_proto_and_a_graph(qdq_models, tmp_path):
    """The one is_quantized_model answers alike for every form of a model (QLinear counts too)."""
    import onnx
    from onnx import TensorProto, helper

    from studio.core.model.graph import ModelGraph

    for name, expected in (("cnn", True), ("float", False)):
        path = qdq_models[name]
        forms = (path, onnx.load(str(path)), ModelGraph.load(path))
        assert [is_quantized_model(f) for f in forms] == [expected] * 3, name
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4])
    consts = [
        helper.make_tensor(n, dt, [], [v])
        for n, dt, v in (("s", TensorProto.FLOAT, 0.1), ("z", TensorProto.UINT8, 0))
    ]
    node = helper.make_node(
        "QLinearAdd", ["x", "s", "z", "x", "s", "z", "s", "z"], ["y"], domain="com.microsoft"
    )
    graph = helper.make_graph([node], "qlinear", [x], [y], initializer=consts)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    qlinear = tmp_path / "qlinear.onnx"
    onnx.save(model, str(qlinear))
    assert is_quantized_model(qlinear) and is_quantized_model(model)


def test_every_assignable_backend_is_a_registered_one():
    """A project's pins name backends from the engine's one list (the ground floor cannot import it)."""
    from studio.core.engine.backends import REGISTRY
    from studio.core.project import BACKENDS

    assert set(BACKENDS) <= set(REGISTRY)
    assert list(BACKENDS) == [n for n in REGISTRY if n in BACKENDS]  # the same order


# --- offload report -----------------------------------------------------------------------------


@pytest.mark.htp
def test_offload_report_names_the_unsupported_node_and_why(qdq_models):
    report = offload_report(qdq_models["erf"], "htp")
    assert report.error is None
    assert not report.full_offload
    assert "/head/Erf" in report.cpu_node_names
    erf = next(n for n in report.cpu_nodes if n.name == "/head/Erf")
    assert erf.op_type == "Erf" and erf.in_model and "Erf" in (erf.reason or "")
    # The Conv/Gemm body stays on HTP in one partition; only the Erf island left it.
    assert report.qnn_node_count > 20 and report.partitions == 1
    assert all(n.op_type in ("Erf", "QuantizeLinear", "DequantizeLinear") for n in report.cpu_nodes)
    assert "/head/Erf (Erf)" in report.summary()
    assert OffloadReport.from_json(json.loads(json.dumps(report.to_json()))) == report


@pytest.mark.htp
def test_offload_report_full_offload_agrees_with_disabled_fallback(qdq_models):
    from studio.core.engine.sessions import make_session

    report = offload_report(qdq_models["cnn"], "htp")
    assert report.full_offload, report.summary()
    # graph-input Q / graph-output DQ stay on CPU by design and are listed apart
    assert {n.op_type for n in report.io_quant_nodes} <= {"QuantizeLinear", "DequantizeLinear"}
    make_session(qdq_models["cnn"], "htp", disable_cpu_fallback=True)  # ORT agrees: no error
    erf = offload_report(qdq_models["erf"], "htp", reasons=False)
    assert not erf.full_offload and erf.reasons == {}
    # The error carries the QNN EP's own reason (its log), not only ORT's generic symptom.
    with pytest.raises(Exception, match=r"Unsupported nodes in QNN EP: \{ name: /head/Erf"):
        make_session(qdq_models["erf"], "htp", disable_cpu_fallback=True)


def test_offload_report_refuses_the_cpu_backend(qdq_models):
    with pytest.raises(BadInputError, match="QNN backends"):
        offload_report(qdq_models["cnn"], "cpu")


def test_parse_rejections_reads_qnn_log_blocks():
    lines = [
        "2026 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation FAILED "
        "for 2 nodes in OrtNodeUnit (Erf) :",
        "\tOperator type: Erf Node name: /head/Erf Node index: 26",
        "\tOperator type: QuantizeLinear Node name: q1 Node index: 27",
        "\tREASON : Operators of type `Erf` are not supported by QNN EP.",
        "2026 [V:onnxruntime:, x.cc:1 F] Validation PASSED for 5 nodes in OrtNodeUnit (Conv) :",
        "\tOperator type: Conv Node name: conv Node index: 3",
    ]
    reasons = parse_rejections(lines)
    assert reasons == {
        "/head/Erf": "Operators of type `Erf` are not supported by QNN EP.",
        "q1": "Operators of type `Erf` are not supported by QNN EP.",
    }


def test_capture_fd2_sees_native_writes_and_echoes_them(capfd):
    import os

    from studio.core.jobs.native_log import capture_fd2

    with capture_fd2(echo=True) as outer:
        os.write(2, b"outer line\n")
        with capture_fd2(echo=True) as inner:  # re-entrant: offload_report -> make_session
            os.write(2, b"2026-01-01 00:00:00.0 [E:onnxruntime:, x.cc:1 F] the cause\n")
        assert inner.ort_messages() == ["the cause"]
    assert "outer line" in outer.text and "the cause" in outer.text  # inner echoed into outer
    assert "the cause" in capfd.readouterr().err  # and the outer echoed to the real stderr


def test_a_probe_killed_from_outside_is_not_cached(monkeypatch):
    """Closing a window kills every worker; a probe caught by that must not stick for the process."""
    from studio.core.engine import registry as backends
    from studio.core.errors import JobFailedError
    from studio.core.jobs import client as worker_client

    calls = []

    def killed(*args, **kwargs):
        calls.append(args)
        raise JobFailedError("worker was killed by SIGKILL")

    monkeypatch.setattr(backends, "_cache", {})
    monkeypatch.setattr(worker_client, "run_in_worker", killed)
    first = backends.probe_backends(refresh=True)
    assert not any(s.available for s in first) and "SIGKILL" in first[0].reason
    backends.probe_backends()
    assert len(calls) == 2  # probed again, not served from a cached failure
