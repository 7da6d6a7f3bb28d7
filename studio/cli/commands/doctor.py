"""``npu-studio doctor``: is this machine ready? QNN tools, libraries, versions, adb.

    npu-studio doctor [--json]

Each line says what was checked, what was found and, when something is missing, what to do. The
exit status is 0 when nothing is missing, 3 when something the studio needs for a feature is
(the feature is named on its line); ``--json`` prints the same items.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import add_command, print_json

_MARK = {"ok": "ok  ", "missing": "MISS", "warning": "warn", "info": "    "}


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "doctor",
        "check the installation: QNN tools and libraries, versions, adb",
        __doc__,
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from studio.core.toolchain.doctor import run_doctor

    checks = run_doctor()
    missing = [c for c in checks if c.status == "missing"]
    if args.json:
        print_json({"checks": [c.to_json() for c in checks], "missing": len(missing)})
        return 3 if missing else 0
    group = None
    for check in checks:
        if check.group != group:
            group = check.group
            print(f"{group}:")
        print(f"  [{_MARK.get(check.status, check.status)}] {check.name}: {check.detail}")
        if check.fix and check.status != "ok":
            print(f"         -> {check.fix}")
    print(f"{len(missing)} missing" if missing else "nothing missing")
    return 3 if missing else 0
