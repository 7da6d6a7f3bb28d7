"""``npu-studio compare``: per-layer and output SQNR of a quantised model against its float model.

    npu-studio compare FLOAT.onnx QUANT.onnx [--backend cpu|htp] [--calib DIR|FILE.npz|random:N]
                       [--samples N] [--device NAME] [--sim-vs-htp [DB]]
                       [--input-shape NAME=D0,...] [--json]

FLOAT is prepared as ``quantize`` prepares it (BatchNorm and constants folded, shapes fixed), then
every quantised activation of QUANT (its QuantizeLinear codes) is paired with the float tensor
of the same name and both models run on the same samples: SQNR = 20 log10(||x|| / ||x - y||),
pooled over samples. ``added`` is what a layer loses beyond its worst input. With
``--backend htp`` the QDQ model runs on QNN HTP with CPU fallback disabled; per-layer values come
from HTP only when the instrumented model runs whole there and gives the plain model's outputs
(the report's notes say which).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

from studio.cli.commands.quantize import add_calibration_args, preprocess_from_args
from studio.cli.common import (
    add_command,
    native_stdout_to_stderr,
    parse_input_shapes,
    print_json,
    stderr_context,
)
from studio.cli.device_option import add_device_arg, device_from_args


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "compare",
        "per-layer and output SQNR of a quantised model vs its float model (CPU or HTP)",
        __doc__,
    )
    parser.add_argument("float_model", help="float ONNX model")
    parser.add_argument("quant_model", help="QDQ ONNX model built from it")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "htp"))
    parser.add_argument("--samples", type=int, default=8, help="samples to compare on (8)")
    parser.add_argument(
        "--sim-vs-htp",
        type=float,
        nargs="?",
        const=3.0,
        metavar="DB",
        help="float vs CPU simulation vs HTP per layer; flag layers whose SQNRs differ by > DB (3)",
    )
    add_calibration_args(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_device_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = device_from_args(args)  # the HTP target of every session this command creates
    from studio.core.accuracy import Analyser
    from studio.core.accuracy.jobs import load_feeds
    from studio.core.calibration import prepare_model
    from studio.core.errors import BadInputError

    if args.samples <= 0:
        raise BadInputError("--samples must be positive")
    ctx = stderr_context(quiet=args.json)
    data = args.calib or f"random:{args.samples}"
    if not args.calib:
        ctx.log("warning: comparing on random inputs (--calib gives real samples)")
    shapes = parse_input_shapes(args.input_shape)
    feeds = load_feeds(
        args.float_model,
        data,
        input_shapes=shapes,
        preprocess=preprocess_from_args(args),
        limit=args.samples,
    )
    # fold BatchNorm/constants the way ``quantize`` prepared it, so that folded weights and
    # tensors carry the same names in both models (values are the same math)
    with tempfile.TemporaryDirectory(prefix="npu-studio-compare-") as tmp:
        float_model = prepare_model(args.float_model, Path(tmp) / "float.onnx", shapes)
    label = f"the {len(feeds)} samples given ({data}), as given"
    if args.sim_vs_htp is not None:
        return _sim_vs_htp(args, float_model, feeds, label)
    with native_stdout_to_stderr():  # the QNN library's banner must not reach stdout
        report = Analyser(float_model, cache_float=False).analyse(
            args.quant_model, feeds, backend=args.backend, ctx=ctx, device=args.device, data=label
        )
    if args.json:
        data_json = report.to_json()
        data_json["float_model"] = str(args.float_model)
        data_json["quant_model"] = str(args.quant_model)
        print_json(data_json)
        return 0
    for note in report.notes:
        print(f"note: {note}")
    print(f"{'tensor':<56} {'op':<18} {'bits':>4} {'SQNR dB':>8} {'added':>6}")
    for layer in report.layers:
        print(
            f"{layer.tensor[:56]:<56} {layer.op_type[:18]:<18} {layer.bitwidth or '-':>4} "
            f"{_fmt(layer.sqnr_db):>8} {_fmt(layer.added_db):>6}"
        )
    for name, value in report.outputs.items():
        where = report.backend
        if report.backend == "htp":
            where = f"htp, for {device.name} htp_arch {device.htp_arch}"
        print(f"output {name}: {_fmt(value)} dB ({where}, {report.samples} samples)")
    print(f"measured on {report.data}; {report.target}")
    if report.weights:
        worst = min(report.weights.items(), key=lambda kv: kv[1])
        print(f"weights: {len(report.weights)} quantised, worst {worst[0]} {_fmt(worst[1])} dB")
    return 0


def _sim_vs_htp(args: argparse.Namespace, float_model: Any, feeds: list, label: str) -> int:
    from studio.core.accuracy.simcheck import compare_sim_htp

    with native_stdout_to_stderr():
        view = compare_sim_htp(
            float_model,
            args.quant_model,
            feeds,
            device=args.device,
            threshold_db=args.sim_vs_htp,
            data=label,
        )
    if args.json:
        print_json(view.to_json())
        return 0
    for note in view.notes:
        print(f"note: {note}")
    print(f"{'tensor':<56} {'op':<16} {'CPU dB':>7} {'HTP dB':>7} {'diff':>6}")
    for row in view.layers:
        htp = "-" if row.htp_db is None else _fmt(row.htp_db)
        diff = "-" if row.diff_db is None else _fmt(row.diff_db)
        flag = "  <- differs" if row.flagged else ""
        print(
            f"{row.tensor[:56]:<56} {row.op_type[:16]:<16} {_fmt(row.cpu_db):>7} {htp:>7} "
            f"{diff:>6}{flag}"
        )
    for name, (cpu, htp) in view.outputs.items():
        print(f"output {name}: CPU {_fmt(cpu)} dB, HTP {_fmt(htp)} dB")
    print(
        f"{len(view.flagged)} layer(s) differ by more than {view.threshold_db:g} dB; "
        f"measured on {view.data}; HTP: {view.target}"
    )
    return 0


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.1f}"
