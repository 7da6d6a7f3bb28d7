"""``npu-studio pipeline``: inspect -> quantise -> compile -> profile -> report, headless.

    npu-studio pipeline MODEL -o DIR [--calib DATA] [--act-bits 8|16] [--runs N] [--warmup N]
                        [--input-shape NAME=1,3,224,224] [--no-cpu-baseline] [--json]

Without ``--calib`` the model is calibrated on random data (said in the report: accuracy is then
not meaningful, latency is). HTP is used when this machine has it (the simulator on x86-64);
otherwise the profile runs on the CPU and the report says so. Writes DIR/report.html and
DIR/pipeline.json (stages, timings, outputs, notes).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from studio.cli.common import (
    add_command,
    add_input_shape_arg,
    parse_input_shapes,
    print_json,
    stderr_context,
)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "pipeline",
        "inspect, quantise, compile, profile and write a report in one go",
        __doc__,
    )
    parser.add_argument("model", help="ONNX model (float or already quantised)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--calib", help="calibration data: image folder, .npy/.npz, random:N")
    parser.add_argument("--act-bits", type=int, default=8, choices=(8, 16))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    add_input_shape_arg(parser)
    parser.add_argument(
        "--no-cpu-baseline", action="store_true", help="skip profiling the original on CPU"
    )
    parser.add_argument(
        "--pdf", action="store_true", help="also print the report to report.pdf (QtWebEngine)"
    )
    parser.add_argument("--json", action="store_true", help="print pipeline.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from studio.core.workflows.pipeline import run_pipeline

    result = run_pipeline(
        args.model,
        args.output,
        calib=args.calib,
        act_bits=args.act_bits,
        runs=args.runs,
        warmup=args.warmup,
        input_shapes=parse_input_shapes(args.input_shape) or None,
        compare_cpu=not args.no_cpu_baseline,
        ctx=stderr_context(quiet=args.json),
    )
    if args.pdf:
        from studio.ui.widgets.html_export import export_html

        report = result["stages"]["report"]["output"]
        result["report_pdf"] = export_html(report, pdf=str(Path(report).with_suffix(".pdf")))["pdf"]
    if args.json:
        print_json(result)
        return 0
    for name, stage in result["stages"].items():
        if stage["status"] == "ok":
            print(f"{name:9s} ok    {stage['elapsed_s']:7.2f} s")
        else:
            print(f"{name:9s} {stage['status']}: {stage.get('reason', '')}")
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"report: {result['stages']['report']['output']}")
    if result.get("report_pdf"):
        print(f"pdf:    {result['report_pdf']}")
    return 0
