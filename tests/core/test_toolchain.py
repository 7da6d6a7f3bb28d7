"""Compile -> bundle -> load round trip (real EPContext on HTP) and the QNN SDK adapter (fake SDK)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from studio.core.errors import BadInputError, JobFailedError
from studio.core.jobs.protocol import JobContext
from studio.core.toolchain import sdk as sdk_mod
from studio.core.toolchain.bundle import input_specs, qdq_encodings
from studio.core.toolchain.compile import (
    compile_model,
    load_bundle,
    resolve_model_or_bundle,
    staging_dir,
)
from studio.core.toolchain.embedded import context_nodes
from tests import builders


@pytest.fixture(scope="module")
def qdq_cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tc")
    cnn = builders.save(builders.small_cnn(), folder / "cnn.onnx")
    return builders.quantize_for_qnn(cnn, folder / "cnn_qdq.onnx")


@pytest.fixture(scope="module")
def bundle(qdq_cnn, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "cnn_bundle"
    logs: list[str] = []
    saved = os.environ.pop("QNN_SDK_ROOT", None)  # the embedded path, even on a machine with an SDK
    try:
        result = compile_model(
            qdq_cnn,
            out,
            provider_options={"soc_model": "60", "htp_arch": "73"},
            ctx=JobContext(on_log=logs.append),
        )
    finally:
        if saved is not None:
            os.environ["QNN_SDK_ROOT"] = saved
    return out, result, logs


def _initializer(model_path: Path, name: str) -> np.ndarray:
    model = onnx.load(str(model_path))
    init = next(i for i in model.graph.initializer if i.name == name)
    return onnx.numpy_helper.to_array(init)


@pytest.mark.htp
def test_embedded_compile_writes_the_bundle_and_proves_it_runs(bundle, qdq_cnn):
    out, result, logs = bundle
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "context_binaries/htp_context.bin",
        "context_binaries/htp_context.onnx",
        "input_specs.json",
        "manifest.json",
        "quantization_config.json",
    ]
    assert (out / "context_binaries/htp_context.bin").stat().st_size > 1000
    # The EPContext model references the renamed binary by a relative name, and it loads.
    (node,) = context_nodes(out / "context_binaries/htp_context.onnx")
    assert node["binary"] == "htp_context.bin" and node["embed_mode"] == 0
    assert result["offload"]["full_offload"]
    verify = result["verify"]
    assert verify["max_abs_diff_vs_source_on_backend"] == 0.0
    scale = float(_initializer(qdq_cnn, "logits_scale"))
    assert verify["max_abs_diff_vs_cpu"] <= 3 * scale  # HTP vs CPU QDQ: within 3 output steps
    assert any("verified" in line for line in logs)


@pytest.mark.htp
def test_manifest_checksums_every_file_and_load_verifies(bundle):
    out, _, _ = bundle
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert set(manifest["files"]) == {
        "context_binaries/htp_context.bin",
        "context_binaries/htp_context.onnx",
        "input_specs.json",
        "quantization_config.json",
    }
    assert (
        manifest["tools"]["onnxruntime_qnn"]
        and manifest["session"]["provider_options"]["htp_arch"] == "73"
    )
    assert manifest["path"] == "embedded" and manifest["created"]
    loaded = load_bundle(out)
    assert loaded.context_model.name == "htp_context.onnx"
    model, opts = resolve_model_or_bundle(out)
    assert model == loaded.context_model and opts["backend"] == "htp"
    assert opts["provider_options"]["soc_model"] == "60"


@pytest.mark.htp
def test_tampered_or_missing_bundle_file_is_a_clear_error(bundle, tmp_path):
    import shutil

    out, _, _ = bundle
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    binary = copy / "context_binaries/htp_context.bin"
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    binary.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="htp_context.bin' was modified"):
        load_bundle(copy)
    binary.unlink()
    with pytest.raises(BadInputError, match="htp_context.bin' is missing"):
        load_bundle(copy)
    with pytest.raises(BadInputError, match="not a bundle"):
        load_bundle(tmp_path)


def test_encodings_extracted_from_qdq_match_its_initializers(qdq_cnn):
    enc = qdq_encodings(qdq_cnn)
    assert enc["version"] == "0.6.1"
    act = enc["activation_encodings"]["/stem/Relu_output_0"][0]
    scale = float(_initializer(qdq_cnn, "/stem/Relu_output_0_scale"))
    zp = int(_initializer(qdq_cnn, "/stem/Relu_output_0_zero_point"))
    assert act["scale"] == pytest.approx(scale) and act["offset"] == -zp
    assert act["bitwidth"] == 8 and act["is_symmetric"] in ("True", "False")
    # weights keyed by the original initializer name, not ORT's "_quantized" copy
    assert "stem.weight" in enc["param_encodings"]
    assert enc["param_encodings"]["stem.weight"][0]["bitwidth"] == 8
    assert "logits" in enc["activation_encodings"]
    assert qdq_encodings(qdq_cnn.parent / "cnn.onnx") is None  # float model: none


def test_input_specs_carry_quantisation(qdq_cnn):
    specs = input_specs(qdq_cnn)
    (inp,) = specs["inputs"]
    assert inp["name"] == "input" and inp["shape"] == [1, 3, 32, 32] and inp["dtype"] == "float32"
    assert inp["quantization"]["qtype"] == "uint8"
    assert inp["quantization"]["scale"][0] == pytest.approx(
        float(_initializer(qdq_cnn, "input_scale"))
    )
    (out,) = specs["outputs"]
    assert out["name"] == "logits" and out["quantization"] is not None


def test_refuses_to_write_into_a_non_bundle_folder(qdq_cnn, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not a bundle"):
        compile_model(qdq_cnn, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --- the QNN SDK adapter against a fake SDK ------------------------------------------------------

_FAKE_TOOL = '''#!{python}
"""Fake {name}: accepts only the documented flags, records its argv, writes what the tool would."""
import argparse, json, os, sys
from pathlib import Path
log = Path(os.environ["FAKE_SDK_LOG"])
with log.open("a") as fh:
    fh.write(json.dumps([Path(sys.argv[0]).name] + sys.argv[1:]) + "\\n")
if os.environ.get("FAKE_FAIL") == "{name}":
    print("ERROR: {name} failed on purpose", flush=True)
    sys.exit(3)
p = argparse.ArgumentParser(allow_abbrev=False)
{body}
'''

_BODIES = {
    "qnn-onnx-converter": """
