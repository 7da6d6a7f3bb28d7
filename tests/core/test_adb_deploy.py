"""A phone over adb, against the fake adb server (real smart-socket protocol, adbutils unchanged).

The fake phone is a Galaxy S24 (ro.soc.model SM8650): its file system is a folder, its sysfs holds
thermal zones, clocks and a battery current, and its ``qnn-net-run`` is a Python function that
reads the pushed input list and raw files and writes ``Result_0`` and a profile log, as the real
one does. The SDK is a folder with the device files and a host ``qnn-profile-viewer`` script.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from studio.cli import main
from studio.core.jobs.client import run_in_worker
from studio.core.jobs.protocol import JobContext, job_kind
from studio.core.toolchain.adb.errors import DeviceRunError
from studio.core.workflows.device_run import device_run_job
from tests import builders
from tests.fake_adb import FakeAdbServer, FakeDevice, free_port
from tests.fake_qnn_sdk import make_device_sdk

pytestmark = pytest.mark.htp

S24_PROPS = {
    "ro.product.model": "SM-S921B",
    "ro.product.manufacturer": "samsung",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.soc.model": "SM8650",
    "ro.board.platform": "pineapple",
    "ro.product.cpu.abi": "arm64-v8a",
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from studio.core.toolchain.compile import compile_model

    folder = tmp_path_factory.mktemp("adb_bundle")
    float_model = builders.save(builders.conv_relu(), folder / "conv_relu.onnx")
    qdq = builders.quantize_for_qnn(float_model, folder / "conv_relu_qdq.onnx")
    compile_model(qdq, folder / "bundle")
    return qdq, folder / "bundle"


@pytest.fixture
def sdk(tmp_path, monkeypatch):
    root = make_device_sdk(tmp_path / "qairt")
    monkeypatch.setenv("QNN_SDK_ROOT", str(root))
    return root


class NetRun:
    """The phone's qnn-net-run: checks what was pushed, computes the model, writes its files."""

    def __init__(self, model: Path, exit_code: int = 0, message: str = "") -> None:
        self.model = model
        self.exit_code = exit_code
        self.message = message
        self.calls: list[list[str]] = []
        self.written: dict[str, np.ndarray] = {}

    def __call__(self, device: FakeDevice, argv: list[str], command: str):
        import onnxruntime as ort

        self.calls.append(argv)
        if self.exit_code:
            return self.message.encode(), self.exit_code
        opts = dict(zip(argv[1::2], argv[2::2], strict=False))
        here = device.local(device.cwd)
        for name in ("libQnnHtp.so", "libQnnHtpV75Stub.so", "libQnnHtpV75Skel.so", "qnn-net-run"):
            assert (here / name).is_file(), f"{name} was not pushed"
        assert (here / opts["--retrieve_context"]).read_bytes().startswith(b"")
        sess = ort.InferenceSession(str(self.model), providers=["CPUExecutionProvider"])
        line = (here / opts["--input_list"]).read_text().split()
        feeds = {}
        for item, spec in zip(line, sess.get_inputs(), strict=True):
            name, _, path = item.partition(":=")
            feeds[name] = np.fromfile(device.local(path), dtype=np.float32).reshape(spec.shape)
        out = here / opts["--output_dir"] / "Result_0"
        out.mkdir(parents=True)
        for meta, value in zip(sess.get_outputs(), sess.run(None, feeds), strict=True):
            value.astype(np.float32).tofile(out / f"{meta.name}.raw")
            self.written[meta.name] = value
        (out.parent / "qnn-profiling-data_0.log").write_bytes(b"QNNPROF\x00\x01binary")
        return b"qnn-net-run build version: fake\nFinished Executing Graphs\n", 0


