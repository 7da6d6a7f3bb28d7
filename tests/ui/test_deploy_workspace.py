"""The Deploy workspace, end to end in the studio window: open -> quantise -> assign (one node pinned
to CPU) -> compile the heterogeneous bundle -> browse it -> run and profile it. Real jobs throughout
(calibration, QNN probe, EPContext compile, chained run in the worker); screenshots are kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PySide6.QtCore import QSettings

from studio.ui.shell import dialogs
from studio.ui.shell.main_window import MainWindow
from tests.fake_qnn_sdk import make_device_sdk

pytestmark = pytest.mark.htp

SHOTS = Path(os.environ.get("NPU_STUDIO_SHOTS", "/tmp/npu-studio-shots"))
PINNED = "/head/Sigmoid"


def conv_sigmoid_erf(path: Path) -> Path:
    """Float Conv -> Relu -> Sigmoid -> Erf -> Mul: HTP takes the convolution, never the Erf."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(
            rng.normal(0, 0.2, (16, 3, 3, 3)).astype(np.float32), "conv.weight"
        ),
        numpy_helper.from_array(rng.normal(0, 0.05, (16,)).astype(np.float32), "conv.bias"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"], name="/conv/Relu"),
        helper.make_node("Sigmoid", ["r"], ["s"], name=PINNED),
        helper.make_node("Erf", ["s"], ["e"], name="/tail/Erf"),
        helper.make_node("Mul", ["e", "half"], ["y"], name="/tail/Mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_sigmoid_erf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 32, 32])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch):
    errors: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, t, m, d="": errors.append((t, m)))
    monkeypatch.setenv("NPU_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NPU_STUDIO_NO_WEBENGINE", "1")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings)
    window.resize(1500, 950)
    window.show()
    window.errors = errors
    yield window
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *a: "discard")
    window.close()
    window.deleteLater()


