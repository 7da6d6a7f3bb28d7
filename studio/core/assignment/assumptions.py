"""The assumed constants of the backend assignment: visible, named, editable, saved in the project.

Why a module of its own: the device model estimates HTP time from AI Hub measurements, but nothing
the studio ships measures the phone's CPU or GPU, the energy each backend spends, or the cost of
handing tensors between sessions. Those figures are ASSUMPTIONS. They are listed here once, with
their unit and what they mean, so the Backends workspace ("Assumptions…") and the CLI
(``assign --assume KEY=VALUE`` or ``--assumptions FILE.json``) can show and change them, and every
plan records the values it was computed with (``summary["assumptions"]``, labelled "assumed").

A project stores only the values a user changed (``constraints.assumptions``); the rest are the
defaults below, so a later release with better defaults still reaches old projects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from studio.core.atomic import read_json_strict
from studio.core.devices.estimate import ASSUMED_CPU
from studio.core.errors import BadInputError, ConfigError


@dataclass(frozen=True)
class Assumption:
    key: str
    default: float
    unit: str
    label: str


# One entry per assumed constant (key, default, unit, what it is). The CPU rates are the device
# model's ASSUMED_CPU: one set of assumed phone-CPU figures for the estimate and the assignment.
ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption("cpu_macs_per_ms", ASSUMED_CPU["macs_per_ms"], "MAC/ms", "phone CPU compute rate"),
    Assumption("cpu_bytes_per_ms", ASSUMED_CPU["bytes_per_ms"], "B/ms", "phone CPU memory rate"),
    Assumption(
        "cpu_op_overhead_ms", ASSUMED_CPU["op_overhead_ms"], "ms", "phone CPU dispatch per op"
    ),
    Assumption("gpu_macs_per_ms", 1e8, "MAC/ms", "phone GPU compute rate"),
    Assumption("gpu_bytes_per_ms", 1e7, "B/ms", "phone GPU memory rate"),
    Assumption("gpu_op_overhead_ms", 0.02, "ms", "phone GPU dispatch per op"),
    Assumption("htp_energy_per_ms", 1.0, "relative", "HTP energy per ms of work"),
    Assumption("gpu_energy_per_ms", 3.0, "relative", "GPU energy per ms of work"),
    Assumption("cpu_energy_per_ms", 8.0, "relative", "CPU energy per ms of work"),
    Assumption("boundary_bytes_per_ms", 5e6, "B/ms", "copy rate between backends"),
    Assumption("boundary_sync_ms", 0.05, "ms", "hand-over between sessions"),
)
BY_KEY = {a.key: a for a in ASSUMPTIONS}
NOTE = (
    "assumed constants (not measured, not published for these chips); change them in the Backends "
    "workspace (Assumptions…) or with `assign --assume KEY=VALUE`"
)


class Assumptions:
    """The assumed constants in force: defaults, overridden by the user's values."""

    def __init__(self, overrides: Mapping[str, Any] | None = None, source: str = "assumptions"):
        self.overrides: dict[str, float] = {}
        for key, value in (overrides or {}).items():
            self.overrides[key] = _checked(key, value, source)

    def __getitem__(self, key: str) -> float:
        if key not in BY_KEY:
            raise KeyError(key)
        return self.overrides.get(key, BY_KEY[key].default)

    def values(self) -> dict[str, float]:
        return {a.key: self[a.key] for a in ASSUMPTIONS}

    def macs_per_ms(self, backend: str) -> float:
        return self[f"{backend}_macs_per_ms"]

    def bytes_per_ms(self, backend: str) -> float:
        return self[f"{backend}_bytes_per_ms"]

    def op_overhead_ms(self, backend: str) -> float:
        return self[f"{backend}_op_overhead_ms"]

    def energy_per_ms(self, backend: str) -> float:
        return self[f"{backend}_energy_per_ms"]

    def power_efficiency(self, backend: str) -> float:
        """0-1 efficiency shown in scores: the least energy per ms over this backend's."""
        best = min(self.energy_per_ms(b) for b in ("htp", "gpu", "cpu"))
        return best / self.energy_per_ms(backend)

    def with_overrides(self, more: Mapping[str, Any], source: str = "assumptions") -> Assumptions:
        return Assumptions({**self.overrides, **more}, source)

    def to_summary(self) -> dict[str, Any]:
        """What a plan records: every value in force, which were changed, and that they're assumed."""
        return {
            "kind": "assumed",
            "values": self.values(),
            "units": {a.key: a.unit for a in ASSUMPTIONS},
            "changed": sorted(self.overrides),
            "note": NOTE,
        }


def _checked(key: str, value: Any, source: str) -> float:
    if key not in BY_KEY:
        raise ConfigError(f"unknown assumption '{key}' (known: {', '.join(BY_KEY)})", path=source)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"assumption '{key}' must be a finite number, got {value!r}", path=source)
    if value <= 0:
        raise ConfigError(f"assumption '{key}' must be > 0, got {value!r}", path=source)
    return float(value)


def parse_assume_items(items: Iterable[str]) -> dict[str, float]:
    """``KEY=VALUE`` items from the command line (BadInputError naming the bad one)."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or key not in BY_KEY or not math.isfinite(value) or value <= 0:
            raise BadInputError(
                f"--assume '{item}': expected KEY=VALUE with a positive number and KEY one of "
                f"{', '.join(BY_KEY)}"
            )
        out[key] = value
    return out


def load_assumptions_file(path: str) -> dict[str, float]:
    """A JSON object of KEY: VALUE (or a plan's ``summary.assumptions`` with ``values``)."""
    data = read_json_strict(path, error_type=BadInputError)
    if isinstance(data, dict) and isinstance(data.get("values"), dict):
        data = data["values"]
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object of assumption KEY: VALUE")
    return Assumptions(data, source=path).overrides
