"""The target-device catalogue: every Snapdragon device and chipset Qualcomm publishes.

Why: HTP numerics and speed depend on the architecture a session targets, so every compile, run,
profile and estimate names one target. The data is Qualcomm's own (``qai-hub-models``'
``devices_and_chipsets.yaml``), extracted offline by ``scripts/extract_device_catalogue.py`` into
``resources/devices/catalogue.json``; nothing is fetched at run time.

VTCM size is not in Qualcomm's file, so ``vtcm_mb`` stays ``None`` (unknown) rather than invented.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from studio.core.errors import BadInputError, ConfigError

CATALOGUE_PATH = Path(__file__).resolve().parents[3] / "resources" / "devices" / "catalogue.json"
# The studio's default target when neither the user nor the project names one: the most common
# current flagship phone in AI Hub's published figures (HTP v75, fp16 capable).
DEFAULT_DEVICE = "Samsung Galaxy S24"
# Where the current target travels to worker processes (set by studio.core.engine.sessions.
# set_htp_target as "NAME|SOC_MODEL|HTP_ARCH"; a test keeps the two names equal).
TARGET_ENV = "NPU_STUDIO_HTP_TARGET"


class UnknownDeviceError(BadInputError):
    """A --device name or chipset the catalogue does not know."""


@dataclass(frozen=True)
class Device:
    """One target: a named device (or a chipset's reference device) with its NPU's identity."""

    name: str
    chipset: str
    soc_model: int
    htp_arch: int
    fp16: bool
    form_factor: str | None = None
    vtcm_mb: int | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    chipset_id: str = ""

    @property
    def label(self) -> str:
        """'Samsung Galaxy S24 (Snapdragon 8 Gen 3, HTP v75, soc_model 57)'."""
        return f"{self.name} ({self.chipset}, HTP v{self.htp_arch}, soc_model {self.soc_model})"

    def provider_options(self) -> dict[str, str]:
        """The QNN EP options that make a session target this device's HTP."""
        return {"soc_model": str(self.soc_model), "htp_arch": str(self.htp_arch)}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        return d


@dataclass(frozen=True)
class Catalogue:
    devices: tuple[Device, ...]
    source: dict[str, Any]

    def names(self) -> list[str]:
        return [d.name for d in self.devices]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9+]", "", text.lower().replace("®", "").replace("™", ""))


@lru_cache(maxsize=4)
def load_catalogue(path: str | None = None) -> Catalogue:
    """Read the shipped catalogue (raises ConfigError naming the file when it is missing or bad)."""
    p = Path(path) if path else CATALOGUE_PATH
    try:
        raw = json.loads(p.read_text())
        chipsets = {c["id"]: c for c in raw["chipsets"]}
        devices = []
        for d in raw["devices"]:
            chip = chipsets[d["chipset_id"]]
            aliases = {d["name"], chip["name"], chip["marketing_name"], *chip.get("aliases", [])}
            devices.append(
                Device(
                    name=d["name"],
                    chipset=chip["name"],
                    soc_model=int(d["soc_model"]),
                    htp_arch=int(d["htp_arch"]),
                    fp16=bool(d["fp16"]),
                    form_factor=d.get("form_factor"),
                    vtcm_mb=d.get("vtcm_mb"),
                    aliases=tuple(sorted(aliases)),
                    chipset_id=chip["id"],
                )
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"device catalogue unreadable: {exc}", path=str(p)) from exc
    return Catalogue(devices=tuple(devices), source=dict(raw.get("source", {})))


def _chipset_representative(devices: list[Device], chip_id: str) -> Device:
    """A chipset name resolves to the chipset's reference device when listed, else its first device."""
    return sorted(devices, key=lambda d: (d.form_factor != "Phone", d.name))[0]


def resolve_device(name_or_chipset: str | Device | None = None) -> Device:
    """The Device for a catalogue name, chipset name or alias; None gives the default target.

    Matching ignores case, spaces and punctuation ('galaxy s24', 'sm8650' via aliases,
    'Snapdragon 8 Gen 3'). An unknown name raises UnknownDeviceError listing close matches.
    """
    if isinstance(name_or_chipset, Device):
        return name_or_chipset
    cat = load_catalogue()
    wanted = name_or_chipset or DEFAULT_DEVICE
    key = _norm(wanted)
    for d in cat.devices:
        if _norm(d.name) == key:
            return d
    by_chip = [d for d in cat.devices if key in {_norm(a) for a in d.aliases}]
    if by_chip:
        return _chipset_representative(by_chip, by_chip[0].chipset_id)
    choices = sorted({d.name for d in cat.devices} | {d.chipset for d in cat.devices})
    close = difflib.get_close_matches(wanted, choices, n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownDeviceError(
        f"unknown device or chipset '{wanted}'{hint} "
        f"(`npu-studio devices` lists all {len(cat.devices)} devices)"
    )


def current_device() -> Device:
    """The target chosen for this process (``--device``, the GUI's target), else the default."""
    name = os.environ.get(TARGET_ENV, "").split("|")[0]
    try:
        return resolve_device(name or None)
    except UnknownDeviceError:
        return resolve_device(None)


def default_device() -> Device:
    """The studio-wide default target (used when neither --device nor the project names one)."""
    return resolve_device(None)
