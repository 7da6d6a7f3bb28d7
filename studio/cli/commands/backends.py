"""``npu-studio backends``: which backends work on this machine, why not, and what a model offloads.

    npu-studio backends [--json] [--refresh]
    npu-studio backends --offload MODEL [--backend htp] [--config backend_config.json] [--json]

Every backend is probed by creating and running a tiny real session in a worker process; an
unavailable one shows the backend's own error. ``--offload`` lists the nodes of MODEL that would
fall back to the CPU EP, with the QNN EP's reason for each.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import add_command, print_json, stderr_context


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "backends",
        "list backends (QNN HTP/GPU/CPU, ORT CPU) with availability and reasons",
        __doc__,
    )
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.add_argument("--refresh", action="store_true", help="probe again (ignore the cache)")
    parser.add_argument("--offload", metavar="MODEL", help="report which nodes of MODEL offload")
    parser.add_argument("--backend", default="htp", help="QNN backend for --offload (default htp)")
    parser.add_argument("--config", help="backend_config.json for --offload")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.offload:
        return _offload(args)
    from studio.core.engine.registry import probe_backends

    statuses = probe_backends(refresh=args.refresh)
    if args.json:
        print_json({"schema_version": 1, "backends": [s.to_json() for s in statuses]})
        return 0
    for status in statuses:
        mark = "yes" if status.available else "no "
        print(f"{status.name:8s} {mark} {status.label}")
        if status.reason:
            print(f"         reason: {status.reason}")
        if status.library_path and status.name != "cpu":
            present = "" if status.library_present else " (missing)"
            print(f"         library: {status.library_path}{present}")
        if status.note:
            print(f"         note: {status.note}")
    if statuses:
        versions = ", ".join(f"{k} {v}" for k, v in statuses[0].versions.items())
        print(f"versions: {versions}")
    return 0


def _offload(args: argparse.Namespace) -> int:
    from studio.core.engine.jobs import offload
    from studio.core.jobs.client import run_in_worker
    from studio.core.jobs.protocol import job_kind

    request = {"model": args.offload, "backend": args.backend, "config": args.config}
    result = run_in_worker(job_kind(offload), request, stderr_context(quiet=args.json))
    if args.json:
        print_json(result)
        return 0
    report = result["report"]
    print(result["summary"])
    for node in report["cpu_nodes"]:
        reason = f": {node['reason']}" if node.get("reason") else ""
        print(f"  CPU  {node['name']} ({node['op_type']}){reason}")
    for node in report["io_quant_nodes"]:
        print(f"  CPU  {node['name']} ({node['op_type']}): graph I/O (de)quantization, by design")
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")
    return 0
