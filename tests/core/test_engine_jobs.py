"""Engine jobs through the worker process: real HTP sessions, real files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from studio.core.engine.sessions import make_session
from studio.core.errors import BackendUnavailableError, BadInputError
from studio.core.jobs.client import run_in_worker
from studio.core.jobs.protocol import JobContext, job_kind
from studio.core.toolchain.jobs import compile_bundle, run
from tests import builders
from tests.core.test_toolchain import fake_sdk  # noqa: F401 - fixture

RUN = job_kind(run)
COMPILE = job_kind(compile_bundle)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eng")
    cnn = builders.save(builders.small_cnn(), folder / "cnn.onnx")
    erf = builders.save(builders.small_cnn_erf_head(), folder / "cnn_erf.onnx")
    qdq = builders.quantize_for_qnn(cnn, folder / "cnn_qdq.onnx")
    rng = np.random.default_rng(7)
    inputs = folder / "inputs.npz"
    np.savez(inputs, input=rng.random((1, 3, 32, 32), dtype=np.float32))
    return {
        "folder": folder,
        "float": cnn,
        "qdq": qdq,
        "erf_qdq": builders.quantize_for_qnn(erf, folder / "cnn_erf_qdq.onnx"),
        "inputs": inputs,
    }


def _scale(model_path, name: str) -> float:
    model = onnx.load(str(model_path))
    init = next(i for i in model.graph.initializer if i.name == name)
    return float(onnx.numpy_helper.to_array(init))


@pytest.mark.htp
def test_qdq_model_runs_fully_on_htp_and_matches_cpu_qdq(models, tmp_path):
    htp = run_in_worker(
        RUN,
        {"model": str(models["qdq"]), "backend": "htp", "inputs": str(models["inputs"]),
         "output": str(tmp_path / "htp.npz")},
    )  # fmt: skip
    cpu = run_in_worker(
        RUN,
        {"model": str(models["qdq"]), "backend": "cpu", "inputs": str(models["inputs"]),
         "output": str(tmp_path / "cpu.npz")},
    )  # fmt: skip
    assert htp["providers"][0] == "QNNExecutionProvider" and htp["offload"]["full_offload"]
    assert htp["random_inputs"] is False and cpu["providers"] == ["CPUExecutionProvider"]
    assert htp["simulated"] == ("note" in htp)
    a = np.load(tmp_path / "htp.npz")["logits"]
    b = np.load(tmp_path / "cpu.npz")["logits"]
    step = _scale(models["qdq"], "logits_scale")
    # Stated tolerance: HTP and the CPU QDQ reference agree within 3 steps of the output scale.
    assert np.abs(a - b).max() <= 3 * step
    assert np.abs(b).max() > 10 * step  # not a trivially zero output
    # ORT agrees the session needs no CPU node: creation with fallback disabled succeeds.
    sess, info = make_session(models["qdq"], "htp", disable_cpu_fallback=True)
    assert info.cpu_fallback_disabled
    (direct,) = sess.run(None, dict(np.load(models["inputs"])))
    assert np.array_equal(direct, a)


@pytest.mark.htp
def test_partial_offload_is_refused_with_the_node_named_unless_allowed(models):
    with pytest.raises(BackendUnavailableError) as info:
        run_in_worker(RUN, {"model": str(models["erf_qdq"]), "backend": "htp"})
    message = str(info.value)
    assert "/head/Erf (Erf)" in message and "not supported" in message
    assert "--cpu-fallback allow" in message
    result = run_in_worker(
        RUN,
        {"model": str(models["erf_qdq"]), "backend": "htp", "allow_cpu_fallback": True},
    )
    assert not result["offload"]["full_offload"]
    assert "/head/Erf" in result["offload"]["cpu_nodes"]
    assert result["random_inputs"] is True


@pytest.mark.htp
def test_compile_bundle_run_round_trip(models, tmp_path):
    logs: list[str] = []
    bundle = tmp_path / "bundle"
    compiled = run_in_worker(
        COMPILE,
        {"model": str(models["qdq"]), "output": str(bundle), "soc_model": 60, "htp_arch": 73},
        JobContext(on_log=logs.append),
    )
    assert compiled["offload"]["full_offload"]
    assert compiled["verify"]["max_abs_diff_vs_source_on_backend"] == 0.0
    from_bundle = run_in_worker(
        RUN,
        {"model": str(bundle), "inputs": str(models["inputs"]), "output": str(tmp_path / "b.npz")},
    )
    assert from_bundle["bundle"] == str(bundle) and from_bundle["backend"] == "htp"
    assert from_bundle["provider_options"]["htp_arch"] == "73"
    direct = run_in_worker(
        RUN,
        {"model": str(models["qdq"]), "inputs": str(models["inputs"]),
         "output": str(tmp_path / "d.npz")},
    )  # fmt: skip
    assert direct["outputs"]["logits"]["shape"] == [1, 10]
    np.testing.assert_array_equal(
        np.load(tmp_path / "b.npz")["logits"], np.load(tmp_path / "d.npz")["logits"]
    )
    with pytest.raises(BadInputError, match="compiled for htp, not cpu"):
        run_in_worker(RUN, {"model": str(bundle), "backend": "cpu"})


def test_bad_inputs_name_the_tensor(models, tmp_path):
    wrong_shape = tmp_path / "wrong.npz"
    np.savez(wrong_shape, input=np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(BadInputError, match=r"input 'input' has shape \[1, 3, 16, 16\]"):
        run_in_worker(RUN, {"model": str(models["float"]), "backend": "cpu",
                                  "inputs": str(wrong_shape)})  # fmt: skip
    wrong_name = tmp_path / "name.npz"
    np.savez(wrong_name, image=np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(BadInputError, match="lacks input"):
        run_in_worker(RUN, {"model": str(models["float"]), "backend": "cpu",
                                  "inputs": str(wrong_name)})  # fmt: skip
    folder = tmp_path / "npys"
    folder.mkdir()
    np.save(folder / "input.npy", np.ones((1, 3, 32, 32), np.float64))  # float64: cast to float32
    ok = run_in_worker(RUN, {"model": str(models["float"]), "backend": "cpu",
                                   "inputs": str(folder)})  # fmt: skip
    assert ok["inputs"]["input"]["dtype"] == "float32"


def test_bad_config_file_fails_the_job_as_config_error(models, tmp_path):
    from studio.core.errors import ConfigError

    cfg = tmp_path / "backend_config.json"
    cfg.write_text('{"cpu_config": {"num_threads": "two"}}')
    with pytest.raises(ConfigError, match="cpu_config.num_threads: expected an integer"):
        run_in_worker(RUN, {"model": str(models["float"]), "backend": "cpu",
                                  "config": str(cfg)})  # fmt: skip


@pytest.mark.htp
def test_float_model_on_htp_uses_fp16_and_reports_it(models):
    result = run_in_worker(RUN, {"model": str(models["float"]), "backend": "htp"})
    assert result["provider_options"]["enable_htp_fp16_precision"] == "1"
    # fp16 needs a soc_model: the target device's (default Samsung Galaxy S24: 57, HTP v75)
    opts = result["provider_options"]
    assert (opts["soc_model"], opts["htp_arch"]) == ("57", "75")
    assert result["offload"]["full_offload"]


def test_run_bundle_with_fake_sdk_uses_qnn_net_run(models, tmp_path, fake_sdk):  # noqa: F811
    root, log = fake_sdk
    bundle = tmp_path / "sdk_bundle"
    run_in_worker(
        COMPILE,
        {"model": str(models["qdq"]), "output": str(bundle), "sdk": str(root)},
    )
    result = run_in_worker(
        RUN,
        {"model": str(bundle), "sdk": str(root), "inputs": str(models["inputs"]),
         "output": str(tmp_path / "o.npz")},
    )  # fmt: skip
    assert result["providers"] == ["qnn-net-run"]
    total = float(np.load(models["inputs"])["input"].sum())
    out = np.load(tmp_path / "o.npz")["logits"]
    assert out.shape == (1, 10) and out[0, 0] == pytest.approx(total, rel=1e-5)


@pytest.mark.htp
def test_input_shape_fixes_a_dynamic_batch_model_for_htp(models, tmp_path):
    model = builders.small_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = builders.save(model, tmp_path / "dyn.onnx")
    with pytest.raises(
        BackendUnavailableError, match="dynamic shapes: fix them with --input-shape"
    ):
        run_in_worker(RUN, {"model": str(path), "backend": "htp"})
    result = run_in_worker(
        RUN,
        {"model": str(path), "backend": "htp", "input_shapes": {"input": [2, 3, 32, 32]}},
    )
    assert result["offload"]["full_offload"]
    assert result["outputs"]["logits"]["shape"] == [2, 10]
    with pytest.raises(BadInputError, match="--input-shape names image"):
        run_in_worker(RUN, {"model": str(path), "input_shapes": {"image": [1, 3]}})
    bundle = tmp_path / "b"
    compiled = run_in_worker(
        COMPILE,
        {"model": str(path), "output": str(bundle), "input_shapes": {"input": [1, 3, 32, 32]},
         "soc_model": 57},
    )  # fmt: skip
    assert compiled["offload"]["full_offload"]
    assert compiled["warnings"] == []  # --soc-model given: no "using 60" warning
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["source_model"]["path"] == str(path.resolve())
    assert manifest["session"]["provider_options"]["soc_model"] == "57"


@pytest.mark.htp
def test_unavailable_gpu_says_why_not_which_nodes(models):
    from studio.core.engine.registry import is_x86_host

    if not is_x86_host():
        pytest.skip("an Adreno GPU may be present on an ARM host")
    with pytest.raises(BackendUnavailableError) as info:
        run_in_worker(RUN, {"model": str(models["qdq"]), "backend": "gpu"})
    assert "GPU cannot run cnn_qdq.onnx: QNN SetupBackend failed" in str(info.value)
    with pytest.raises(BackendUnavailableError, match="QNN_BACKEND_ERROR|SetupBackend"):
        make_session(models["qdq"], "gpu", disable_cpu_fallback=True)
