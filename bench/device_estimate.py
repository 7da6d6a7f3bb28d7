"""Validation of the on-device latency estimate against Qualcomm AI Hub's phone measurements.

Models the fit never saw (every AI Hub model with a torchvision constructor outside the fit set,
exported by ``scripts/export_torchvision_models.py``; w8a8 = the studio's own default W8A8 QDQ
model, ``npu-studio quantize MODEL -o Q.onnx --calib random:4``) are estimated for the Samsung
Galaxy S24 and S25 and compared with AI Hub's ``onnx`` runtime figures (ORT + QNN EP, as here).

    python bench/device_estimate.py --float-dir DIR --qdq-dir QDIR [--write] [--json]

Prints the table, then per precision the median absolute relative error and per (phone,
precision) group the Spearman rank correlation. ``--write`` stores those figures in
``resources/devices/estimate_coeffs.json`` (what every estimate's label quotes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core.devices.estimate import COEFFS_PATH, estimate_graph, load_coefficients  # noqa: E402
from studio.core.model.graph import ModelGraph  # noqa: E402

PHONES = ("Samsung Galaxy S24", "Samsung Galaxy S25")
PRECISIONS = {"float": "float_dir", "w8a8": "qdq_dir"}


def spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if len(a) < 3 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--float-dir", type=Path, required=True)
    ap.add_argument("--qdq-dir", type=Path, required=True)
    ap.add_argument("--perf", type=Path, default=ROOT / "resources/devices/aihub_perf.json")
    ap.add_argument("--write", action="store_true", help="store the figures in the coefficients")
    ap.add_argument("--json", action="store_true", help="print only JSON")
    args = ap.parse_args()
    perf = json.loads(args.perf.read_text())["models"]
    coeffs = load_coefficients()
    fit = set(coeffs["provenance"]["fit_models"])
    rows = []
    for precision, attr in PRECISIONS.items():
        folder: Path = getattr(args, attr)
        for path in sorted(folder.glob("*.onnx")):
            model = path.stem
            if model in fit or model not in perf or precision not in perf[model]:
                continue
            graph = ModelGraph.load(path)
            for phone in PHONES:
                measured = perf[model][precision].get(phone, {}).get("ms")
                if not measured:
                    continue
                est = estimate_graph(graph, phone)
                rows.append(
                    {
                        "model": model,
                        "precision": precision,
                        "device": phone,
                        "aihub_ms": measured,
                        "estimated_ms": round(est.total_ms, 4),
                        "rel_err": round((est.total_ms - measured) / measured, 4),
                    }
                )
            if not args.json:
                r = [x for x in rows if x["model"] == model and x["precision"] == precision]
                for x in r:
                    print(
                        f"{model:<20} {precision:<6} {x['device']:<20} AI Hub {x['aihub_ms']:8.3f} ms"
                        f"  estimate {x['estimated_ms']:8.3f} ms  {x['rel_err'] * 100:+6.1f}%",
                        flush=True,
                    )
    summary: dict = {"per_precision": {}, "per_group": {}, "fit_models": sorted(fit)}
    for precision in PRECISIONS:
        errs = [abs(r["rel_err"]) for r in rows if r["precision"] == precision]
        models = sorted({r["model"] for r in rows if r["precision"] == precision})
        summary["per_precision"][precision] = {
            "median_abs_rel_err": float(np.median(errs)) if errs else None,
            "n_models": len(models),
            "models": models,
        }
        for phone in PHONES:
            g = [r for r in rows if r["precision"] == precision and r["device"] == phone]
            summary["per_group"][f"{phone} / {precision}"] = {
                "n": len(g),
                "median_abs_rel_err": float(np.median([abs(r["rel_err"]) for r in g]))
                if g
                else None,
                "spearman": spearman([r["aihub_ms"] for r in g], [r["estimated_ms"] for r in g])
                if g
                else None,
            }
    print(json.dumps({"rows": rows, "summary": summary} if args.json else summary, indent=1))
    if args.write:
        data = json.loads(COEFFS_PATH.read_text())
        validation: dict = {}
        for phone in PHONES:
            validation[phone] = {}
            for precision in PRECISIONS:
                g = summary["per_group"][f"{phone} / {precision}"]
                validation[phone][precision] = {
                    "median_abs_rel_err": g["median_abs_rel_err"],
                    "n": g["n"],
                    "spearman": g["spearman"],
                    "models": sorted(
                        {
                            r["model"]
                            for r in rows
                            if r["device"] == phone and r["precision"] == precision
                        }
                    ),
                    "script": "bench/device_estimate.py",
                }
        data["validation"] = validation
        COEFFS_PATH.write_text(json.dumps(data, indent=1) + "\n")
        print(f"validation figures written to {COEFFS_PATH}", file=sys.stderr)


if __name__ == "__main__":
    main()
