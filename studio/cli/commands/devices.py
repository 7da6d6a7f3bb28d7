"""``npu-studio devices``: the target-device catalogue (Qualcomm's, from qai-hub-models).

    npu-studio devices [--json]

Lists every device with its chipset, HTP version, soc_model, fp16 support and form factor; any of
the names (or a chipset name) works as ``--device``.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import add_command, print_json
from studio.core.devices.catalogue import DEFAULT_DEVICE, load_catalogue


def register(subparsers: Any) -> None:
    parser = add_command(subparsers, "devices", "list the target devices and chipsets", __doc__)
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
