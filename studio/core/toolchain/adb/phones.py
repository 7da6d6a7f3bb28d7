"""Which phones the adb server sees, what they are, and which catalogue entry each one is.

One ``getprop`` per phone (all properties in one round trip) gives the model, Android version and
``ro.soc.model`` (``SM8650``); the catalogue (:mod:`studio.core.devices.catalogue`) knows chipsets
by that name, so the HTP version and ``soc_model`` come from Qualcomm's own table, not from a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from studio.core.toolchain.adb.connection import adb_client, not_ready_message, ready_device
from studio.core.toolchain.adb.errors import UnknownSocError

_PROP = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)\]$")
SOC_PROPS = ("ro.soc.model", "ro.board.platform", "ro.hardware.chipname")


@dataclass
class Phone:
    """One device the adb server lists (any state) and, when ready, what it reports."""

    serial: str
    state: str
    model: str = ""
    manufacturer: str = ""
    android: str = ""
    sdk: str = ""
    soc_model: str = ""  # ro.soc.model, e.g. SM8650
    abi: str = ""
    catalogue: dict[str, Any] | None = None  # the matching Device.to_json(), with "chipset"
    note: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"adb:{self.serial}"

    @property
    def label(self) -> str:
        name = self.model or self.tags.get("model", "").replace("_", " ") or self.serial
        return f"{name} ({self.serial})"

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["target"] = self.target
        data["label"] = self.label
        return data


def parse_getprop(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        m = _PROP.match(line.strip())
        if m:
            props[m.group("key")] = m.group("value")
    return props


def match_catalogue(props: dict[str, str]) -> Any:
    """The catalogue Device of a phone's chipset, or None when the catalogue has no such SoC."""
    from studio.core.devices.catalogue import UnknownDeviceError, resolve_device

    for key in SOC_PROPS:
        value = props.get(key, "").strip()
        if not value:
            continue
        try:
            return resolve_device(value)
        except UnknownDeviceError:
            continue
    return None


def describe(device: Any, serial: str, state: str = "device", tags: dict | None = None) -> Phone:
    """Read one ready phone's properties and find its catalogue entry."""
    props = parse_getprop(str(device.shell("getprop", timeout=20)))
    phone = Phone(
        serial=serial,
        state=state,
        model=props.get("ro.product.model", ""),
        manufacturer=props.get("ro.product.manufacturer", ""),
        android=props.get("ro.build.version.release", ""),
        sdk=props.get("ro.build.version.sdk", ""),
        soc_model=props.get("ro.soc.model", "") or props.get("ro.board.platform", ""),
        abi=props.get("ro.product.cpu.abi", ""),
        tags=dict(tags or {}),
    )
    entry = match_catalogue(props)
    if entry is None:
        phone.note = f"SoC '{phone.soc_model or '?'}' is not in the device catalogue"
    else:
        phone.catalogue = {
            "chipset": entry.chipset,
            "htp_arch": entry.htp_arch,
            "soc_model": entry.soc_model,
            "fp16": entry.fp16,
            "reference_device": entry.name,
        }
    return phone


def list_phones() -> list[Phone]:
    """Every device the adb server lists; ready ones described, others with the reason why not."""
    client = adb_client()
    phones = []
    for info in client.list(extended=True):
        if info.state != "device":
            phones.append(
                Phone(
                    info.serial,
                    info.state,
                    note=not_ready_message(info.serial, info.state),
                    tags=dict(info.tags),
                )
            )
            continue
        phones.append(describe(client.device(info.serial), info.serial, tags=dict(info.tags)))
    return phones


def open_phone(serial: str) -> tuple[Any, Phone]:
    """(AdbDevice, Phone) for a ready phone whose SoC the catalogue knows; else a clear error."""
    client = adb_client()
    device = ready_device(client, serial)
    phone = describe(device, serial)
    if phone.catalogue is None:
        raise UnknownSocError(
            f"{phone.label}: {phone.note}, so its HTP version is unknown (`npu-studio devices` "
            "lists the known chipsets)"
        )
    return device, phone
