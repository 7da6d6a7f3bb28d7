"""Compile a model for a QNN backend and package it as a deployment bundle.

Two paths lead to the same bundle layout (see :mod:`.bundle`):

* embedded (default): onnxruntime-qnn's EPContext writes the context binary; no SDK needed.
* SDK: ``qnn-onnx-converter`` -> ``qnn-model-lib-generator`` -> ``qnn-context-binary-generator``
  when ``QNN_SDK_ROOT`` is set or a folder is given (see :mod:`.sdk`).

``compile_model`` runs native code: call it through the worker (``toolchain.jobs.compile_bundle``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json
from studio.core.errors import BadInputError
from studio.core.hashing import file_sha256
from studio.core.jobs.protocol import JobContext
from studio.core.toolchain.bundle import (
    INPUT_SPECS,
    QUANT_CONFIG,
    Bundle,
    input_specs,
    is_bundle,
    load_bundle,
    normalised_encodings,
    qdq_encodings,
    write_manifest,
)

__all__ = [
    "Bundle",
    "compile_model",
    "is_bundle",
    "load_bundle",
    "resolve_model_or_bundle",
]


def compile_model(
    model_path: str | Path,
    out_dir: str | Path,
    *,
    backend: str = "htp",
    provider_options: dict[str, str] | None = None,
    session_config: dict[str, str] | None = None,
    sdk_root: str | Path | None = None,
    encodings: str | Path | None = None,
    config_file: str | Path | None = None,
    ctx: JobContext | None = None,
    warnings: list[str] | None = None,
    source_path: str | Path | None = None,
    input_shapes: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Compile ``model_path`` into the bundle folder ``out_dir`` and return what was done.

    ``source_path`` is the user's model when ``model_path`` is a shape-fixed copy of it.
    """
    ctx = ctx or JobContext()
    src = Path(model_path)
    if not src.is_file():
        raise BadInputError("model file not found", path=str(src))

    def build(out: Path) -> dict[str, Any]:
        return _compile_into(
            src,
            out,
            backend,
            provider_options,
            session_config,
            sdk_root,
            encodings,
            config_file,
            ctx,
            warnings,
            source_path,
            input_shapes,
        )

    return build_staged(Path(out_dir), build)


