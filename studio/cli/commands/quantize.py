"""``npu-studio quantize``: calibrate once, build a QNN-ready QDQ model, optionally mixed precision.

    npu-studio quantize MODEL -o OUT.onnx [--calib DIR|FILE.npz|FILE.npy|random:N]
        [--eval DATA] [--method minmax|percentile|entropy|mse] [--percentile P] [--act-bw 8|16] [--weight-bw 8|4]
        [--per-channel | --no-per-channel] [--encodings IN.json]
        [--export-encodings OUT.json --format FORMAT]  (any registered encodings format)
        [--auto-mp --target-sqnr DB [--max-steps N] [--latency-budget-ms MS]
         [--mp-techniques seqmse,adaround|none] [--mp-backend cpu|htp] [--mp-rank gain|measured] [--mp-cycles]]
        [--mean R,G,B --std R,G,B --layout NCHW|NHWC]
        [--input-shape NAME=D0,D1,...] [--cache-dir DIR] [--plan PLAN.json] [--check-htp] [--json]

Calibration statistics are cached by model + data hash, so re-running with another method,
bitwidth or encodings file does not run the model over the data again. ``--encodings`` imports a
QNN / AIMET / ORT file and keeps its scales and offsets exactly. The output SQNR reported is
measured on CPU (float vs the written QDQ model; on HTP with ``--mp-backend htp``, for the target
device) on data calibration did not see: ``--eval``, else the last quarter of ``--calib`` (which
calibration then leaves out); with under 16 samples all of them, and the figure says so. ``--mp-cycles`` also measures each point of the curve on
QNN HTP (accelerator cycles of one inference, CPU fallback disabled; simulated on x86-64) so
accuracy and speed can be weighed together. ``--auto-mp`` chooses per layer among 16-bit
activations, 8-bit weights (from 4) and the techniques of ``--mp-techniques`` (default seqmse),
by SQNR gained per millisecond of the target device's latency estimate; ``--latency-budget-ms``
stops it before a move whose estimated cost would exceed the budget.
Nothing is written unless everything succeeded.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import (
    add_command,
    add_input_shape_arg,
    native_stdout_to_stderr,
    parse_input_shapes,
    print_json,
    stderr_context,
)
from studio.cli.device_option import add_device_arg, device_from_args
from studio.cli.options import add_format_arg, add_method_arg
from studio.core.accuracy.jobs import DEFAULT_EVAL_SAMPLES
from studio.core.errors import BadInputError
from studio.core.profiling.cycles import DEFAULT_RUNS

EVAL_SAMPLES = DEFAULT_EVAL_SAMPLES


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "quantize",
        "calibrate and write a QNN-ready QDQ model (with optional auto mixed precision)",
        __doc__,
    )
    parser.add_argument("model", help="float ONNX model")
    parser.add_argument("-o", "--output", required=True, help="QDQ model to write")
    add_calibration_args(parser)
    add_method_arg(parser)
    parser.add_argument("--percentile", type=float, default=99.99, help="for --method percentile")
    parser.add_argument("--act-bw", type=int, default=8, choices=(8, 16), help="activation bits")
    parser.add_argument("--weight-bw", type=int, default=8, choices=(4, 8, 16), help="weight bits")
    parser.add_argument(
        "--block-size",
        type=int,
        help="with --weight-bw 4: block-wise INT4 (QNN BQ/LPBQ) in blocks of this many input "
        "channels where the target's HTP takes it (1x1 Conv, Gemm, MatMul; 16-bit activations; "
        "HTP v69+); other weights stay per-channel, with a warning",
    )
    parser.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-channel weights for Conv/Gemm (default on)",
    )
    parser.add_argument(
        "--eval",
        help="held-out data for the SQNR figures (default: the last quarter of --calib, which "
        "calibration then does not use; under 16 samples all of them, labelled)",
    )
    parser.add_argument("--plan", help="a saved quant_plan JSON (overrides the flags above)")
    parser.add_argument("--encodings", help="import encodings (QNN, AIMET 1/2, ORT): kept exactly")
    parser.add_argument("--export-encodings", help="also write the model's encodings here")
    add_format_arg(parser, default="qnn", help="format of --export-encodings (default qnn)")
    parser.add_argument(
        "--techniques",
        help="post-training techniques, comma-separated: cle, bias-correction, adaround, seqmse; "
        "or auto (the best combination by held-out output SQNR)",
    )
    parser.add_argument("--auto-mp", action="store_true", help="promote tensors to 16 bit")
    parser.add_argument("--target-sqnr", type=float, help="output SQNR target (dB) for --auto-mp")
    parser.add_argument("--max-steps", type=int, default=10, help="--auto-mp step budget")
    parser.add_argument(
        "--latency-budget-ms",
        type=float,
        help="--auto-mp: stop before a step whose estimated latency on the target device "
        "(--device) exceeds this many ms",
    )
    parser.add_argument(
        "--mp-techniques",
        default="seqmse",
        help="--auto-mp: per-layer technique moves it may choose beside precision, "
        "comma-separated: seqmse, adaround; or none (default seqmse)",
    )
    parser.add_argument(
        "--mp-backend",
        default="cpu",
        choices=("cpu", "htp"),
        help="where --auto-mp measures SQNR (default cpu; htp runs every step on QNN HTP)",
    )
    parser.add_argument(
        "--mp-rank",
        default="gain",
        choices=("gain", "measured"),
        help="--auto-mp: rank 16-bit moves by estimated added error (gain, default) or by each "
        "activation's measured sensitivity (measured: one extra run per activation first; finds "
        "tensors in series that only gain together)",
    )
    parser.add_argument(
        "--mp-cycles",
        action="store_true",
        help="--auto-mp: measure the HTP cycles of every point of the curve (QNN HTP profiler)",
    )
    parser.add_argument(
        "--check-htp",
        action="store_true",
        help="open the result on QNN HTP with CPU fallback disabled and report full offload",
    )
    parser.add_argument(
        "--mse-threshold",
        type=float,
        help="list tensors whose quantise-dequantise MSE / mean square exceeds this (e.g. 1e-3)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_device_arg(parser)
    parser.set_defaults(func=run)


def add_calibration_args(parser: argparse.ArgumentParser) -> None:
    """Data-source flags shared with ``npu-studio compare``."""
    parser.add_argument(
        "--calib",
        default=None,
        help="image folder, .npy/.npz file or folder, or random:N (default random:8, warned)",
    )
    parser.add_argument("--mean", help="image mean per channel, e.g. 0.485,0.456,0.406")
    parser.add_argument("--std", help="image std per channel, e.g. 0.229,0.224,0.225")
    parser.add_argument("--scale", type=float, default=1.0 / 255.0, help="pixel scale (1/255)")
    parser.add_argument("--layout", choices=("NCHW", "NHWC"), help="image input layout")
    parser.add_argument("--bgr", action="store_true", help="feed images as BGR")
    parser.add_argument("--cache-dir", help="calibration cache folder")
    add_input_shape_arg(parser)


def preprocess_from_args(args: argparse.Namespace):
    from studio.core.calibration import Preprocess

    def floats(text: str | None, name: str, default: list[float]) -> list[float]:
        if not text:
            return default
        try:
            return [float(v) for v in text.split(",")]
        except ValueError as exc:
            raise BadInputError(f"--{name} '{text}': expected comma-separated numbers") from exc

    return Preprocess(
        layout=args.layout,
        mean=floats(args.mean, "mean", [0.0, 0.0, 0.0]),
        std=floats(args.std, "std", [1.0, 1.0, 1.0]),
        scale=args.scale,
        color="BGR" if args.bgr else "RGB",
    )


def _plan(args: argparse.Namespace):
    from studio.core.atomic import read_json_strict
    from studio.core.errors import ConfigError
    from studio.core.quantize import QuantPlan

    if args.plan:
        return QuantPlan.from_json(read_json_strict(args.plan, error_type=ConfigError))
    return QuantPlan(
        activation_bitwidth=args.act_bw,
        weight_bitwidth=args.weight_bw,
        per_channel=args.per_channel,
        method=args.method,
        percentile=args.percentile,
        weight_block_size=args.block_size,
    )


def run(args: argparse.Namespace) -> int:
    device_from_args(args)  # the HTP target of every session this command creates
    with native_stdout_to_stderr():  # the QNN library's banner must not reach stdout
        summary = _quantize(args)
    if args.json:
        print_json(summary)
    else:
        _print_human(summary, args)
    return 0


def _quantize(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as a :class:`QuantizeRequest`; the workflow itself is in core."""
    from studio.core.workflows.quantize import QuantizeRequest, check_request, quantize_model

    request = QuantizeRequest(
        model=args.model,
        output=args.output,
        calib=args.calib or "random:8",
        eval=args.eval,
        plan=_plan(args),
        input_shapes=parse_input_shapes(args.input_shape),
        preprocess=preprocess_from_args(args),
        cache_dir=args.cache_dir,
        encodings=args.encodings,
        techniques=args.techniques,
        auto_mp=args.auto_mp,
        target_sqnr=args.target_sqnr,
        max_steps=args.max_steps,
        latency_budget_ms=args.latency_budget_ms,
        mp_techniques=args.mp_techniques,
        mp_backend=args.mp_backend,
        mp_rank=args.mp_rank,
        mp_cycles=args.mp_cycles,
        export_encodings=args.export_encodings,
        export_format=args.format,
        check_htp=args.check_htp,
        mse_threshold=args.mse_threshold,
        eval_samples=EVAL_SAMPLES,
    )
    check_request(request)  # a bad combination of flags fails before any work
    return quantize_model(request, stderr_context(quiet=False)).to_json()


