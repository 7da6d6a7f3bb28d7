"""Run or profile a bundle on a phone over adb, and say what the figures are: measured on it.

The job pushes and runs the bundle's context binary (:mod:`studio.core.toolchain.adb.remote`),
decodes the pulled profile with the SDK's ``qnn-profile-viewer`` on this host, maps per-op cycles
to the source model's nodes (the same mapping as the in-process profile), and puts the on-device
estimate (:mod:`studio.core.devices.estimate`) beside the measurement with its error on this
model. Monitor samples (thermals, clocks, battery current) are streamed as ``ctx.data`` while the
run goes, so the GUI plots them live, and are returned whole for the report.

Here because it needs the toolchain (adb, bundle), profiling (viewer text, mapping) and devices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext, job


def _feeds(bundle: Any, request: dict[str, Any]) -> tuple[dict[str, np.ndarray], bool]:
    if request.get("inputs"):
        from studio.core.engine.feeds import load_arrays

        return load_arrays(request["inputs"]), False
    rng = np.random.default_rng(int(request.get("seed", 0)))
    feeds = {}
    for spec in bundle.specs.get("inputs", []):
        shape = spec.get("shape")
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise BadInputError(f"input '{spec['name']}' has dynamic shape {shape}: give --inputs")
        feeds[spec["name"]] = rng.random(shape, dtype=np.float32)
    return feeds, True


def _layers(bundle: Any, report: Any) -> tuple[list[dict[str, Any]], str]:
    """Per-op rows mapped to the source model (when it is still there unchanged)."""
    from studio.core.hashing import file_sha256
    from studio.core.model.graph import ModelGraph
    from studio.core.profiling.readers.viewer_text import viewer_layer_rows

    source = bundle.manifest.get("source_model") or {}
    path = Path(str(source.get("path", "")))
    if not source.get("path") or not path.is_file() or file_sha256(path) != source.get("sha256"):
        return [], "source model missing or changed: per-op figures not mapped to nodes"
    graph = ModelGraph.load(path, input_shapes=bundle.manifest.get("input_shapes") or None)
    rows, extra, _ = viewer_layer_rows(report, graph)
    return [r.to_json() for r in rows + extra], f"mapped to the nodes of {path}"


def _estimate(bundle: Any, phone: Any, measured_ms: float | None) -> dict[str, Any] | None:
    """The device model's figure for this phone's chipset and its error against the measurement."""
    from studio.core.devices.catalogue import resolve_device
    from studio.core.devices.estimate import estimate_model

    source = Path(str((bundle.manifest.get("source_model") or {}).get("path", "")))
    if not source.is_file() or phone.catalogue is None:
        return None
    try:
        est = estimate_model(source, resolve_device(phone.catalogue["reference_device"]))
    except Exception as exc:  # noqa: BLE001 - an estimate is extra information, never fatal
        return {"error": str(exc)}
    data = {"label": est.label, "total_ms": est.total_ms, "kind": "estimated"}
    if measured_ms:
        data["error_vs_measured"] = est.total_ms / measured_ms - 1.0
        data["error_text"] = (
            f"estimate {est.total_ms:.3f} ms vs measured {measured_ms:.3f} ms: "
            f"{100 * (est.total_ms / measured_ms - 1):+.0f}% on this model"
        )
    return data


@job
def device_run_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"bundle", "serial", "inputs"?, "output"?, "sdk"?, "profile"?, "seed"?, "timeout_s"?}``."""
    from studio.core.engine.feeds import describe, save_outputs
    from studio.core.profiling.readers.viewer_text import parse_viewer_text
    from studio.core.toolchain.adb.phones import open_phone
    from studio.core.toolchain.adb.remote import (
        bundle_tag,
        device_runtime,
        run_context_on_phone,
        scratch,
        viewer_text,
    )
    from studio.core.toolchain.bundle import load_bundle

    bundle = load_bundle(request["bundle"])
    if isinstance(bundle.manifest.get("segments"), list):
        raise BadInputError(
            "a bundle compiled from a plan has CPU segments, which need onnxruntime on the phone; "
            "run it here (`npu-studio run BUNDLE`) or compile the model whole for the phone",
            path=str(bundle.root),
        )
    if bundle.backend != "htp" or bundle.context_binary is None:
        raise BadInputError("the bundle has no HTP context binary to run", path=str(bundle.root))
    ctx.stage = "connect"
    ctx.progress(0.02, f"connecting to {request['serial']}")
    device, phone = open_phone(str(request["serial"]))
    arch = int(phone.catalogue["htp_arch"])
    runtime = device_runtime(request.get("sdk"), arch)
    ctx.log(f"{phone.label}: {phone.catalogue['chipset']}, HTP v{arch}, Android {phone.android}")
    compiled_for = (bundle.manifest.get("session") or {}).get("provider_options", {})
    notes = []
    if compiled_for.get("soc_model") and str(compiled_for["soc_model"]) != str(
        phone.catalogue["soc_model"]
    ):
        notes.append(
            f"the bundle was compiled for soc_model {compiled_for['soc_model']}, the phone is "
            f"{phone.catalogue['soc_model']}: recompile with --device for this phone if it fails"
        )
    feeds, were_random = _feeds(bundle, request)
    with scratch() as tmp:
        res = run_context_on_phone(
            device,
            phone.serial,
            phone.label,
            bundle.context_binary,
            feeds,
            bundle.specs.get("outputs", []),
            runtime,
            Path(tmp),
            tag=bundle_tag(bundle),
            profiling_level="basic",
            timeout_s=float(request.get("timeout_s") or 600),
            ctx=ctx,
            on_sample=lambda sample: ctx.data({"monitor": sample}),
        )
        text = viewer_text(request.get("sdk"), res["profile_log"], ctx)
    measured = f"measured on {phone.model or phone.serial}"
    result: dict[str, Any] = {
        "kind": "npu-studio.device-run",
        "measured": measured,
        "device": phone.to_json(),
        "bundle": str(bundle.root),
        "random_inputs": were_random,
        "inputs": {k: describe(v) for k, v in feeds.items()},
        "monitor": res["monitor"],
        "command": res["command"],
        "notes": notes,
    }
    if request.get("output"):
        names = list(res["outputs"])
        result["outputs"] = save_outputs(request["output"], names, list(res["outputs"].values()))
        result["output_path"] = str(request["output"])
    else:
        result["outputs"] = {k: describe(v) for k, v in res["outputs"].items()}
    latency_ms = None
    if text:
        report = parse_viewer_text(text, res["profile_log"] or "<viewer>")
        if report.execute_us is not None:
            latency_ms = report.execute_us / 1000.0
        result["layers"], result["layers_note"] = _layers(bundle, report)
        result["profile_text"] = text
    result["latency_ms"] = latency_ms
    result["latency_label"] = (
        f"{latency_ms:.3f} ms {measured} (qnn-net-run execute time)"
        if latency_ms is not None
        else f"no decoded profile ({'no qnn-profile-viewer' if text is None else 'empty'})"
    )
    result["estimate"] = _estimate(bundle, phone, latency_ms)
    ctx.progress(1.0, result["latency_label"])
    return result
