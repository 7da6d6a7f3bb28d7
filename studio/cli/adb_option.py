"""``--device adb:SERIAL`` on ``run`` / ``profile``: the bundle runs on a phone over adb.

The shared ``--device`` option (:mod:`studio.cli.device_option`) names a catalogue target; a value
``adb:SERIAL`` (a serial from ``npu-studio devices --adb``) names a connected phone instead. Exit
codes of the device errors: 3 no adb server, 4 unauthorised/offline/unknown serial, 5 no SDK for
the device libraries, 6 SoC not in the catalogue, 7 push failed or disk full, 8 the run failed or
was killed on the phone (see :mod:`studio.core.toolchain.adb.errors`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from studio.cli.common import print_json, stderr_context


def adb_serial(args: argparse.Namespace) -> str | None:
    """The serial of ``--device adb:SERIAL``, else None."""
    from studio.core.toolchain.adb.connection import TARGET_PREFIX, parse_target

    value = getattr(args, "device", None)
    if not value or not str(value).startswith(TARGET_PREFIX):
        return None
    return parse_target(value)


def run_on_phone(args: argparse.Namespace, serial: str, mode: str) -> int:
    """Run (``mode`` 'run') or profile a bundle on the phone ``serial``; prints what was measured."""
    from studio.core.errors import BadInputError
    from studio.core.jobs.client import run_in_worker
    from studio.core.jobs.protocol import job_kind
    from studio.core.toolchain.adb import errors  # noqa: F401 - the exit codes the worker raises
    from studio.core.toolchain.bundle import is_bundle
    from studio.core.workflows.device_run import device_run_job

    if not is_bundle(args.model):
        raise BadInputError(
            "--device adb:SERIAL runs a compiled bundle: `npu-studio compile MODEL -o BUNDLE` first",
            path=str(args.model),
        )
    request = {
        "bundle": args.model,
        "serial": serial,
        "inputs": getattr(args, "inputs", None),
        "output": getattr(args, "output", None),
        "sdk": getattr(args, "sdk", None),
        "profile": mode == "profile",
        "seed": int(getattr(args, "seed", 0) or 0),
    }
    quiet = bool(getattr(args, "json", False))
    ctx = stderr_context(quiet=quiet)
    if not quiet:
        ctx.on_data = lambda payload: _print_sample(payload.get("monitor"))
    timeout = getattr(args, "timeout", None)
    result = run_in_worker(job_kind(device_run_job), request, ctx, timeout_s=timeout)
    if getattr(args, "save", None):
        from studio.core.atomic import atomic_write_json

        atomic_write_json(args.save, result)
    if quiet:
        print_json(result)
        return 0
    device = result["device"]
    print(
        f"{device['label']}: {device['catalogue']['chipset']}, HTP v{device['catalogue']['htp_arch']}"
    )
    print(f"  latency: {result['latency_label']}")
    est = result.get("estimate") or {}
    if est.get("label"):
        print(f"  device estimate: {est['label']}")
    if est.get("error_text"):
        print(f"  estimate error on this model: {est['error_text']}")
    rows = sorted(result.get("layers") or [], key=lambda r: -(r.get("cycles") or 0))
    if mode == "profile" and rows:
        print(f"  slowest layers ({result['measured']}, cycles):")
        for row in rows[:10]:
            print(f"    {row.get('cycles') or 0:>14,.0f}  {row['node_id']} ({row['op_type']})")
    for name, info in result["outputs"].items():
        print(f"  output {name}: {info['dtype']} {info['shape']}")
    series = result["monitor"].get("series", {})
    for name, values in series.items():
        vals = [v for v in values if v is not None]
        if vals:
            print(f"  monitor {name}: {min(vals):.1f} .. {max(vals):.1f} ({len(vals)} samples)")
    for note in result.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    return 0


def _print_sample(sample: Any) -> None:
    if not sample:
        return
    values = sample.get("values", {})
    temps = [v for k, v in values.items() if k.startswith("temp")]
    text = f"max temp {max(temps):.1f} °C" if temps else ""
    if "battery current (mA)" in values:
        text += f"  battery {values['battery current (mA)']:.0f} mA"
    if text:
        print(f"[monitor {sample.get('t_s', 0):6.2f} s] {text}", file=sys.stderr, flush=True)