def _print_human(summary: dict[str, Any], args: argparse.Namespace) -> None:
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
    cal = summary["calibration"]
    print(
        f"calibrated on {cal['samples']} samples ({'cached' if cal['cache_hit'] else 'new pass'}),"
        f" method {cal['method']}"
    )
    print(
        f"wrote {summary['output']}: A{summary['activation_bitwidth']}"
        f"W{summary['weight_bitwidth']}, {summary['encodings_count']} encodings, "
        f"{len(summary['wide_tensors'])} 16-bit activations"
    )
    db = summary["output_sqnr_db"]
    db_text = f"{db:.1f}" if isinstance(db, float) else str(db)
    where = summary["sqnr_backend"].upper()
    print(f"output SQNR ({where}, {summary['sqnr_samples']} samples): {db_text} dB")
    print(f"  measured on {summary['sqnr_data']['label']}; {summary['sqnr_target']}")
    if summary["curve"]:
        print(curve_table(summary["curve"]))
        if summary["curve_cycles"]:
            print(
                f"  HTP cycles: accelerator cycles of one inference, lowest of {DEFAULT_RUNS} "
                "profiled runs; on x86-64 the simulator's counts, which rise when the host is busy"
            )
    extra = summary.get("auto_mp") or {}
    if extra:
        print(
            f"  est. ms: estimated latency on {extra['estimated_for']} (device model; see "
            "`npu-studio estimate`); Pareto points (SQNR vs est. ms): steps "
            + ", ".join(map(str, extra["pareto_steps"]))
        )
        print(f"  chosen point: {extra['estimate_label']}")
        if extra.get("techniques"):
            print(
                "  techniques per layer: "
                + ", ".join(f"{w} {k}" for w, k in sorted(extra["techniques"].items()))
            )
        if extra.get("stopped_by_budget"):
            print(
                "  stopped: no further move fits the latency budget "
                f"{extra['latency_budget_ms']:g} ms (estimated on {extra['estimated_for']})"
            )
    if summary["promoted"]:
        print(
            f"widened (activations to 16 bit, 4-bit weights to 8): {', '.join(summary['promoted'])}"
        )
    if args.export_encodings:
        print(f"encodings ({args.format}) written to {args.export_encodings}")
    tech = summary.get("techniques")
    if tech:
        print(f"techniques: {'+'.join(tech['techniques']) or 'none (default was best)'}")
        for cand in tech.get("tried", []):
            db = cand.get("output_sqnr_db")
            shown = f"{db:.2f} dB" if isinstance(db, float) else cand.get("skipped", "")
            print(f"  tried {'+'.join(cand['techniques']) or 'none'}: {shown}")
        layers = sorted(tech["layers"], key=lambda e: e["before_db"] - e["after_db"])[:8]
        if layers:
            print("  per-layer weight-only output SQNR, before -> after (largest gains):")
        for e in layers:
            print(f"    {e['node'][:50]:<50} {e['before_db']:6.1f} -> {e['after_db']:6.1f} dB")
    mse = summary.get("quant_mse_over")
    if mse is not None:
        print(f"{len(mse['tensors'])} tensor(s) above relative MSE {mse['threshold']:g}")
        for item in mse["tensors"][:10]:
            print(f"  {item['tensor']}: {item['relative_mse']:.2e}")
    offload = summary["htp_full_offload"]
    if offload is not None:
        print("QNN HTP: runs fully offloaded" if offload["ok"] else f"QNN HTP: {offload['reason']}")


