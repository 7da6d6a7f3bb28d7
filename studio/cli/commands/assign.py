"""``npu-studio assign``: probe op support on the real backends, then assign a backend per node.

    npu-studio assign MODEL [--power-critical | --performance-critical] [--latency-budget-ms X]
                      [--pin NODE=BACKEND ...] [--profile RUN.json ...] [--vtcm-mb N]
                      [--input-shape NAME=D0,D1,...] -o PLAN.json [--json] [--no-cache]
                      [--assume KEY=VALUE ...] [--assumptions FILE.json]

Every node is compiled on QNN HTP (and GPU, which reports the real reason it is unavailable on a
machine without an Adreno GPU) to learn what the backend accepts; the assignment then minimises
estimated (or, with ``--profile``, measured) time plus the cost of each backend boundary. The plan
says per node: backend, score parts per backend, and why. Phone CPU/GPU rates, energy per ms
and boundary costs are ASSUMED constants (studio.core.assignment.assumptions): ``--assumptions``
reads a JSON object of KEY: VALUE, ``--assume`` overrides one (after the file); the plan's
``summary.assumptions`` records every value used. Execute it with
``npu-studio run MODEL --plan PLAN.json`` or ``npu-studio profile MODEL --plan PLAN.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import (
    add_assumption_args,
    add_command,
    add_input_shape_arg,
    assumptions_from_args,
    parse_input_shapes,
    print_json,
    stderr_context,
)
from studio.cli.device_option import add_device_arg, device_from_args
from studio.core.assignment.plan import BACKEND_ORDER
from studio.core.errors import BadInputError


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "assign",
        "assign each node to HTP/GPU/CPU from real op support; write a plan",
        __doc__,
    )
    parser.add_argument("model", help="ONNX model")
    parser.add_argument("-o", "--output", required=True, help="plan file to write (JSON)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--power-critical", action="store_true", help="favour energy efficiency")
    mode.add_argument("--performance-critical", action="store_true", help="favour speed only")
    parser.add_argument("--latency-budget-ms", type=float, help="end-to-end budget in ms")
    parser.add_argument(
        "--pin", action="append", default=[], metavar="NODE=BACKEND", help="force a node"
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="RUN.json",
        help="a saved profile run whose per-layer times replace the estimates (repeatable)",
    )
    add_assumption_args(parser, "change an assumed constant, e.g. cpu_macs_per_ms=4e7 (repeatable)")
    parser.add_argument("--vtcm-mb", type=float, default=8.0, help="HTP VTCM size (default 8)")
    parser.add_argument("--no-cache", action="store_true", help="re-probe op support")
    add_input_shape_arg(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_device_arg(parser)
    parser.set_defaults(func=run)


def parse_pins(items: list[str]) -> dict[str, str]:
    """``NODE=BACKEND`` items; node ids may contain '=' so the LAST '=' splits."""
    pins: dict[str, str] = {}
    for item in items:
        node, sep, backend = item.rpartition("=")
        backend = backend.strip().lower()
        if not sep or not node or backend not in BACKEND_ORDER:
            raise BadInputError(f"--pin '{item}': expected NODE={'|'.join(BACKEND_ORDER)}")
        pins[node] = backend
    return pins


def run(args: argparse.Namespace) -> int:
    device = device_from_args(args)
    from studio.core.assignment.scoring import is_real_hardware, measured_from_profile, plan_for
    from studio.core.assignment.support import probe_op_support
    from studio.core.atomic import atomic_write_json, read_json_strict
    from studio.core.model.graph import ModelGraph
    from studio.core.project import Constraints

    if args.latency_budget_ms is not None and args.latency_budget_ms <= 0:
        raise BadInputError("--latency-budget-ms must be > 0")
    constraints = Constraints(
        power_critical=args.power_critical,
        performance_critical=args.performance_critical,
        latency_budget_ms=args.latency_budget_ms,
        pins=parse_pins(args.pin),
        assumptions=assumptions_from_args(args),
    )
    measured: dict[str, dict[str, float]] = {}
    ignored: list[str] = []
    for path in args.profile:
        run_data = read_json_strict(path, error_type=BadInputError)
        if not is_real_hardware(run_data):  # emulator / host times describe no device
            ignored.append(
                f"{path} ({run_data.get('backend')} on {(run_data.get('host') or {}).get('machine')})"
            )
            continue
        backend, ms = measured_from_profile(run_data)
        measured.setdefault(backend, {}).update(ms)
    ctx = stderr_context(quiet=args.json)
    graph = ModelGraph.load(args.model, input_shapes=parse_input_shapes(args.input_shape) or None)
    report = probe_op_support(
        graph, ("htp", "gpu"), vtcm_mb=args.vtcm_mb, ctx=ctx, use_cache=not args.no_cache
    )
    plan = plan_for(graph, report, constraints, measured, device=device)
    data = plan.to_json()
    data["summary"]["ignored_profiles"] = ignored
    if ignored and not args.json:
        print(
            "note: profiles not used (not real hardware: x86-64 HTP is an emulator and this host's "
            f"CPU is not the target's): {', '.join(ignored)}"
        )
    print(f"costs: milliseconds on {device.label}") if not args.json else None
    changed = data["summary"]["assumptions"]["changed"]
    if changed and not args.json:
        values = data["summary"]["assumptions"]["values"]
        print("assumed (changed): " + ", ".join(f"{k}={values[k]:g}" for k in changed))
    data["op_support"] = {
        "backends": report.backends,
        "notes": report.notes,
        "probes": report.probes,
        "signatures": report.signatures,
        "from_cache": report.from_cache,
    }
    atomic_write_json(args.output, data)
    if args.json:
        print_json(data)
        return 0
    _print_text(plan, report, args.output)
    return 0


def _print_text(plan: Any, report: Any, output: str) -> None:
    for name, status in report.backends.items():
        reason = status.get("reason") or ""
        if status.get("available"):
            print(f"{name.upper()} available" + (f" ({reason})" if reason else ""))
        else:
            print(reason or f"{name.upper()} unavailable")
    for note in report.notes:
        print(f"note: {note}")
    width = max((len(d.node_id) for d in plan.decisions), default=4)
    print(f"{'node':{width}s}  {'op':18s} backend  reason")
    for d in plan.decisions:
        print(f"{d.node_id:{width}s}  {d.op_type:18s} {d.backend.upper():7s}  {d.reason}")
    s = plan.summary
    for backend, figures in s["per_backend"].items():
        print(
            f"{backend.upper()}: {figures['nodes']} nodes, {figures['macs']:,} MACs, "
            f"{figures['estimated_ms']:.3f} ms ({'/'.join(s['cost_sources'])})"
        )
    budget = s.get("latency_budget_ms")
    print(
        f"{s['segments']} segment(s), {s['boundaries']} boundary(ies); total "
        f"{s['estimated_total_ms']:.3f} ms"
        + (f" vs budget {budget:g} ms{' (OVER)' if s['over_budget'] else ''}" if budget else "")
    )
    print(f"wrote {output}")