def _phone(tmp_path: Path, serial: str = "R5CW31ABCDE", **kwargs) -> FakeDevice:
    root = tmp_path / f"phone-{serial}"
    (root / "data/local/tmp").mkdir(parents=True)
    for index, (kind, temp) in enumerate((("cpu-1-0", 41200), ("nsphvx-0", 38900))):
        zone = root / f"sys/class/thermal/thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{temp}\n")
    for cpu, khz in ((0, 1785600), (7, 3302400)):
        freq = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_cur_freq").write_text(f"{khz}\n")
    (root / "sys/class/kgsl/kgsl-3d0").mkdir(parents=True)
    (root / "sys/class/kgsl/kgsl-3d0/gpuclk").write_text("680000000\n")
    (root / "sys/class/power_supply/battery").mkdir(parents=True)
    (root / "sys/class/power_supply/battery/current_now").write_text("-412000\n")
    props = dict(S24_PROPS)
    props.update(kwargs.pop("props", {}))
    return FakeDevice(serial, root, props=props, tags={"model": "SM_S921B"}, **kwargs)


@pytest.fixture
def adb(monkeypatch):
    servers = []

    def start(*devices: FakeDevice, version: int = 41) -> FakeAdbServer:
        server = FakeAdbServer(list(devices), version=version).__enter__()
        servers.append(server)
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def test_devices_lists_phones_with_their_catalogue_entry(adb, tmp_path, capsys):
    ready = _phone(tmp_path)
    locked = FakeDevice("0A1B2C", tmp_path, state="unauthorized")
    unknown = _phone(tmp_path, "EMU5554", props={"ro.soc.model": "MT6989"})
    adb(ready, locked, unknown, version=40)  # adb 1.0.40: host:transport:SERIAL
    assert main(["devices", "--adb", "--json"]) == 0
    phones = {p["serial"]: p for p in json.loads(capsys.readouterr().out)["phones"]}
    s24 = phones["R5CW31ABCDE"]
    assert (s24["model"], s24["android"], s24["soc_model"]) == ("SM-S921B", "14", "SM8650")
    assert s24["catalogue"]["chipset"] == "Snapdragon 8 Gen 3"
    assert (s24["catalogue"]["htp_arch"], s24["catalogue"]["soc_model"]) == (75, 57)
    assert s24["target"] == "adb:R5CW31ABCDE"
    assert (
        phones["0A1B2C"]["state"] == "unauthorized"
        and "Allow USB debugging" in phones["0A1B2C"]["note"]
    )
    assert phones["EMU5554"]["catalogue"] is None and "MT6989" in phones["EMU5554"]["note"]
    assert main(["devices", "--adb"]) == 0
    text = capsys.readouterr().out
    assert "Snapdragon 8 Gen 3, HTP v75, soc_model 57" in text and "unauthorized" in text


