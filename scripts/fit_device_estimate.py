"""Fit the on-device latency model on Qualcomm AI Hub's phone measurements of a FIXED model set.

Why a fixed set: the estimate's error is only meaningful on models the fit never saw, so the fit
uses exactly the torchvision architectures below (random weights: latency does not depend on weight
values, at AI Hub's input sizes) and everything else AI Hub publishes is validation
(``bench/device_estimate.py``). The result, ``resources/devices/estimate_coeffs.json``, records what
it was fitted on, from which qai-hub-models version, and how.

Steps (torch is needed for step 1 only, never by the studio itself)::

    /path/to/torch-venv/bin/python scripts/export_torchvision_models.py DIR      # float ONNX
    for m in DIR/*.onnx: npu-studio quantize $m -o QDIR/$(basename $m) --calib random:4
    python scripts/fit_device_estimate.py --float-dir DIR --qdq-dir QDIR

The model: per node, ``ms = sum_k c_k * feature_k`` (features.py), plus a per-inference constant;
coefficients are non-negative (a feature never makes a model faster) and fitted per device and
precision by least squares on relative error (a 0.3 ms model counts as much as a 30 ms one),
with a ridge term because ten models cannot pin every coefficient on their own. The ridge
strength is chosen per device by leave-one-out on the fit set ONLY (each fit model predicted by
a fit on the other nine; the strength in ``RIDGE_GRID`` with the lowest mean of the float and
w8a8 LOO median errors wins, ties to the stronger): validation models never enter the choice.

Tied and unfitted coefficients: an activation that spills out of VTCM streams from DRAM as
weights do, so ``spill_bytes`` is priced with the ``weight_bytes`` coefficient (one column in
the fit, ``TIED``). A requantised Concat input is priced as one more op with its bytes (in
``nodes`` and ``act_bytes``, features.py); ``concat_bytes`` and ``requant_bytes`` stay in the
features as diagnostics and are not fitted (``NOT_FITTED``, coefficient 0).

Quantised graphs: DRAM bytes (weights, spills) cost the same whatever they hold, so the w8a8 fit
takes those coefficients (``PRECISION_INDEPENDENT``) from the float fit and fits the rest: MAC
rates, per-op and per-activation-byte costs (int8 ops dispatch and move data differently from
fp16 ones; taking those from the float fit too gives a LOO w8a8 error of 14.8% / 12.8% on the
S24 / S25, fitting them 12.3% / 4.8%), and the per-inference constant. Special-function and
normalisation kernels have no int8 fast path (AI Hub measures a ViT slower at w8a8 than at
float), so the w8a8 ``norm_elems`` coefficient is floored at the float one (``NO_INT8_FAST_PATH``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core.devices.catalogue import load_catalogue  # noqa: E402
from studio.core.devices.features import FEATURES, node_features, totals  # noqa: E402
from studio.core.model.graph import ModelGraph  # noqa: E402

# AI Hub model id -> the torchvision constructor and input size it publishes (fit set, issue 13).
FIT_MODELS = {
    "resnet18": ("resnet18", 224),
    "resnet50": ("resnet50", 224),
    "mobilenet_v3_large": ("mobilenet_v3_large", 224),
    "mobilenet_v3_small": ("mobilenet_v3_small", 224),
    "squeezenet1_1": ("squeezenet1_1", 224),
    "inception_v3": ("inception_v3", 299),
    "regnet": ("regnet_x_3_2gf", 224),
    "shufflenet_v2": ("shufflenet_v2_x0_5", 224),
    "convnext_tiny": ("convnext_tiny", 224),
    "resnext101": ("resnext101_32x8d", 224),
}
PRECISIONS = {"float": "float_dir", "w8a8": "qdq_dir"}
# cached features are stale once the featuriser changes: its source is part of the cache stamp
FEATURES_CODE = hashlib.sha256(
    b"".join((ROOT / "studio/core/devices" / f).read_bytes() for f in ("features.py", "folding.py"))
).hexdigest()[:12]
RIDGE_GRID = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
MIN_MODELS = 8
# Work HTP has no int8 fast path for: softmax / layer-norm / GELU kernels and activation x
# activation MatMuls run at least as slowly quantised as in fp16 (AI Hub measures a ViT slower at
# w8a8 than at float). The fit set has almost none of it, so the fit cannot see this; the w8a8
# coefficient of these features is floored at the float one.
NO_INT8_FAST_PATH = ("norm_elems",)
# Costs that do not depend on the precision (see the module docstring): w8a8 takes the float fit's.
PRECISION_INDEPENDENT = ("weight_bytes", "spill_bytes")
# feature -> the feature whose coefficient prices it (same hardware work: DRAM traffic)
TIED = {"spill_bytes": "weight_bytes"}
# diagnostics only: their cost is counted through other features (features.py)
NOT_FITTED = ("concat_bytes", "requant_bytes")


def nnls(a: np.ndarray, b: np.ndarray, iters: int = 20000) -> np.ndarray:
    """Non-negative least squares (Lawson-Hanson active set); small problems only."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    for _ in range(iters):
        if passive.all() or w[~passive].max(initial=-np.inf) <= 1e-12:
            break
        j = np.argmax(np.where(passive, -np.inf, w))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            mask = passive & (z <= 0)
            alpha = np.min(x[mask] / (x[mask] - z[mask]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
        w = a.T @ (b - a @ x)
    return x


def feature_table(folder: Path, cache: Path) -> dict[str, dict[str, float]]:
    """Feature totals per fit model in ``folder`` (cached beside it by file size + mtime)."""
    known = json.loads(cache.read_text()) if cache.exists() else {}
    out = {}
    for model in FIT_MODELS:
        path = folder / f"{model}.onnx"
        if not path.exists():
            print(f"  missing {path}", file=sys.stderr)
            continue
        stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}:{FEATURES_CODE}"
        if known.get(model, {}).get("stamp") != stamp:
            known[model] = {"stamp": stamp, "totals": totals(node_features(ModelGraph.load(path)))}
            cache.write_text(json.dumps(known, indent=1))
        out[model] = known[model]["totals"]
    return out


def fit_group(
    feats: dict[str, dict[str, float]],
    ms: dict[str, float],
    fixed: dict[str, float] | None = None,
    ridge: float = RIDGE_GRID[0],
    models: list[str] | None = None,
) -> dict | None:
    """Coefficients for one (device, precision); ``fixed``: feature -> coefficient taken as given
    (the rest are fitted to what those leave unexplained); ``models``: the fit models to use
    (default all; LOO passes all but one)."""
    fixed = fixed or {}
    names = [m for m in (models or FIT_MODELS) if m in feats and m in ms]
    if len(names) < MIN_MODELS:
        return None

    def column(m: str, k: str) -> float:
        return feats[m].get(k, 0.0) + sum(feats[m].get(t, 0.0) for t, to in TIED.items() if to == k)

    cols = [k for k in FEATURES if k not in TIED and k not in NOT_FITTED]
    x = np.array([[column(m, k) for k in cols] + [1.0] for m in names])
    y = np.array([ms[m] for m in names])
    free = [i for i, k in enumerate(cols) if k not in fixed] + [len(cols)]
    known = sum((x[:, i] * fixed[k] for i, k in enumerate(cols) if k in fixed), np.zeros(len(y)))
    xf = x[:, free]
    scale = xf.max(axis=0)
    scale[scale == 0] = 1.0
    xs = xf / scale / y[:, None]  # rows weighted by 1/y: relative error
    a = np.vstack([xs, ridge * np.eye(xs.shape[1])])
    b = np.concatenate([1.0 - known / y, np.zeros(xs.shape[1])])
    c = np.zeros(x.shape[1])
    c[free] = nnls(a, b) / scale
    for i, k in enumerate(cols):
        if k in fixed:
            c[i] = fixed[k]
    pred = x @ c
    rel = np.abs(pred - y) / y
    coef = dict.fromkeys(FEATURES, 0.0)
    coef.update({k: float(c[i]) for i, k in enumerate(cols)})
    for t, to in TIED.items():
        coef[t] = coef[to]
    return {
        "coef": coef,
        "intercept_ms": float(c[-1]),
        "fit_models": names,
        "fit_median_abs_rel_err": float(np.median(rel)),
        **({"taken_from_float": sorted(fixed)} if fixed else {}),
    }


def predict(group: dict, totals_: dict[str, float]) -> float:
    """A fitted group's estimate of one model from its feature totals (as estimate.py sums it)."""
    return group["intercept_ms"] + sum(group["coef"][k] * totals_.get(k, 0.0) for k in FEATURES)


def fit_device(
    feats: dict[str, dict[str, dict[str, float]]],
    ms: dict[str, dict[str, float]],
    ridge: float,
    models: list[str] | None = None,
) -> dict[str, dict]:
    """Float then w8a8 fits of one device (w8a8 takes the precision-independent terms)."""
    out: dict[str, dict] = {}
    for precision in PRECISIONS:  # float first: w8a8 takes its precision-independent terms
        fl = out.get("float")
        fixed = (
            {k: fl["coef"][k] for k in PRECISION_INDEPENDENT}
            if precision != "float" and fl
            else None
        )
        group = fit_group(feats[precision], ms[precision], fixed, ridge, models)
        if group:
            out[precision] = group
    fl, q = out.get("float"), out.get("w8a8")
    if fl and q:
        for k in NO_INT8_FAST_PATH:
            q["coef"][k] = max(q["coef"][k], fl["coef"][k])
        q["floored_at_float"] = list(NO_INT8_FAST_PATH)
    return out


def leave_one_out(
    feats: dict[str, dict[str, dict[str, float]]], ms: dict[str, dict[str, float]], ridge: float
) -> dict[str, float | None]:
    """Median relative error of each fit model predicted by a fit on the other fit models."""
    errs: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for left in FIT_MODELS:
        fit = fit_device(feats, ms, ridge, [m for m in FIT_MODELS if m != left])
        for p in PRECISIONS:
            if p in fit and left in ms[p] and left in feats[p]:
                errs[p].append(abs(predict(fit[p], feats[p][left]) - ms[p][left]) / ms[p][left])
    return {p: (float(np.median(e)) if e else None) for p, e in errs.items()}


def choose_ridge(
    feats: dict[str, dict[str, dict[str, float]]], ms: dict[str, dict[str, float]]
) -> tuple[float, dict[str, dict[str, float | None]]]:
    """The RIDGE_GRID strength with the lowest mean LOO error (fit set only), and every score."""
    table = {str(r): leave_one_out(feats, ms, r) for r in RIDGE_GRID}

    def score(r: float) -> float:
        vals = [v for v in table[str(r)].values() if v is not None]
        return float(np.mean(vals)) if vals else float("inf")

    best = min(RIDGE_GRID, key=lambda r: (round(score(r), 6), -r))
    return best, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--float-dir", type=Path, required=True)
    ap.add_argument("--qdq-dir", type=Path, required=True)
    ap.add_argument("--perf", type=Path, default=ROOT / "resources/devices/aihub_perf.json")
    ap.add_argument("--out", type=Path, default=ROOT / "resources/devices/estimate_coeffs.json")
    args = ap.parse_args()
    perf = json.loads(args.perf.read_text())
    feats = {
        "float": feature_table(args.float_dir, args.float_dir / "features_cache.json"),
        "w8a8": feature_table(args.qdq_dir, args.qdq_dir / "features_cache.json"),
    }
    cat = {d.name: d for d in load_catalogue().devices}
    devices_out = {}
    for dev_name, dev in sorted(cat.items()):
        ms = {
            precision: {
                m: perf["models"][m][precision][dev_name]["ms"]
                for m in FIT_MODELS
                if dev_name in perf["models"].get(m, {}).get(precision, {})
            }
            for precision in PRECISIONS
        }
        if len(ms["float"]) < MIN_MODELS:
            continue
        ridge, loo = choose_ridge(feats, ms)
        groups = fit_device(feats, ms, ridge)
        if "float" not in groups:
            continue
        entry = {
            "chipset_id": dev.chipset_id,
            "htp_arch": dev.htp_arch,
            "ridge": ridge,
            "loo_median_abs_rel_err": loo,
            "precisions": groups,
        }
        devices_out[dev_name] = entry
        figs = ", ".join(
            f"{p} fit err {g['fit_median_abs_rel_err'] * 100:.1f}%"
            f" (LOO {loo[str(ridge)][p] * 100:.1f}%)"
            for p, g in groups.items()
            if loo[str(ridge)].get(p) is not None
        )
        print(f"{dev_name}: ridge {ridge}, {figs}")
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    out = {
        "schema_version": 1,
        "provenance": {
            "script": "scripts/fit_device_estimate.py",
            "measurements": perf["source"],
            "runtime": "onnx (ONNX Runtime + QNN EP on the phone)",
            "fit_models": list(FIT_MODELS),
            "fit_architectures": {
                k: {"torchvision": v[0], "input": v[1]} for k, v in FIT_MODELS.items()
            },
            "weights": "random (latency does not depend on weight values)",
            "w8a8_models": "npu-studio quantize MODEL -o Q.onnx --calib random:4 (studio default W8A8 QDQ)",
            "features": list(FEATURES),
            "ridge": "per device, by leave-one-out on the fit set only (devices.*.ridge, "
            f"devices.*.loo_median_abs_rel_err; grid {list(RIDGE_GRID)})",
            "selection": "hyperparameters (the ridge per device; HMX_CHANNEL_TILE in features.py) "
            "are chosen by leave-one-out on the fit models only; the validation figures "
            "(bench/device_estimate.py) never enter a choice",
            "tied": TIED,
            "not_fitted": list(NOT_FITTED),
            "w8a8_floored_at_float": list(NO_INT8_FAST_PATH),
            "w8a8_taken_from_float": list(PRECISION_INDEPENDENT),
            "fitted_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        },
        "devices": devices_out,
        # validation figures are measured by bench/device_estimate.py --write on held-out models
        "validation": old.get("validation", {}),
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out} ({len(devices_out)} devices)")


if __name__ == "__main__":
    main()
