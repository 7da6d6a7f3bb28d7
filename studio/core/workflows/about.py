"""What this install is: versions, the QNN SDK it carries, the backends and the target device.

Shown by Help > About and written into reports, so a figure can be traced to the software that
produced it (a new onnxruntime-qnn brings a new QNN SDK, and with it other numerics).
"""

from __future__ import annotations

import importlib
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from studio import __version__


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def target_device() -> dict[str, Any]:
    """The device estimates are for (the device catalogue's default), or why there is none."""
    try:
        catalogue = importlib.import_module("studio.core.devices.catalogue")
        device = catalogue.resolve_device(None)
    except Exception as exc:  # noqa: BLE001 - the catalogue is optional to this page
        return {"name": None, "reason": f"no device catalogue here ({type(exc).__name__})"}
    data = device.to_json() if hasattr(device, "to_json") else dict(vars(device))
    name = getattr(device, "label", None) or data.get("name") or str(device)
    return {"name": name, **{k: v for k, v in data.items() if k != "name"}}


def about_facts(backends: list[Any] | None = None) -> dict[str, Any]:
    """Versions of the studio and what it runs on; ``backends`` are probe statuses, if known."""
    from studio.core.engine.registry import versions

    found = versions()
    facts: dict[str, Any] = {
        "npu-studio": __version__,
        "python": platform.python_version(),
        "onnx": _dist_version("onnx"),
        "onnxruntime": found.get("onnxruntime", _dist_version("onnxruntime")),
        "onnxruntime-qnn": found.get("onnxruntime_qnn", "not installed"),
        "QNN SDK (in onnxruntime-qnn)": found.get("qnn_sdk", "unknown"),
        "numpy": _dist_version("numpy"),
        "netron": _dist_version("netron"),
        "host": f"{platform.system()} {platform.machine()} ({platform.platform(terse=True)})",
        "packaged app": bool(getattr(sys, "frozen", False)),
        "target device": target_device(),
    }
    if backends is not None:
        facts["backends"] = [
            {
                "name": b.name,
                "available": bool(b.available),
                "why": (b.note if b.available else b.reason) or "",
            }
            for b in backends
        ]
    return facts
