"""``--device NAME|CHIPSET``: the one shared option naming the target Snapdragon device.

Every command that compiles, runs, profiles, compares, estimates or assigns adds it through
:func:`add_device_arg` and reads it through :func:`device_from_args`, so the default target is the
same everywhere (the catalogue's default, printed on stderr when it is used).
"""

from __future__ import annotations

import argparse
import sys

from studio.core.devices.catalogue import DEFAULT_DEVICE, Device, resolve_device


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        metavar="NAME|CHIPSET",
        default=None,
        help=f"target device or chipset from the catalogue, e.g. 'Samsung Galaxy S24' or "
        f"'Snapdragon 8 Gen 3' (default: {DEFAULT_DEVICE}; `npu-studio devices --catalogue` lists them); "
        "run/profile also take adb:SERIAL, a phone from `npu-studio devices --adb`",
    )


def device_from_args(args: argparse.Namespace, *, quiet: bool = False) -> Device:
    """The Device the user named, else the default target (said once on stderr).

    Also makes it the HTP target of every session this command and its workers create.
    """
    from studio.core.engine.sessions import set_htp_target

    name = getattr(args, "device", None)
    device = resolve_device(name)
    set_htp_target(device.name, device.soc_model, device.htp_arch)
    if name is None and not quiet and not getattr(args, "json", False):
        print(f"target: {device.label} (default; choose with --device)", file=sys.stderr)
    return device