p.add_argument("--input_network", required=True)
p.add_argument("-o", required=True)
p.add_argument("-d", nargs=2, action="append")
p.add_argument("--input_list")
p.add_argument("--quantization_overrides")
p.add_argument("--act_bitwidth", type=int, choices=[8, 16])
p.add_argument("--weights_bitwidth", type=int, choices=[4, 8])
p.add_argument("--bias_bitwidth", type=int, choices=[32])
p.add_argument("--float_bitwidth", type=int, choices=[16, 32])
p.add_argument("--float_fallback", action="store_true")
p.add_argument("--use_per_channel_quantization", action="store_true")
a = p.parse_args()
assert Path(a.input_network).is_file(), a.input_network
if a.quantization_overrides:
    enc = json.loads(Path(a.quantization_overrides).read_text())
    assert enc["version"] == "0.6.1" and "activation_encodings" in enc and "param_encodings" in enc
print("converting", a.input_network)
if os.environ.get("FAKE_FAIL") != "no-output":
    Path(a.o).write_text("// model.cpp")
    Path(a.o).with_suffix(".bin").write_bytes(b"weights")
""",
    "qnn-model-lib-generator": """
p.add_argument("-c", required=True)
p.add_argument("-b", required=True)
p.add_argument("-t", required=True, choices=["x86_64-linux-clang", "aarch64-android"])
p.add_argument("-o", required=True)
a = p.parse_args()
assert Path(a.c).is_file() and Path(a.b).is_file()
if os.environ.get("FAKE_FAIL_TARGET") == a.t:
    print("ERROR: ANDROID_NDK_ROOT is not set; ndk-build not found", flush=True)
    sys.exit(2)
