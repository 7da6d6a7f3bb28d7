"""``npu-studio inspect``: what a model is, before doing anything with it.

    npu-studio inspect MODEL [--json] [--input-shape NAME=1,3,224,224 ...] [--top N]

Prints opset, IR version, producer, inputs and outputs (names, shapes, dtypes), node count, the
op-type histogram, total parameters and MACs, and which input dims are dynamic (those need
``--input-shape`` for compilation and exact MACs). ``--json`` prints ``ModelGraph.summary()``,
the same data the GUI's status bar and reports use. A file that is not a valid model (empty,
truncated, another format, failing the ONNX checker, external data missing or outside the model's
folder, a cycle) is reported in one line with exit code 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import add_command, add_input_shape_arg, parse_input_shapes, print_json


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "inspect",
        "show a model's inputs/outputs, ops, parameters, MACs and dynamic dims",
        __doc__,
    )
    parser.add_argument("model", help="ONNX model file")
    add_input_shape_arg(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--top", type=int, default=15, help="op types to list (default 15)")
    parser.set_defaults(func=run)


def _shape(shape: Any) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _count(value: int) -> str:
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{value:,} ({value / threshold:.3g} {suffix})"
    return f"{value:,}"


def format_summary(s: dict[str, Any], top: int = 15) -> str:
    """The human-readable report (kept apart from ``run`` so tests can read it directly)."""
    lines = [
        f"Model      {s['path']}",
        f"Name       {s['name']}",
        f"Producer   {s['producer'] or '(not recorded)'}",
        f"IR         {s['ir_version']}    opset {s['opset']}"
        + "".join(f"    {d} {v}" for d, v in s["opsets"].items() if d != "ai.onnx"),
        f"Nodes      {s['node_count']:,}"
        + (f"  ({s['unnamed_nodes']:,} without a unique name)" if s["unnamed_nodes"] else ""),
        f"Parameters {_count(s['total_params'])}",
        f"MACs       {_count(s['total_macs'])}",
        "",
        "Inputs",
    ]
    dynamic = s.get("dynamic_inputs") or {}
    for t in s["inputs"]:
        mark = "   dynamic: fix with --input-shape" if t["name"] in dynamic else ""
        lines.append(f"  {t['name']:<32} {t['dtype'] or '?':<9} {_shape(t['shape'])}{mark}")
    lines.append("Outputs")
    for t in s["outputs"]:
        lines.append(f"  {t['name']:<32} {t['dtype'] or '?':<9} {_shape(t['shape'])}")
    lines.append("")
    lines.append("Op types")
    ops = list(s["op_types"].items())
    for op, count in ops[:top]:
        lines.append(f"  {op:<28} {count:>7,}")
    if len(ops) > top:
        rest = sum(c for _, c in ops[top:])
        lines.append(f"  ... {len(ops) - top} more types ({rest:,} nodes)")
    if dynamic:
        lines.append("")
        names = ", ".join(dynamic)
        lines.append(f"Dynamic inputs: {names}. MACs of nodes after them are not counted.")
    if s.get("external_data"):
        lines.append("Weights are stored in external data files next to the model.")
    for note in s.get("notes") or []:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from studio.core.model.graph import ModelGraph

    shapes = parse_input_shapes(args.input_shape)
    graph = ModelGraph.load(args.model, input_shapes=shapes or None)
    summary = graph.summary()
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary, max(1, args.top)))
    return 0