def _shot(widget, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert widget.grab().save(str(path))
    return path


def test_demo_flow_open_quantise_assign_compile_run_profile(qtbot, win, tmp_path, monkeypatch):
    model = conv_sigmoid_erf(tmp_path / "demo.onnx")
    win.open_path(str(model))
    qtbot.waitUntil(lambda: win.ctx.graph is not None, timeout=30000)

    # quantise (Quantization workspace: calibrate, build the QDQ model), then open it
    quant = win.workspaces["quant"]
    qtbot.waitUntil(lambda: not quant.session.preparing, timeout=30000)
    with qtbot.waitSignal(quant.runner.finished, timeout=60000):
        quant.calibrate("random:4")
    qdq = tmp_path / "demo.qdq.onnx"
    with qtbot.waitSignal(quant.runner.finished, timeout=60000):
        quant.build_qdq(str(qdq))
    assert qdq.is_file()
    win.load_model(str(qdq))
    qtbot.waitUntil(lambda: win.ctx.model_path == str(qdq), timeout=30000)

    # assign with one node pinned to the CPU (Backends workspace)
    backends = win.workspaces["backends"]
    backends.pin_nodes([PINNED], "cpu")
    backends.assign_button.click()
    qtbot.waitUntil(lambda: backends.plan is not None, timeout=120000)
    assert backends.plan.decision(PINNED).backend == "cpu" and backends.plan.decision(PINNED).pinned
    assert {d.backend for d in backends.plan.decisions} == {"htp", "cpu"}

    # Deploy: compile the plan into a heterogeneous bundle (a job, progress shown, window free)
    deploy = win.workspaces["deploy"]
    win.show_workspace(win.workspace_titles().index("Deploy"))
    assert "pinned: " + PINNED in deploy.plan_label.text()
    deploy.editor.set_value("htp_config", "performance_mode", "burst")
    assert "htp_performance_mode=burst" in deploy.editor.status.text()
    assert win.ctx.project.backend_config["htp_config"]["performance_mode"] == "burst"
    bundle = tmp_path / "demo_bundle"
    deploy.output.setText(str(bundle))
    deploy.compile_button.click()
    assert deploy.cancel_button.isEnabled()  # the job runs; the UI thread is not held
    qtbot.waitUntil(lambda: deploy.bundle_info is not None, timeout=180000)
    assert not win.errors, win.errors
    info = deploy.bundle_info
    assert info["kind"] == "heterogeneous" and info["verified"]
    assert [s["backend"] for s in info["segments"]] == [
        s["backend"] for s in json.loads((bundle / "manifest.json").read_text())["segments"]
    ]
    assert {s["backend"] for s in info["segments"]} == {"htp", "cpu"}
    htp = next(s for s in info["segments"] if s["backend"] == "htp")
    assert htp["provider_options"]["htp_performance_mode"] == "burst"
    assert htp["provider_options"]["soc_model"] == "57"  # the default target: Galaxy S24
    top = [deploy.tree.topLevelItem(i).text(0) for i in range(deploy.tree.topLevelItemCount())]
    assert "Segments (in order)" in top and "Plan (plan.json)" in top
    assert any(t.startswith("Encodings") for t in top)
    assert "checksums verified" in deploy.bundle_label.text()
    _shot(win, "deploy_compiled.png")

    # run it: per-segment timings from the chain in the worker
    deploy.run_button.click()
    qtbot.waitUntil(lambda: deploy.last_result is not None, timeout=120000)
    assert [t["backend"] for t in deploy.last_result["timings"]] == [
        s["backend"] for s in info["segments"]
    ]
    assert "segment" in deploy.results.toPlainText()

    # profile it: the record lands in the Profiling workspace
    profiling = win.workspaces["profiling"]
    deploy.profile_button.click()
    qtbot.waitUntil(lambda: profiling.run is not None, timeout=180000)
    assert profiling.run.stats.count == 10
    assert "chain" in profiling.run.label and profiling.run.options["bundle"] == str(bundle)
    assert not win.errors, win.errors
    _shot(deploy, "deploy_workspace.png")

    opened = []
    monkeypatch.setattr(
        "studio.ui.deploy.workspace.QDesktopServices.openUrl", lambda url: opened.append(url)
    )
    deploy.folder_button.click()
    assert opened and opened[0].toLocalFile() == str(bundle)

    win.show_workspace(win.workspace_titles().index("Profiling"))
    _shot(win, "deploy_profile_in_profiling.png")


def test_a_tampered_bundle_is_refused_when_opened(qtbot, win, tmp_path):
    from studio.core.toolchain.compile import compile_model
    from tests import builders

    qdq = builders.quantize_for_qnn(
        builders.save(builders.conv_relu(), tmp_path / "m.onnx"), tmp_path / "m_qdq.onnx"
    )
    compile_model(qdq, tmp_path / "b")
    specs = tmp_path / "b" / "input_specs.json"
    specs.write_text(specs.read_text().replace('"x"', '"z"'))
    deploy = win.workspaces["deploy"]
    deploy.open_bundle(str(tmp_path / "b"))
    qtbot.waitUntil(lambda: bool(deploy.last_error), timeout=30000)
    assert "input_specs.json" in deploy.last_error and deploy.bundle_info is None
    assert not deploy.run_button.isEnabled()


def test_diagnostics_dialog_lists_checks_with_fixes(qtbot, win):
    dialog = win.menus.show_diagnostics()
    qtbot.waitUntil(lambda: dialog.checks is not None, timeout=60000)
    names = {c["name"] for c in dialog.checks}
    assert {"onnxruntime-qnn", "adb server", "QNN_SDK_ROOT"} <= names
    assert "QNN version" in dialog.view.toPlainText()
    dialog.close()


def test_config_editor_validates_and_round_trips_the_seed_layout(qtbot, tmp_path):
    from studio.ui.deploy.config_editor import BackendConfigEditor

    editor = BackendConfigEditor()
    qtbot.addWidget(editor)
    seed = {
        "htp_config": {"performance_mode": "high_performance", "vtcm_mb": 8, "device_id": 0},
        "cpu_config": {"num_threads": 4},
    }
    path = tmp_path / "backend_config.json"
    path.write_text(json.dumps(seed))
    editor.load_file(str(path))
    assert editor.widgets[("htp_config", "vtcm_mb")].value() == 8
    assert "vtcm_mb=8" in editor.status.text() and "device_id=0" in editor.status.text()
    assert editor.option_labels[("htp_config", "vtcm_mb")].text() == "QNN provider option vtcm_mb"
    out = tmp_path / "saved.json"
    editor.save_file(str(out))
    saved = json.loads(out.read_text())
    assert saved["htp_config"] == seed["htp_config"] and saved["cpu_config"] == seed["cpu_config"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"htp_config": {"vtcm_mb": 512}}))
    with pytest.raises(Exception, match="vtcm_mb = 512 is outside"):
        editor.load_file(str(bad))
    assert editor.widgets[("htp_config", "vtcm_mb")].value() == 8  # a refused file changes nothing