out = Path(a.o) / a.t
out.mkdir(parents=True, exist_ok=True)
(out / ("lib" + Path(a.c).stem + ".so")).write_bytes(b"\\x7fELF fake")
print("built", out)
""",
    "qnn-context-binary-generator": """
p.add_argument("--backend", required=True)
p.add_argument("--model", required=True)
p.add_argument("--binary_file", required=True)
p.add_argument("--output_dir", required=True)
p.add_argument("--config_file")
p.add_argument("--profiling_level", choices=["basic", "detailed"])
a = p.parse_args()
assert Path(a.backend).is_file() and Path(a.backend).name == "libQnnHtp.so", a.backend
assert Path(a.model).is_file(), a.model
Path(a.output_dir).mkdir(parents=True, exist_ok=True)
(Path(a.output_dir) / (a.binary_file + ".bin")).write_bytes(b"QNN context " * 100)
print("context written")
""",
    "qnn-net-run": """
g = p.add_mutually_exclusive_group(required=True)
g.add_argument("--model")
g.add_argument("--retrieve_context")
p.add_argument("--backend", required=True)
p.add_argument("--input_list", required=True)
p.add_argument("--output_dir", required=True)
p.add_argument("--profiling_level", choices=["basic", "detailed"])
p.add_argument("--perf_profile")
a = p.parse_args()
import numpy as np
for i, line in enumerate(Path(a.input_list).read_text().splitlines()):
    total = 0.0
    for item in line.split(" "):
        name, sep, path = item.partition(":=")
        assert sep and os.path.isabs(path) and Path(path).is_file(), item
        total += float(np.fromfile(path, dtype=np.float32).sum())
    res = Path(a.output_dir) / f"Result_{i}"
    res.mkdir(parents=True, exist_ok=True)
    np.full(10, total, dtype=np.float32).tofile(res / "logits.raw")
