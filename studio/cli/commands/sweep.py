"""``npu-studio sweep``: a grid of quantisation x device x config points, run on Ray.

    npu-studio sweep MODEL.onnx|SWEEP_SPEC.json -o SWEEP.json
        [--grid KEY=V1,V2 ...] [--device NAME ...] [--calib DIR|FILE.npz|random:N] [--eval SRC]
        [--ray-address ADDR] [--num-cpus N] [--profile-runs N] [--sqnr-backend cpu|htp]
        [--rerun] [--report REPORT.html] [--json]

Grid keys are named after the quantise flags: act_bw, weight_bw, per_channel, method,
percentile, techniques (a set: cle+adaround, or none), plus perf_mode and device; e.g.
``--grid act_bw=8,16 --grid per_channel=true,false``. ``--device`` (repeatable) adds a device
axis. A sweep file (schema in studio/core/sweeps/spec.py) may hold several models; flags given
here replace its grid axes, calibration source and options.

Each point runs on a Ray task: local Ray with this machine's cores unless ``--ray-address`` or
RAY_ADDRESS names a cluster (usage stats off). Rows stream into SWEEP.json as points finish;
each point's QuantPlan and ProfileRun are in SWEEP.points/. A failed point is recorded with its
error and the others go on; Ctrl-C keeps what finished. Re-running with the same -o reuses
finished points whose model, data, parameters and package versions are unchanged.

Latency is the target device's estimate (or a measurement on real hardware), never the x86 HTP
emulator's time; ``pareto`` marks the SQNR-vs-latency front per device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from studio.cli.common import add_command, native_stdout_to_stderr, print_json


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "sweep", "run a grid of quantisation/device/config points on Ray", __doc__
    )
    parser.add_argument("source", help="float ONNX model, or a sweep file (.json)")
    parser.add_argument("-o", "--output", required=True, help="sweep result JSON to write")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis"
    )
    parser.add_argument(
        "--device", action="append", default=[], metavar="NAME", help="target device (repeat)"
    )
    parser.add_argument("--calib", help="calibration data (default random:8, warned)")
    parser.add_argument("--eval", help="held-out evaluation data (default: split from --calib)")
    parser.add_argument("--ray-address", help="Ray cluster address (default RAY_ADDRESS or local)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all cores)")
    parser.add_argument("--profile-runs", type=int, help="HTP profile runs per point (0: none)")
    parser.add_argument("--sqnr-backend", choices=("cpu", "htp"), help="where SQNR is measured")
    parser.add_argument("--rerun", action="store_true", help="run every point again")
    parser.add_argument("--report", help="also write an HTML page with the Pareto plot")
    parser.add_argument("--json", action="store_true", help="print the sweep result as JSON")
    parser.set_defaults(func=run)


def build_spec(args: argparse.Namespace):
    """The sweep the arguments describe: a sweep file with the flags applied, or a model."""
    from studio.core.errors import BadInputError
    from studio.core.sweeps import SweepSpec, parse_grid_arg

    src = Path(args.source)
    if src.suffix.lower() == ".json":
        if not src.is_file():
            raise BadInputError("sweep file not found", path=str(src))
        spec = SweepSpec.load(src)
    else:
        spec = SweepSpec(models=[str(src)], source=str(src))
    for item in args.grid:
        key, values = parse_grid_arg(item)
        spec.grid[key] = values
    if args.device:
        spec.grid["device"] = list(args.device)
    if args.calib:
        spec.calib = args.calib
    if args.eval:
        spec.eval = args.eval
    if args.profile_runs is not None:
        spec.options["profile_runs"] = args.profile_runs
    if args.sqnr_backend:
        spec.options["sqnr_backend"] = args.sqnr_backend
    spec.validate()
    return spec


def run(args: argparse.Namespace) -> int:
    from studio.core.sweeps import run_sweep

    spec = build_spec(args)
    quiet = args.json

    def on_row(row: dict[str, Any]) -> None:
        if quiet or row["status"] == "queued":
            return
        where = (row.get("where") or {}).get("ip", "")
        line = f"[{row['index']:>3}] {row['status']:<9} {row['label']:<34} {where}"
        if row["status"] == "done":
            line += f"  SQNR {_num(row.get('sqnr_db'))} dB  est {_num(row.get('estimated_ms'))} ms"
        elif row["status"] == "failed":
            line += f"  {(row.get('error') or {}).get('message', '')[:160]}"
        print(line, file=sys.stderr, flush=True)

    with native_stdout_to_stderr():
        doc = run_sweep(
            spec,
            args.output,
            address=args.ray_address,
            num_cpus=args.num_cpus,
            on_row=on_row,
            rerun=args.rerun,
        )
    if args.report:
        from studio.core.sweeps.report import write_sweep_report

        write_sweep_report(doc, args.report)
    if args.json:
        print_json(doc)
    else:
        print(table(doc))
    return 0


def _num(value: Any, fmt: str = ".2f") -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def table(doc: dict[str, Any]) -> str:
    """The rows as text, Pareto points starred; says what the latency column is."""
    cl = doc.get("cluster", {})
    lines = [
        f"engine ray {doc.get('ray_version')}: {cl.get('nodes')} node(s), {cl.get('cpus'):g} CPUs"
        f" at {cl.get('address')}"
    ]
    lines.append(
        f"  {'#':>3}  {'point':<46} {'status':<9} {'SQNR dB':>8} {'device ms':>10} "
        f"{'HTP':>4} {'size kB':>8}  pareto"
    )
    for r in doc["rows"]:
        lat = r.get("measured_ms") if r.get("measured_ms") is not None else r.get("estimated_ms")
        htp = {True: "all", False: "part"}.get(r.get("fully_on_htp"), "-")
        size = r.get("size_bytes")
        lines.append(
            f"  {r['index']:>3}  {r['label']:<46} {r['status']:<9} {_num(r.get('sqnr_db')):>8} "
            f"{_num(lat, '.3f'):>10} {htp:>4} {_num(size / 1024 if size else None, '.1f'):>8}  "
            f"{'*' if r.get('pareto') else ''}"
        )
    kinds = {r.get("latency_kind") for r in doc["rows"] if r.get("latency_kind")}
    if not kinds:
        lines.append(
            "  device ms: no on-device estimate available (no device catalogue); no Pareto"
        )
    else:
        lines.append(f"  device ms: {', '.join(sorted(kinds))} (never the x86 emulator's time)")
    s = doc.get("summary", {})
    lines.append(
        f"  {s.get('counts', {}).get('done', 0)} done, {s.get('counts', {}).get('failed', 0)} "
        f"failed, {s.get('reused', 0)} reused, in {s.get('elapsed_s', 0):.1f} s"
    )
    return "\n".join(lines)