def build_staged(final: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run ``build(staging_folder)`` and swap the finished folder in as the bundle ``final``.

    Building beside the target means a compile killed half-way (a native crash, the OOM killer)
    never leaves a folder that looks like, or blocks, a bundle; a recompile replaces the old bundle
    whole, never mixing two compiles.
    """
    if final.exists() and any(final.iterdir()) and not is_bundle(final):
        raise BadInputError(
            "output folder exists and is not a bundle; refusing to write into it", path=str(final)
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    out = staging_dir(final)
    if out.exists():  # left by a compile that was killed
        shutil.rmtree(out)
    out.mkdir()
    try:
        result = build(out)
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    finally:
        if out.exists():
            shutil.rmtree(out, ignore_errors=True)
    return {**_moved(result, out, final), "bundle": str(final)}


def _moved(value: Any, old: Path, new: Path) -> Any:
    """``value`` with every path string under the staging folder pointed at the final bundle."""
    if isinstance(value, str) and value.startswith(str(old)):
        return str(new) + value[len(str(old)) :]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def staging_dir(bundle_dir: Path) -> Path:
    """Where a compile builds the bundle before swapping it in (the SDK tools see this path)."""
    return bundle_dir.parent / f".{bundle_dir.name}.partial"


def _compile_into(
    src: Path,
    out: Path,
    backend: str,
    provider_options: dict[str, str] | None,
    session_config: dict[str, str] | None,
    sdk_root: str | Path | None,
    encodings: str | Path | None,
    config_file: str | Path | None,
    ctx: JobContext,
    warnings: list[str] | None,
    source_path: str | Path | None,
    input_shapes: dict[str, list[int]] | None,
) -> dict[str, Any]:
    """Everything ``compile_model`` writes, into the staging folder ``out``."""
    from studio.core.engine.registry import versions
    from studio.core.toolchain import sdk as sdk_mod

    sdk = sdk_mod.find_sdk(sdk_root)
    info: dict[str, Any] = {
        "backend": backend,
        "path": "sdk" if sdk else "embedded",
        "source_model": {
            "path": str(Path(source_path or src).resolve()),
            "sha256": file_sha256(Path(source_path or src)),
        },
        "input_shapes": input_shapes,
        "tools": versions(),
        # The device the context binary was built for (from its soc_model/htp_arch); run uses it.
        "target": _target_of(provider_options or {}),
        "session": {
            "provider_options": dict(provider_options or {}),
            "session_config": dict(session_config or {}),
        },
        "warnings": list(warnings or []),
    }
    enc_data = None
    if encodings is not None:
        enc_data, enc_warnings = normalised_encodings(encodings, src)
        info["encodings_source"] = str(encodings)
        info["warnings"].extend(enc_warnings)
        for line in enc_warnings:
            ctx.log(f"warning: {line}")
    else:
        enc_data = qdq_encodings(src)
        if enc_data is not None:
            info["encodings_source"] = "extracted from the QDQ model"
    if enc_data is not None:
        atomic_write_json(out / QUANT_CONFIG, enc_data)
    atomic_write_json(out / INPUT_SPECS, input_specs(src))
    if sdk is not None:
        ctx.log(f"QNN SDK at {sdk.root}: converter -> model library -> context binary")
        ignored = sorted(k for k in (provider_options or {}) if k != "backend_type")
        if ignored:
            note = (
                "the SDK chain does not take ORT provider options ("
                + ", ".join(ignored)
                + "); a target SoC needs a backend-extension --config_file, not generated here"
            )
            info["warnings"].append(note)
            ctx.log(f"warning: {note}")
        result = sdk_mod.sdk_compile(
            sdk,
            src,
            out,
            backend=backend,
            encodings=(out / QUANT_CONFIG) if enc_data is not None else None,
            config_file=Path(config_file) if config_file else None,
            ctx=ctx,
        )
        info["tools"]["qnn_sdk_cli"] = result["sdk_version"]
        info["device_model_libraries"] = result.get("device_model_libraries", {})
        for target, where in info["device_model_libraries"].items():
            if where.startswith("failed"):
                info["warnings"].append(f"no {target} model library ({where})")
    else:
        from studio.core.toolchain.embedded import compile_embedded

        result = compile_embedded(
            src,
            out,
            backend=backend,
            provider_options=provider_options,
            session_config=session_config,
            ctx=ctx,
        )
        info["offload"] = {
            "full_offload": result["offload"]["full_offload"],
            "cpu_nodes": [n["name"] for n in result["offload"]["cpu_nodes"]],
        }
        info["verify"] = result.get("verify")
    manifest = write_manifest(out, info)
    return {"bundle": str(out), "manifest": manifest, **result}


def resolve_model_or_bundle(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """For ``run``/``profile``: a model path as it is, or a VERIFIED bundle's EPContext model.

    Returns ``(model_path, options)``; for a bundle ``options`` holds ``backend``,
    ``provider_options`` and ``session_config`` as compiled, and ``bundle`` (its folder).
    """
    target = Path(path)
    if is_bundle(target):
        bundle = load_bundle(target)
        if isinstance(bundle.manifest.get("segments"), list):
            raise BadInputError(
                "this bundle was compiled from a plan (HTP and CPU segments): run or profile it "
                "with `npu-studio run BUNDLE` / `npu-studio profile BUNDLE`, which execute its chain",
                path=str(target),
            )
        if bundle.context_model is None:
            raise BadInputError(
                "this bundle has no EPContext model (it was built with the QNN SDK); run it "
                "with --sdk so qnn-net-run executes its context binary",
                path=str(target),
            )
        session = bundle.session_options()
        return bundle.context_model, {
            "backend": bundle.backend,
            "provider_options": dict(session.get("provider_options", {})),
            "session_config": {},
            "bundle": str(bundle.root),
        }
    if target.is_dir():
        raise BadInputError("folder is not a bundle (no manifest.json)", path=str(target))
    if not target.is_file():
        raise BadInputError("model file not found", path=str(target))
    from studio.core.model.graph import check_model_file

    check_model_file(target)  # a broken file is named as such, not as ORT's load error
    return target, {}


def _target_of(options: dict[str, str]) -> dict[str, Any]:
    from studio.core.engine.sessions import htp_target

    target = htp_target()
    same = (
        str(options.get("soc_model")) == target["soc_model"]
        and str(options.get("htp_arch")) == target["htp_arch"]
    )
    return {
        "device": target["device"] if same else None,
        "soc_model": int(options["soc_model"]) if options.get("soc_model") else None,
        "htp_arch": int(options["htp_arch"]) if options.get("htp_arch") else None,
    }