print("ran", i + 1, "inferences")
""",
}


@pytest.fixture
def fake_sdk(tmp_path, monkeypatch):
    root = tmp_path / "qnn_sdk"
    bin_dir = root / "bin" / "x86_64-linux-clang"
    bin_dir.mkdir(parents=True)
    for name, body in _BODIES.items():
        tool = bin_dir / name
        tool.write_text(
            _FAKE_TOOL.format(python=sys.executable, name=name, body=textwrap.dedent(body))
        )
        tool.chmod(0o755)
    lib = root / "lib" / "x86_64-linux-clang"
    lib.mkdir(parents=True)
    (lib / "libQnnHtp.so").write_bytes(b"")
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_SDK_LOG", str(log))
    return root, log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_sdk_compile_runs_the_documented_chain_with_exact_flags(fake_sdk, qdq_cnn, tmp_path):
    root, log = fake_sdk
    out = tmp_path / "sdk_bundle"
    logs: list[str] = []
    result = compile_model(qdq_cnn, out, sdk_root=root, ctx=JobContext(on_log=logs.append))
    staging = staging_dir(out)  # the tools run while the bundle is built beside its target
    work = staging / ".sdk_work"
    conv, lib, device_lib, ctxgen = _calls(log)
    assert conv == [
        "qnn-onnx-converter",
        "--input_network",
        str(qdq_cnn),
        "-o",
        str(work / "model.cpp"),
        "--quantization_overrides",
        str(staging / "quantization_config.json"),
    ]
    assert lib == [
        "qnn-model-lib-generator",
        "-c",
        str(work / "model.cpp"),
        "-b",
        str(work / "model.bin"),
        "-t",
        "x86_64-linux-clang",
        "-o",
        str(work / "libs"),
    ]
    # the seed's qnn_model/ layout: the model library for the phone as well as for this host
    assert device_lib == [*lib[:6], "aarch64-android", *lib[7:]]
    assert ctxgen == [
        "qnn-context-binary-generator",
        "--backend",
        str(root / "lib/x86_64-linux-clang/libQnnHtp.so"),
        "--model",
        str(work / "libs/x86_64-linux-clang/libmodel.so"),
        "--binary_file",
        "htp_context",
        "--output_dir",
        str(staging / "context_binaries"),
    ]
    every_flag = {arg for call in _calls(log) for arg in call}
    assert not every_flag & {"--target_device", "--optimization_level", "--target_backends"}
    assert (out / "context_binaries/htp_context.bin").is_file()
    assert (out / "model_optimized.so").is_file() and not work.exists()
    assert (out / "model_libs/aarch64-android/libmodel.so").read_bytes() == b"\x7fELF fake"
    bundle = load_bundle(out)
    assert bundle.manifest["path"] == "sdk" and bundle.model_library is not None
    assert bundle.manifest["device_model_libraries"] == {
        "aarch64-android": "model_libs/aarch64-android/libmodel.so"
    }
    assert "model_libs/aarch64-android/libmodel.so" in bundle.manifest["files"]
    assert "[qnn-onnx-converter] converting" in "\n".join(logs)  # tool output streamed to the log
    assert result["context_binaries"] == [str(out / "context_binaries/htp_context.bin")]
    with pytest.raises(BadInputError, match="--sdk"):
        resolve_model_or_bundle(out)  # no EPContext model: must be run with qnn-net-run


def test_sdk_compile_without_an_ndk_keeps_the_host_bundle_and_says_why(
    fake_sdk, qdq_cnn, tmp_path, monkeypatch
):
    root, log = fake_sdk
    monkeypatch.setenv("FAKE_FAIL_TARGET", "aarch64-android")
    out = tmp_path / "b"
    compile_model(qdq_cnn, out, sdk_root=root)
    bundle = load_bundle(out)
    where = bundle.manifest["device_model_libraries"]["aarch64-android"]
    assert where.startswith("failed") and "exit code 2" in where
    assert any("aarch64-android" in w for w in bundle.manifest["warnings"])
    assert (out / "context_binaries/htp_context.bin").is_file() and not (
        out / "model_libs"
    ).exists()


@pytest.mark.parametrize("fail", ["qnn-onnx-converter", "no-output"])
def test_sdk_chain_stops_at_the_first_failure(fake_sdk, qdq_cnn, tmp_path, monkeypatch, fail):
    root, log = fake_sdk
    monkeypatch.setenv("FAKE_FAIL", fail)
    with pytest.raises(JobFailedError) as info:
        compile_model(qdq_cnn, tmp_path / "b", sdk_root=root)
    message = str(info.value)
    assert "qnn-onnx-converter" in message
    if fail == "no-output":
        assert "did not write" in message and "model.cpp" in message
    else:
        assert "exit code 3" in message and "failed on purpose" in message
    assert [c[0] for c in _calls(log)] == ["qnn-onnx-converter"]  # nothing after the failure


def test_converter_argv_options_and_refusals(fake_sdk, tmp_path):
    root, _ = fake_sdk
    sdk = sdk_mod.QnnSdk(root)
    argv = sdk_mod.converter_argv(
        sdk,
        Path("m.onnx"),
        Path("m.cpp"),
        input_dims={"input": [1, 3, 32, 32]},
        input_list=Path("list.txt"),
        act_bitwidth=16,
        weights_bitwidth=8,
        bias_bitwidth=32,
        float_fallback=True,
        per_channel=True,
    )
    assert argv[1:] == [
        "--input_network", "m.onnx", "-o", "m.cpp", "-d", "input", "1,3,32,32",
        "--input_list", "list.txt", "--act_bitwidth", "16", "--weights_bitwidth", "8",
        "--bias_bitwidth", "32", "--float_fallback", "--use_per_channel_quantization",
    ]  # fmt: skip
    with pytest.raises(BadInputError, match="--act_bitwidth"):
        sdk_mod.converter_argv(sdk, Path("m"), Path("c"), act_bitwidth=4)
    with pytest.raises(Exception, match="libQnnGpu.so"):
        sdk.backend_lib("gpu")


def test_net_run_input_list_and_outputs(fake_sdk, tmp_path):
    root, log = fake_sdk
    sdk = sdk_mod.QnnSdk(root)
    ctx_bin = tmp_path / "htp_context.bin"
    ctx_bin.write_bytes(b"ctx")
    feeds = {"input": np.ones((1, 3, 2, 2), np.float32), "mask/0": np.full((1, 4), 2, np.float32)}
    outputs = sdk_mod.sdk_net_run(
        sdk, "htp", ctx_bin, feeds, [{"name": "logits", "shape": [1, 10]}], tmp_path / "w"
    )
    (call,) = _calls(log)
    work = tmp_path / "w"
    assert call == [
        "qnn-net-run", "--retrieve_context", str(ctx_bin),
        "--backend", str(root / "lib/x86_64-linux-clang/libQnnHtp.so"),
        "--input_list", str(work / "inputs/input_list.txt"), "--output_dir", str(work / "output"),
    ]  # fmt: skip
    listing = (work / "inputs/input_list.txt").read_text().splitlines()
    assert listing == [
        f"input:={(work / 'inputs/input.raw').resolve()} mask/0:={(work / 'inputs/mask_0.raw').resolve()}"
    ]
    assert outputs["logits"].shape == (1, 10)
    assert float(outputs["logits"][0, 0]) == 12.0 + 8.0  # the fake sums every input value


def test_find_sdk_uses_env_and_rejects_non_sdk(tmp_path, monkeypatch, fake_sdk):
    root, _ = fake_sdk
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    assert sdk_mod.find_sdk() is None
    monkeypatch.setenv("QNN_SDK_ROOT", str(root))
    assert sdk_mod.find_sdk().root == root
    with pytest.raises(BadInputError, match="not a QNN SDK"):
        sdk_mod.find_sdk(tmp_path / "nothing")
    assert os.environ["QNN_SDK_ROOT"] == str(root)


def test_sdk_compile_converts_aimet_encodings_to_qnn_for_the_converter(fake_sdk, tmp_path):
    root, log = fake_sdk
    model = builders.save(builders.small_cnn(), tmp_path / "cnn.onnx")
    aimet = tmp_path / "aimet.encodings"
    aimet.write_text(
        json.dumps(
            {
                "version": "1.0.0",
                "activation_encodings": [
                    {"name": "input", "enc_type": "PER_TENSOR", "dtype": "INT", "bw": 8,
                     "is_sym": False, "scale": [0.00392157], "offset": [0]},
                ],
                "param_encodings": [
                    {"name": "stem.weight", "enc_type": "PER_TENSOR", "dtype": "INT", "bw": 8,
                     "is_sym": True, "scale": [0.0055], "offset": [-128]},
                ],
            }
        )
    )  # fmt: skip
    out = tmp_path / "b"
    compile_model(model, out, sdk_root=root, encodings=aimet)
    enc = json.loads((out / "quantization_config.json").read_text())
    assert enc["version"] == "0.6.1"
    assert enc["activation_encodings"]["input"][0]["scale"] == pytest.approx(0.00392157)
    assert enc["param_encodings"]["stem.weight"][0]["offset"] == -128
    conv = _calls(log)[0]
    overrides = str(staging_dir(out) / "quantization_config.json")
    assert conv[-2:] == ["--quantization_overrides", overrides]
    assert json.loads((out / "manifest.json").read_text())["encodings_source"] == str(aimet)


@pytest.mark.htp
def test_bundle_still_runs_after_being_moved(bundle, tmp_path):
    import shutil

    from studio.core.engine.sessions import make_session, random_inputs

    out, _, _ = bundle
    moved = tmp_path / "elsewhere" / "renamed_bundle"
    shutil.copytree(out, moved)
    model, opts = resolve_model_or_bundle(moved)
    assert model.parent.parent == moved
    sess, info = make_session(model, "htp", provider_options=opts["provider_options"])
    assert info.providers[0] == "QNNExecutionProvider"
    (y,) = sess.run(None, random_inputs(sess))
    assert y.shape == (1, 10)