def test_profile_on_a_phone_plots_the_monitor_and_a_device_failure_is_a_job_error(
    qtbot, win, tmp_path, monkeypatch
):
    from studio.core.toolchain.compile import compile_model
    from tests import builders
    from tests.core.test_adb_deploy import NetRun, _phone
    from tests.fake_adb import FakeAdbServer

    qdq = builders.quantize_for_qnn(
        builders.save(builders.conv_relu(), tmp_path / "m.onnx"), tmp_path / "m_qdq.onnx"
    )
    compile_model(qdq, tmp_path / "b")
    monkeypatch.setenv("QNN_SDK_ROOT", str(make_device_sdk(tmp_path / "qairt")))
    net_run = NetRun(qdq)
    phone = _phone(tmp_path, handlers={"qnn-net-run": net_run})
    with FakeAdbServer([phone]) as server:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        deploy = win.workspaces["deploy"]
        win.show_workspace(win.workspace_titles().index("Deploy"))
        deploy.refresh_button.click()
        qtbot.waitUntil(lambda: deploy.target.findData("adb:R5CW31ABCDE") >= 0, timeout=30000)
        deploy.target.setCurrentIndex(deploy.target.findData("adb:R5CW31ABCDE"))
        assert win.ctx.target_device == "adb:R5CW31ABCDE"
        deploy.open_bundle(str(tmp_path / "b"))
        qtbot.waitUntil(lambda: deploy.bundle_info is not None, timeout=30000)
        deploy.profile_button.click()
        qtbot.waitUntil(lambda: deploy.last_result is not None, timeout=120000)
        result = deploy.last_result
        assert result["measured"] == "measured on SM-S921B"
        assert "measured on SM-S921B" in deploy.results.toPlainText()
        assert "device estimate" in deploy.results.toPlainText()
        assert deploy.monitor_plot.isVisible() and "battery current (mA)" in deploy._curves
        assert deploy._curves["temp cpu-1-0 (°C)"].isVisible()
        assert not deploy._curves["cpu7 clock (MHz)"].isVisible()  # one unit at a time
        xs, ys = deploy._curves["temp cpu-1-0 (°C)"].getData()
        assert len(xs) >= 1 and ys[0] == pytest.approx(41.2)
        _shot(deploy, "deploy_phone_profile.png")

        # the phone's qnn-net-run fails: the job fails with its message, in the Jobs dock too
        net_run.exit_code, net_run.message = 1, "ERROR: Failed to create context from binary\n"
        deploy.last_result = None
        deploy.run_button.click()
        qtbot.waitUntil(lambda: bool(deploy.last_error), timeout=120000)
        assert "Failed to create context" in deploy.last_error
        handle = deploy.handle
        qtbot.waitUntil(lambda: handle.state == "failed", timeout=10000)
        assert "exit code 1" in handle.error_message
        assert win.errors == []  # reported in the workspace and the Jobs dock, not a modal
