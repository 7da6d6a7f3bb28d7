"""``npu-studio import``: a PyTorch or TFLite model to ONNX, checked against its framework.

    npu-studio import SRC -o OUT.onnx [--python PATH] [--input-shape NAME=D0,D1,...]
        [--seed N] [--json] [--timeout S]

SRC is a TorchScript module (``.pt``, from ``torch.jit.save``), a torch.export program (``.pt2``,
from ``torch.export.save``) or a TFLite / LiteRT flatbuffer (``.tflite``). PyTorch sources are
exported in an interpreter that has torch: the studio's own with the ``[torch]`` extra, or
``--python PATH`` (your project's Python; only files come back). Settings chosen for QNN: opset 17
(TorchScript exporter, TFLite reader) or 18 (torch.export exporter), constant folding, static
input shapes, input names kept, module names as node names. The ONNX model's outputs are compared
with the source framework's on the same random inputs (max abs diff, SQNR): a float conversion
must reach 40 dB. OUT.onnx.import.json records the settings and the comparison.
Exit codes: 0 agrees, 1 converted but outputs disagree, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import (
    add_command,
    add_input_shape_arg,
    add_job_args,
    parse_input_shapes,
    print_json,
    run_job,
)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "import", "convert a PyTorch (.pt/.pt2) or TFLite model to ONNX", __doc__
    )
    parser.add_argument("source", help="TorchScript .pt, torch.export .pt2 or .tflite file")
    parser.add_argument("-o", "--output", required=True, help="ONNX model to write")
    parser.add_argument("--python", default=None, metavar="PATH", help="interpreter with torch")
    add_input_shape_arg(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    add_job_args(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from studio.core.importers.jobs import convert
    from studio.core.jobs.protocol import job_kind

    request = {
        "source": args.source,
        "output": args.output,
        "python": args.python,
        "input_shapes": parse_input_shapes(args.input_shape),
        "seed": args.seed,
    }
    record = run_job(job_kind(convert), request, args)
    if args.json:
        print_json(record)
    else:
        print(
            f"wrote {record['output']} ({record['settings'].get('exporter')}, "
            f"opset {record['settings'].get('opset')})"
        )
        for out in record["check"]["outputs"]:
            print(
                f"  {out['name']}: max abs diff {out['max_abs_diff']:.3g}, "
                f"SQNR {out['sqnr_db']:.1f} dB"
            )
        for problem in record["check"]["problems"]:
            print(f"  problem: {problem}")
        print(record["check"]["summary"].split(";")[0])
    return 0 if record["check"]["agrees"] else 1