def curve_table(curve: list[dict[str, Any]]) -> str:
    """The auto-MP curve as a table: 16-bit tensors, output SQNR and, when measured, HTP cycles
    of each point (a column of '-' would suggest a measurement that was not made: it is left out)."""
    with_cycles = any(p.get("cycles") is not None for p in curve)
    with_est = any(p.get("estimated_ms") is not None for p in curve)
    head = f"  {'step':>4}  {'16-bit':>6}  {'SQNR dB':>8}"
    head += f"  {'HTP cycles':>12}" if with_cycles else ""
    head += f"  {'est. ms':>8}" if with_est else ""
    lines = [head + "  point"]
    for p in curve:
        db = p["output_sqnr_db"]
        line = f"  {p['step']:>4}  {p['wide_tensors']:>6}  "
        line += f"{db:>8.2f}" if isinstance(db, float) else f"{db!s:>8}"
        if with_cycles:
            cycles = p.get("cycles")
            line += f"  {cycles:>12,.0f}" if cycles is not None else f"  {'-':>12}"
        if with_est:
            est = p.get("estimated_ms")
            line += f"  {est:>8.3f}" if est is not None else f"  {'-':>8}"
        tried = ", ".join(_move_text(m) for m in p.get("moves", [])) or (
            ", ".join(p["promoted"]) or "(start)"
        )
        lines.append(f"{line}  {'kept' if p['kept'] else 'undone'}: {tried}")
    return "\n".join(lines)


MOVE_TEXT = {
    "act16": "16-bit",
    "weight8": "8-bit weight",
    "seqmse": "seqmse",
    "adaround": "adaround",
}


def _move_text(move: dict[str, Any]) -> str:
    """One move of the curve: what changed on which tensor, with its predicted est. ms."""
    text = f"{MOVE_TEXT.get(move['kind'], move['kind'])} {move['tensor']}"
    if move.get("predicted_ms") is not None:
        text += f" ({move['predicted_ms']:+.4f} est. ms)"
    return text
