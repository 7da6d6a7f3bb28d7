"""``npu-studio profile``: latency statistics and a per-layer profile mapped to ONNX nodes.

    npu-studio profile MODEL|BUNDLE [--backend htp|cpu|gpu|qnn-cpu] [--config backend_config.json]
                       [--runs N] [--warmup N] [--duration S] [--layer-runs N] [--no-layers]
                       [--input-shape NAME=1,3,224,224] [--cpu-fallback allow|forbid]
                       [--report out.html] [--compare RUN.json ...] [--save run.json]
                       [--export DIR] [--artifacts DIR] [--label TEXT] [--json]

The job runs in a worker process (a native crash fails the job, not the command). Latencies are
measured with profiling off; per-layer figures (QNN cycles on HTP, ORT kernel times on CPU) come
from a separate short profiled pass. ``--json`` prints the saved record: statistics, per-run
latencies and the per-layer table keyed by ONNX node id, plus the suggestions and ``overlay`` (the
per-node share of cost as a ``NodeOverlay``, what the graph colours by).
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
    stderr_context,
)
from studio.cli.device_option import add_device_arg, device_from_args
from studio.cli.options import add_cpu_fallback_arg
from studio.cli.plan_option import add_plan_arg, is_chain_bundle, run_chain_bundle, run_with_plan


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "profile",
        "measure latency and per-layer cost on HTP, CPU or GPU; write an HTML report",
        __doc__,
    )
    parser.add_argument("model", help="ONNX model or compiled bundle folder")
    parser.add_argument("--backend", help="htp (default; a bundle's own), cpu, gpu or qnn-cpu")
    parser.add_argument("--config", help="backend_config.json (provider/session options)")
    parser.add_argument("--runs", type=int, default=50, help="measured runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up runs (default 5)")
    parser.add_argument(
        "--duration", type=float, help="sustained mode: run for S seconds (with --runs 0: only)"
    )
    parser.add_argument("--layer-runs", type=int, default=5, help="profiled runs per layer pass")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer pass")
    add_input_shape_arg(parser)
    add_cpu_fallback_arg(parser, default="allow")  # forbid: fail unless every node runs on QNN
    parser.add_argument("--report", help="write a self-contained HTML report here")
    parser.add_argument(
        "--compare", nargs="+", default=[], metavar="RUN.json", help="saved runs for the report"
    )
    parser.add_argument("--save", help="save the run record (JSON) here")
    parser.add_argument("--export", metavar="DIR", help="write run JSON + layer/latency CSVs")
    parser.add_argument("--artifacts", metavar="DIR", help="keep raw profiler files here")
    parser.add_argument("--label", help="name of this run in reports and comparisons")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--inline", action="store_true", help="run in this process (debugging)")
    add_job_args(parser, json_help="print the record as JSON")
    add_plan_arg(parser)  # --plan PLAN.json (npu-studio assign): partitioned execution
    add_device_arg(parser)  # a catalogue target, or adb:SERIAL: the bundle on a phone
    parser.set_defaults(func=run)


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": args.model,
        "backend": args.backend,
        "config": args.config,
        "runs": args.runs,
        "warmup": args.warmup,
        "duration_s": args.duration,
        "layers": not args.no_layers,
        "layer_runs": args.layer_runs,
        "input_shapes": parse_input_shapes(args.input_shape) or None,
        "disable_cpu_fallback": args.cpu_fallback == "forbid",
        "artifacts_dir": args.artifacts,
        "label": args.label,
        "seed": args.seed,
        "out": args.save,
    }


def run(args: argparse.Namespace) -> int:
    serial = adb_serial(args)
    if serial is not None:  # --device adb:SERIAL: on the phone
        return run_on_phone(args, serial, "profile")
    device_from_args(args)  # the HTP target of every session this command creates
    if args.plan:
        return run_with_plan(args, "profile")
    if is_chain_bundle(args.model):  # compiled with --plan: run its chain
        return run_chain_bundle(args, "profile")
    from studio.core.jobs.client import run_in_worker
    from studio.core.jobs.protocol import job_kind, run_inline
    from studio.core.model.graph import ModelGraph
    from studio.core.profiling.export import export_run
    from studio.core.profiling.job import profile_model
    from studio.core.profiling.records import ProfileRun
    from studio.core.profiling.suggestions import suggest
    from studio.core.workflows.report import write_report

    # Saved runs to compare are read first: a bad file fails fast, before minutes of measuring.
    others = [ProfileRun.load(p) for p in args.compare]
    request = build_request(args)
    ctx = stderr_context(quiet=args.json)
    if args.inline:
        data = run_inline(profile_model, request, ctx)
    else:
        data = run_in_worker(job_kind(profile_model), request, ctx, timeout_s=args.timeout)
    record = ProfileRun.from_json(data)
    graph_path = record.options.get("layers_mapped_to") or record.model_path
    graph = ModelGraph.load(graph_path, input_shapes=request["input_shapes"])
    items = suggest(record, graph)
    if args.report:
        write_report(args.report, [record, *others], graph, suggestions=items)
    exported = export_run(record, args.export) if args.export else {}
    if args.json:
        out = record.to_json()
        out["suggestions"] = [s.to_json() for s in items]
        out["overlay"] = record.overlay().to_json()  # per-node share, as the graph shows it
        out["report"] = args.report
        out["exports"] = {k: str(v) for k, v in exported.items()}
        print_json(out)
        return 0
    _print_summary(record, items)
    if args.report:
        print(f"report: {args.report}")
    for kind, path in exported.items():
        print(f"{kind}: {path}")
    return 0


def _print_summary(record: Any, items: list[Any]) -> None:
    s = record.stats
    print(f"{record.label}: {record.backend.upper()} on {', '.join(record.providers)}")
    lead = record.device_lead()
    if lead:  # a simulated HTP or host CPU run leads with the target device's figure
        print(f"  device: {lead[2]}")
    for note in record.notes:
        print(f"  note: {note}", file=sys.stderr if note.startswith("warning") else sys.stdout)
    emulated = "emulated " if record.is_emulated() else ""
    print(f"  {record.latency_measure()}")
    print(
        f"  {emulated}latency over {s.count} runs: mean {s.mean_ms:.3f} ms  p50 {s.p50_ms:.3f}  "
        f"p95 {s.p95_ms:.3f}  p99 {s.p99_ms:.3f}  min {s.min_ms:.3f}  max {s.max_ms:.3f}  "
        f"({s.throughput_ips:.1f} inf/s)"
    )
    setup = record.setup
    print(
        f"  set-up: load {setup.get('model_load_s', 0) * 1000:.1f} ms, session "
        f"{setup.get('session_create_s', 0) * 1000:.1f} ms, first run "
        f"{setup.get('first_run_ms', 0):.2f} ms; CPU {record.resources.get('cpu_percent', 0):.0f}%"
        f", peak RSS {record.resources.get('peak_rss_mb') or 0:.0f} MB"
    )
    ranked = record.ranked()
    if ranked:
        unit = "cycles" if record.primary_measure == "cycles" else "us"
        if unit == "cycles" and record.is_emulated():
            unit = "emulator cycles; warning: they vary with host load, not a device's"
        print(f"  slowest layers ({unit}):")
        for r in ranked[:10]:
            tag = " [inserted by backend]" if r.inserted else ""
            print(
                f"    {r.value:>14,.1f}  {100 * (r.share or 0):5.1f}%  {r.node_id} ({r.op_type}){tag}"
            )
    for item in items:
        if item.kind != "hotspot":
            print(f"  suggestion: {item.title}")
