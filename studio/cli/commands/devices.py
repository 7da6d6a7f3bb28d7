"""``npu-studio devices``: the phones over adb, or the target-device catalogue.

    npu-studio devices [--json]              the phones the running adb server sees
    npu-studio devices --catalogue [--json]  Qualcomm's device catalogue (from qai-hub-models)

Phones: the adb server at ``ANDROID_ADB_SERVER_PORT`` (default 5037; the studio never starts one:
with none it says so in one line and exits 3), each with its serial, model, Android version, SoC
(``ro.soc.model``) and matching catalogue entry (HTP version, soc_model). Use one as
``--device adb:SERIAL`` on ``run``/``profile``.

The catalogue lists every device with its chipset, HTP version, soc_model, fp16 support and form
factor; any of the names (or a chipset name) works as ``--device``.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import add_command, print_json
from studio.core.devices.catalogue import DEFAULT_DEVICE, load_catalogue


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "devices", "list the phones over adb, or the device catalogue", __doc__
    )
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.add_argument(
        "--catalogue", action="store_true", help="list the target devices and chipsets instead"
    )
    parser.add_argument("--adb", action="store_true", help=argparse.SUPPRESS)  # the default
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.catalogue:
        return _adb(args)
    cat = load_catalogue()
    if args.json:
        print_json(
            {
                "source": cat.source,
                "default": DEFAULT_DEVICE,
                "devices": [d.to_json() for d in cat.devices],
            }
        )
        return 0
    src = cat.source
    print(
        f"{len(cat.devices)} devices from {src.get('package')} {src.get('version')} (default: {DEFAULT_DEVICE})"
    )
    for d in cat.devices:
        print(
            f"  {d.name:<38} {d.chipset:<44} v{d.htp_arch}  soc {d.soc_model:<4}"
            f" {'fp16' if d.fp16 else '    '}  {d.form_factor or ''}"
        )
    return 0


def _adb(args: argparse.Namespace) -> int:
    from studio.core.toolchain.adb.phones import list_phones

    phones = list_phones()
    if args.json:
        print_json({"phones": [p.to_json() for p in phones]})
        return 0
    if not phones:
        print("no phone connected to the adb server (check the cable and `adb devices`)")
        return 0
    for p in phones:
        if p.state != "device":
            print(f"  {p.serial:<20} {p.state:<13} {p.note}")
            continue
        entry = p.catalogue
        match = (
            f"{entry['chipset']}, HTP v{entry['htp_arch']}, soc_model {entry['soc_model']}"
            if entry
            else p.note
        )
        print(f"  {p.serial:<20} {p.model:<16} Android {p.android:<4} {p.soc_model:<8} {match}")
    return 0
