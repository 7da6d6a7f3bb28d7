"""Sampling a phone's thermals, clocks and battery current while a profile runs.

The seed reads these with ``adb shell cat``; one ``grep -sH . FILES...`` reads them all in one round
trip and names each value's file (``-s``: files a given phone lacks are skipped, not errors). The
paths are the current ones (thermal zones, cpufreq, the Adreno ``kgsl`` clock, the battery's
``current_now``), not the seed's obsolete ``msm_vidc`` load file.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

THERMAL_TYPES = "/sys/class/thermal/thermal_zone*/type"
SAMPLED = (
    "/sys/class/thermal/thermal_zone*/temp",
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq",
    "/sys/class/kgsl/kgsl-3d0/gpuclk",
    "/sys/class/power_supply/battery/current_now",
)
_ZONE = re.compile(r"/sys/class/thermal/(thermal_zone\d+)/")
_CPU = re.compile(r"/sys/devices/system/cpu/(cpu\d+)/cpufreq/scaling_cur_freq")


def _grep(device: Any, patterns: tuple[str, ...] | list[str]) -> dict[str, str]:
    text = device.shell("grep -sH . " + " ".join(patterns), timeout=10)
    values = {}
    for line in str(text).splitlines():
        path, sep, value = line.partition(":")
        if sep:
            values[path] = value.strip()
    return values


def zone_names(device: Any) -> dict[str, str]:
    """``thermal_zone3`` -> ``cpu-1-0`` (the zone's type), for labelling the series."""
    names = {}
    for path, value in _grep(device, [THERMAL_TYPES]).items():
        m = _ZONE.match(path)
        if m:
            names[m.group(1)] = value
    return names


def series_of(raw: dict[str, str], zones: dict[str, str]) -> dict[str, float]:
    """One sample's values by series name, in display units (°C, MHz, mA)."""
    out: dict[str, float] = {}
    for path, text in raw.items():
        try:
            value = float(text)
        except ValueError:
            continue
        zone = _ZONE.match(path)
        cpu = _CPU.match(path)
        if zone:  # millidegrees on every current kernel; a few report whole degrees
            out[f"temp {zones.get(zone.group(1), zone.group(1))} (°C)"] = (
                value / 1000 if abs(value) > 200 else value
            )
        elif cpu:
            out[f"{cpu.group(1)} clock (MHz)"] = value / 1000  # kHz
        elif path.endswith("gpuclk"):
            out["GPU clock (MHz)"] = value / 1e6  # Hz
        elif path.endswith("current_now"):
            out["battery current (mA)"] = value / 1000  # µA; sign depends on the vendor
    return out


@dataclass
class DeviceMonitor:
    """Samples ``device`` every ``interval_s`` on a thread until stopped; samples are kept."""

    device: Any
    interval_s: float = 0.5
    on_sample: Callable[[dict[str, Any]], None] | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> DeviceMonitor:
        self.zones = zone_names(self.device)
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="device-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.sample_once()  # the state right after the run

    def sample_once(self) -> None:
        try:
            values = series_of(_grep(self.device, SAMPLED), self.zones)
        except Exception as exc:  # noqa: BLE001 - a failed sample must not stop the run
            self.errors.append(str(exc))
            return
        sample = {"t_s": round(time.monotonic() - self._start, 3), "values": values}
        self.samples.append(sample)
        if self.on_sample is not None:
            self.on_sample(sample)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.interval_s)

    def to_json(self) -> dict[str, Any]:
        names = sorted({k for s in self.samples for k in s["values"]})
        return {
            "kind": "npu-studio.device-monitor",
            "interval_s": self.interval_s,
            "t_s": [s["t_s"] for s in self.samples],
            "series": {n: [s["values"].get(n) for s in self.samples] for n in names},
            "paths": list(SAMPLED),
            "errors": self.errors[:5],
            "measured": "measured on the device (sysfs)",
        }
