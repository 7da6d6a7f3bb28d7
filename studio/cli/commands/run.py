"""``npu-studio run``: inference on a model or a compiled bundle, in a worker process.

    npu-studio run MODEL|BUNDLE [--backend htp|cpu|gpu|qnn-cpu] [--config backend_config.json]
                   [--inputs X.npz|DIR] [-o outputs.npz] [--input-shape NAME=1,3,224,224]
                   [--cpu-fallback allow|forbid] [--sdk QNN_SDK_DIR] [--seed N] [--json]

Without ``--inputs`` the model gets random inputs of its shapes and dtypes (and says so). On a
QNN backend the run is refused when any node would fall back to the CPU EP, naming those nodes,
unless ``--cpu-fallback allow`` is given. A bundle runs with the options it was compiled with;
with ``--sdk`` its context binary is run by the SDK's qnn-net-run instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from studio.cli.adb_option import adb_serial, run_on_phone
from studio.cli.common import (
    add_command,
    add_input_shape_arg,
    add_job_args,
    parse_input_shapes,
    print_json,
    run_job,
)
from studio.cli.device_option import add_device_arg, device_from_args
from studio.cli.options import add_cpu_fallback_arg
from studio.cli.plan_option import add_plan_arg, is_chain_bundle, run_chain_bundle, run_with_plan


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "run",
        "run inference on a model or bundle (HTP, CPU, GPU) in a worker process",
        __doc__,
    )
    parser.add_argument("model", help="ONNX model or bundle folder")
    parser.add_argument("--backend", help="htp (default), cpu, gpu or qnn-cpu")
    parser.add_argument("--config", help="backend_config.json")
    parser.add_argument("--inputs", help=".npz, .npy or a folder of NAME.npy files")
    parser.add_argument("-o", "--output", help="write the outputs to this .npz")
    add_input_shape_arg(parser)
    add_cpu_fallback_arg(parser, default="forbid")  # forbid: a partial offload names the nodes
    parser.add_argument("--sdk", help="QNN SDK folder: run a bundle with qnn-net-run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    add_job_args(parser)
    add_plan_arg(parser)  # --plan PLAN.json (npu-studio assign): partitioned execution
    add_device_arg(parser)  # a catalogue target, or adb:SERIAL: the bundle on a phone
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from studio.core.jobs.protocol import job_kind
    from studio.core.toolchain import jobs

    serial = adb_serial(args)
    if serial is not None:  # --device adb:SERIAL: on the phone
        return run_on_phone(args, serial, "run")
    device = device_from_args(args)  # the HTP target of every session this command creates
    if args.plan:
        return run_with_plan(args, "run")
    if is_chain_bundle(args.model):  # compiled with --plan: run its chain
        return run_chain_bundle(args, "run")
    request = {
        "model": args.model,
        "backend": args.backend,
        "config": args.config,
        "inputs": args.inputs,
        "output": args.output,
        "input_shapes": parse_input_shapes(args.input_shape),
        "allow_cpu_fallback": args.cpu_fallback == "allow",
        "sdk": args.sdk,
        "seed": args.seed,
    }
    result = run_job(job_kind(jobs.run), request, args)
    if args.json:
        print_json(result)
        return 0
    where = ", ".join(result.get("providers", []))
    print(f"{result['model']}: ran on {result['backend'].upper()} ({where})")
    if result["backend"] == "htp":
        opts = result.get("provider_options") or {}
        arch = opts.get("htp_arch") or device.htp_arch
        print(f"  HTP numerics for htp_arch {arch} (target {device.label}; x86-64: emulated)")
    if result.get("offload"):
        print(f"  {result['offload']['summary']}")
    if result.get("random_inputs"):
        print(f"  inputs: random (seed {args.seed}), no --inputs given")
    for name, info in result["outputs"].items():
        stats = ""
        if "min" in info:
            stats = f" min {info['min']:.6g} max {info['max']:.6g} mean {info['mean']:.6g}"
        print(f"  output {name}: {info['dtype']} {info['shape']}{stats}")
    if result.get("output_path"):
        print(f"  wrote {result['output_path']}")
    if result.get("note"):
        print(f"  note: {result['note']}")
    for warning in result.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0
