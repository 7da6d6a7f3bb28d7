"""``npu-studio estimate``: predicted latency of a model on a Snapdragon device's NPU.

    npu-studio estimate MODEL [--device NAME|CHIPSET] [--json] [--top N] [--no-cache]
        [--assume KEY=VALUE ...] [--assumptions FILE.json]

The estimate is the device model's (studio.core.devices.estimate): per-node features of the graph
as HTP runs it (a float model in fp16, a QDQ model at its own int8/int16 precisions), with
coefficients fitted on Qualcomm AI Hub phone measurements of a fixed model set. The label carries
its measured error on held-out models. ``--json`` prints ``total_ms`` and ``nodes: [{id, op_type,
ms}]`` at the top level, and ``overlay``: the same per-node ms as a NodeOverlay (unit, kind
estimated, source with the error). Estimates are cached by model content hash. The phone-CPU
figure beside it uses the assumed CPU rates, changed as for ``assign`` (``--assume``,
``--assumptions``).
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import add_assumption_args, add_command, assumptions_from_args, print_json
from studio.cli.device_option import add_device_arg, device_from_args
from studio.core.devices.estimate import estimate_model


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "estimate", "estimate a model's latency on a device's NPU", __doc__
    )
    parser.add_argument("model", help="ONNX model (float or QDQ)")
    add_device_arg(parser)
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.add_argument("--top", type=int, default=10, help="slowest nodes to list (default 10)")
    parser.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    add_assumption_args(
        parser, "change an assumed constant of the phone-CPU figure, e.g. cpu_macs_per_ms=4e7"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = device_from_args(args)
    assumptions = assumptions_from_args(args)
    est = estimate_model(args.model, device, use_cache=not args.no_cache, assumptions=assumptions)
    if args.json:
        # ``overlay``: the per-node figures as the graph and the project carry them (core/overlay)
        print_json({**est.to_json(), "overlay": est.overlay().to_json()})
        return 0
    print(est.label)
    print(f"target     {est.device_label}")
    print(
        f"precision  {est.precision}    nodes {len(est.nodes)}    overhead {est.overhead_ms:.3f} ms"
    )
    print(f"phone CPU  {est.cpu_label}")
    for note in est.notes:
        print(f"note       {note}")
    print(f"slowest {min(args.top, len(est.nodes))} nodes (estimated ms):")
    for n in sorted(est.nodes, key=lambda n: -n.ms)[: args.top]:
        print(f"  {n.ms:9.4f}  {n.op_type:<20} {n.id}")
    return 0