def test_no_adb_server_is_one_line_and_exit_3(monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    for argv in (["devices"], ["devices", "--adb"]):  # the plain command lists phones
        assert main(argv) == 3
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"127.0.0.1:{port}" in err and "never starts" in err


def test_profile_on_the_phone_pushes_runs_pulls_and_says_measured(adb, tmp_path, bundle, sdk):
    model, bundle_dir = bundle
    net_run = NetRun(model)
    phone = _phone(tmp_path, handlers={"qnn-net-run": net_run})
    server = adb(phone)
    samples = []
    ctx = JobContext(on_data=lambda d: samples.append(d["monitor"]))
    out = tmp_path / "out.npz"
    request = {"bundle": str(bundle_dir), "serial": phone.serial, "output": str(out), "seed": 2}
    result = run_in_worker(job_kind(device_run_job), request, ctx, timeout_s=300)

    (argv,) = net_run.calls
    assert argv[argv.index("--retrieve_context") + 1] == "htp_context.bin"
    assert argv[argv.index("--profiling_level") + 1] == "basic"
    assert argv[argv.index("--backend") + 1] == "libQnnHtp.so"
    sent = [r.split(" ", 1)[1] for r in server.requests if r.startswith("sync:SEND")]
    remote = result["command"].split("cd ", 1)[1].split(" ", 1)[0]
    for name in ("htp_context.bin", "libQnnHtpV75Stub.so", "libQnnHtpV75Skel.so", "input_list.txt"):
        assert any(s.startswith(f"{remote}/{name},") for s in sent), name
    assert "ADSP_LIBRARY_PATH=" in result["command"]
    with np.load(out) as pulled:
        assert np.array_equal(pulled["y"], net_run.written["y"].astype(np.float32))
    assert result["measured"] == "measured on SM-S921B"
    assert result["latency_ms"] == pytest.approx(0.48)
    assert result["latency_label"].startswith("0.480 ms measured on SM-S921B")
    rows = {r["node_id"]: r for r in result["layers"]}
    assert rows["/conv1/Conv"]["cycles"] == 351234
    est = result["estimate"]
    assert est["kind"] == "estimated" and "Galaxy S24" in est["label"]
    assert est["error_vs_measured"] == pytest.approx(est["total_ms"] / 0.48 - 1)
    series = result["monitor"]["series"]
    assert series["temp cpu-1-0 (°C)"][0] == pytest.approx(41.2)
    assert series["cpu7 clock (MHz)"][0] == pytest.approx(3302.4)
    assert series["GPU clock (MHz)"][0] == pytest.approx(680.0)
    assert series["battery current (mA)"][0] == pytest.approx(-412.0)
    assert samples and "battery current (mA)" in samples[0]["values"]  # streamed while running


@pytest.mark.parametrize(
    "case, code, words",
    [
        ("unauthorized", 4, "unauthorised"),
        ("offline", 4, "offline"),
        ("no-sdk", 5, "QNN_SDK_ROOT"),
        ("unknown-soc", 6, "not in the device catalogue"),
        ("disk-full", 7, "disk is full"),
        ("push-fails", 7, "pushing libQnnHtp.so"),
        ("killed", 8, "killed"),
        ("net-run-fails", 8, "Failed to create context"),
    ],
)
def test_device_problems_are_clear_messages_and_exit_codes(
    adb, tmp_path, bundle, sdk, monkeypatch, capsys, case, code, words
):
    model, bundle_dir = bundle
    net_run = NetRun(model)
    if case == "killed":
        net_run = NetRun(model, 137, "Killed\n")
    if case == "net-run-fails":
        net_run = NetRun(model, 1, "ERROR: Failed to create context from binary (err 1002)\n")
    phone = _phone(
        tmp_path,
        state={"unauthorized": "unauthorized", "offline": "offline"}.get(case, "device"),
        props={"ro.soc.model": "MT6989", "ro.board.platform": "mt6989"}
        if case == "unknown-soc"
        else {},
        free_kb=0 if case == "disk-full" else 50_000_000,
        fail_push="libQnnHtp.so" if case == "push-fails" else None,
        handlers={"qnn-net-run": net_run},
    )
    adb(phone)
    if case == "no-sdk":
        monkeypatch.delenv("QNN_SDK_ROOT")
    if case in ("unauthorized", "killed"):  # through the CLI and its worker: message + exit code
        capsys.readouterr()
        argv = ["profile", str(bundle_dir), "--device", f"adb:{phone.serial}"]
        assert main(argv) == code
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
        return
    from studio.core.errors import StudioError
    from studio.core.jobs.protocol import run_inline

    with pytest.raises(StudioError) as info:  # the same job, in this process (faster)
        run_inline(device_run_job, {"bundle": str(bundle_dir), "serial": phone.serial})
    assert info.value.exit_code == code and words in str(info.value), str(info.value)


def test_a_failing_qnn_net_run_is_a_job_error(adb, tmp_path, bundle, sdk):
    model, bundle_dir = bundle
    phone = _phone(
        tmp_path, handlers={"qnn-net-run": NetRun(model, 1, "ERROR: graph execute failed\n")}
    )
    adb(phone)
    request = {"bundle": str(bundle_dir), "serial": phone.serial}
    with pytest.raises(DeviceRunError, match="(?s)exit code 1.*graph execute failed"):
        run_in_worker(job_kind(device_run_job), request, JobContext(), timeout_s=300)


def test_never_starts_an_adb_server(monkeypatch, tmp_path):
    """With nothing listening, adbutils would run `adb start-server`; the studio must not."""
    from studio.core.toolchain.adb.connection import adb_client
    from studio.core.toolchain.adb.errors import NoAdbServerError

    marker = tmp_path / "adb-was-run"
    fake_adb = tmp_path / "bin" / "adb"
    fake_adb.parent.mkdir()
    fake_adb.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(marker))}\n")
    fake_adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_adb.parent}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(free_port()))
    with pytest.raises(NoAdbServerError):
        adb_client().list()
    assert not marker.exists()
