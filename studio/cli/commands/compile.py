"""``npu-studio compile``: build a QNN context binary and write a deployment bundle.

    npu-studio compile MODEL --backend htp -o BUNDLE_DIR [--soc-model N] [--htp-arch N]
    npu-studio compile MODEL --plan PLAN.json -o BUNDLE_DIR
                       [--config backend_config.json] [--sdk QNN_SDK_DIR] [--encodings enc.json]
                       [--input-shape NAME=D0,D1,...] [--json]

Without an SDK (no ``--sdk``, no ``QNN_SDK_ROOT``) onnxruntime-qnn's EPContext writes the context
binary; the result is re-loaded and run against the source model before the bundle is called
done. With an SDK, qnn-onnx-converter -> qnn-model-lib-generator -> qnn-context-binary-generator
run with their output in the log. The bundle holds context_binaries/, quantization_config.json,
input_specs.json and a manifest.json with checksums.

With ``--plan`` (from ``npu-studio assign``) the bundle holds the plan's chain: a context binary
per HTP segment (context_binaries/segmentN_htp.bin), the ONNX sub-model of each CPU segment
(segments/segmentN_cpu.onnx), plan.json, and ``segments: [...]`` in its manifest. ``npu-studio
run BUNDLE`` and ``profile BUNDLE`` execute that chain with per-segment timings.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from studio.cli.common import (
    add_command,
    add_input_shape_arg,
    add_job_args,
    parse_input_shapes,
    print_json,
    run_job,
)
from studio.cli.device_option import add_device_arg, device_from_args


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "compile",
        "compile a model to a QNN context binary and write a deployment bundle",
        __doc__,
    )
    parser.add_argument("model", help="ONNX model (QDQ-quantised, or float for fp16)")
    parser.add_argument("--backend", default="htp", help="target backend (htp)")
    parser.add_argument("-o", "--output", required=True, help="bundle folder to write")
    parser.add_argument("--soc-model", type=int, help="QNN soc_model (e.g. 60)")
    parser.add_argument("--htp-arch", type=int, help="HTP architecture (68, 69, 73, 75, 79, 81)")
    parser.add_argument("--config", help="backend_config.json")
    parser.add_argument("--sdk", help="QNN SDK folder (default: $QNN_SDK_ROOT, else embedded)")
    parser.add_argument("--encodings", help="encodings JSON for the SDK converter")
    parser.add_argument(
        "--plan",
        metavar="PLAN.json",
        help="compile a backend plan (npu-studio assign): one context binary per HTP segment, "
        "one ONNX file per CPU segment",
    )
    add_input_shape_arg(parser)
    add_job_args(parser)
    add_device_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from studio.core.jobs.protocol import job_kind
    from studio.core.toolchain.jobs import compile_bundle

    device = device_from_args(args)  # also the HTP target of a --plan bundle's segments
    if args.plan:
        return _run_plan(args)
    explicit = args.soc_model is not None or args.htp_arch is not None
    request = {
        "model": args.model,
        "backend": args.backend,
        "output": args.output,
        # --soc-model/--htp-arch win; else the target device's
        "soc_model": args.soc_model if explicit else device.soc_model,
        "htp_arch": args.htp_arch if explicit else device.htp_arch,
        "device": None if explicit else device.name,
        "config": args.config,
        "sdk": args.sdk,
        "encodings": args.encodings,
        "input_shapes": parse_input_shapes(args.input_shape),
    }
    result = run_job(job_kind(compile_bundle), request, args)
    if args.json:
        print_json(result)
        return 0
    print(f"bundle written: {result['bundle']}")
    for path in result.get("context_binaries", []):
        print(f"  context binary: {path}")
    offload = result.get("offload")
    if offload:
        if offload["full_offload"]:
            print(f"  fully offloaded to {args.backend.upper()}")
        else:
            names = ", ".join(n["name"] for n in offload["cpu_nodes"])
            print(f"  nodes left on CPU: {names}")
    verify = result.get("verify")
    if verify:
        print(
            "  verified: re-loaded context model matches the source on "
            f"{args.backend.upper()} (max |diff| {verify['max_abs_diff_vs_source_on_backend']:.3g}); "
            f"vs CPU reference max |diff| {verify['max_abs_diff_vs_cpu']:.3g}"
        )
    for warning in result.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _run_plan(args: argparse.Namespace) -> int:
    """``compile MODEL --plan PLAN.json``: the heterogeneous bundle, built in the worker."""
    from studio.core.errors import BadInputError
    from studio.core.jobs.protocol import job_kind
    from studio.core.workflows.plan_bundle import compile_plan_job

    for flag in ("config", "sdk", "encodings", "soc_model", "htp_arch"):
        if getattr(args, flag, None):
            raise BadInputError(f"--{flag.replace('_', '-')} cannot be combined with --plan")
    request = {
        "model": args.model,
        "plan": args.plan,
        "output": args.output,
        "input_shapes": parse_input_shapes(args.input_shape) or None,
    }
    device_from_args(args)  # the HTP target every session (compile and verify) is made for
    result = run_job(job_kind(compile_plan_job), request, args)
    if args.json:
        print_json(result)
        return 0
    print(f"bundle written: {result['bundle']}")
    for seg in result["segments"]:
        print(
            f"  segment {seg['index']} {seg['backend'].upper():4s} {seg['nodes']:4d} nodes  "
            f"{seg['file']}  sha256 {seg['sha256'][:12]}"
        )
    for warning in result.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0
