"""``npu-studio encodings``: convert encodings files between formats and check them against a model.

    npu-studio encodings convert IN.json -o OUT.json --format FORMAT  (any registered format)
                                 [--model M.onnx] [--skip-unsupported] [--json]
    npu-studio encodings check IN.json [--model M.onnx] [--json]

The input format is detected. With ``--model`` the per-channel axes and bias/weight roles that
QNN and AIMET files leave out come from the model, channel counts are checked against its
weights, and a coverage report (encodings matching no tensor, quantizable tensors without
one) is printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from studio.cli.common import add_command, print_json
from studio.cli.options import add_format_arg
from studio.core.encodings import (
    ModelView,
    coverage,
    load_encodings,
    save_encodings,
)
from studio.core.encodings.formats import ort


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "encodings",
        "convert or check quantization encodings files (QNN, AIMET, ONNX Runtime)",
        __doc__,
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = sub.add_parser("convert", help="convert an encodings file to another format")
    convert.add_argument("input", help="encodings file (format auto-detected)")
    convert.add_argument("-o", "--output", required=True, help="file to write (atomically)")
    add_format_arg(convert, required=True, help="output format")
    _common(convert)
    convert.set_defaults(func=run_convert)
    check = sub.add_parser("check", help="read an encodings file and report on it")
    check.add_argument("input", help="encodings file (format auto-detected)")
    _common(check)
    check.set_defaults(func=run_check)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="ONNX model the encodings belong to")
    parser.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="skip block-quantized entries (with a warning) instead of failing",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")


def _load(args: argparse.Namespace) -> tuple[Any, list[str], ModelView | None]:
    view = ModelView.of(args.model) if args.model else None
    encset, warnings = load_encodings(
        args.input, model=view, skip_unsupported=args.skip_unsupported
    )
    return encset, warnings, view


def _report(args: argparse.Namespace, encset: Any, warnings: list[str], view: Any) -> dict:
    kinds: dict[str, int] = {}
    for enc in encset.values():
        key = "float" if enc.is_float else enc.kind
        kinds[key] = kinds.get(key, 0) + 1
    report: dict[str, Any] = {
        "input": args.input,
        "input_format": encset.meta.get("source_format"),
        "encodings": len(encset),
        "by_kind": kinds,
        "per_channel": sum(1 for e in encset.values() if e.per_channel),
        "warnings": warnings,
    }
    if view is not None:
        report["model"] = args.model
        report["coverage"] = coverage(encset, view).to_json()
    return report


def _print_text(report: dict[str, Any]) -> None:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report["by_kind"].items()))
    print(
        f"{report['input']}: {report['input_format']}, {report['encodings']} encodings ({kinds}; "
        f"{report['per_channel']} per-channel)"
    )
    if "output" in report:
        print(f"wrote {report['output']} ({report['output_format']})")
    cov = report.get("coverage")
    if cov:
        print(f"coverage: {cov['covered']}/{cov['quantizable']} quantizable tensors encoded")
        for key, label in (("unknown_tensors", "not in the model"), ("missing_tensors", "missing")):
            names = cov[key]
            if names:
                shown = ", ".join(names[:10]) + (
                    f" (+{len(names) - 10} more)" if len(names) > 10 else ""
                )
                print(f"  {len(names)} {label}: {shown}")
    for line in report["warnings"]:
        print(f"warning: {line}", file=sys.stderr)


def run_check(args: argparse.Namespace) -> int:
    encset, warnings, view = _load(args)
    report = _report(args, encset, warnings, view)
    print_json(report) if args.json else _print_text(report)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    encset, warnings, view = _load(args)
    if args.format == "ort":
        warnings = warnings + ort.plan(encset).warnings
    save_encodings(encset, args.output, args.format)
    report = _report(args, encset, warnings, view)
    report.update(output=args.output, output_format=args.format)
    print_json(report) if args.json else _print_text(report)
    return 0
