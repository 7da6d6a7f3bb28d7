"""On-device latency estimates: how fast a model runs on a named Snapdragon device's NPU.

Why an estimate: on an x86-64 host the HTP backend is an emulator whose times describe this host,
not a phone. What the host does know for real is the graph (shapes, op types, precisions, MACs,
bytes moved). ``features.py`` turns that into per-node features; this module applies per-device,
per-precision coefficients fitted offline (``scripts/fit_device_estimate.py``) on Qualcomm AI Hub's
published phone measurements of a fixed set of torchvision models, and validated on models the fit
never saw (``bench/device_estimate.py``). Every estimate carries that measured error in its label.

Estimates are cached by model content hash + device + coefficient-file hash: auto mixed precision
and sweeps ask for one per candidate.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json
from studio.core.devices.catalogue import Device, resolve_device
from studio.core.devices.features import (
    FEATURES,
    HTP_MAX_RANK,
    NodeFeatures,
    is_quantized,
    node_features,
    over_rank,
)
from studio.core.devices.folding import fold_shape_constants
from studio.core.errors import ConfigError, StudioError
from studio.core.hashing import file_sha256
from studio.core.model.graph import ModelGraph
from studio.core.overlay import NodeOverlay

COEFFS_PATH = Path(__file__).resolve().parents[3] / "resources" / "devices" / "estimate_coeffs.json"
SCHEMA_VERSION = 3  # 2: CPU figures (assumed) beside the NPU estimate; 3: with the rates used
# ASSUMED rates of the phone's CPU (fp32, a few big cores): no phone CPU figure is published with
# the AI Hub data the studio ships, so these are visible, labelled assumptions, not a fit.
ASSUMED_CPU = {"macs_per_ms": 2e7, "bytes_per_ms": 5e6, "op_overhead_ms": 0.002}


# The same rates as the assignment's assumed constants (assumptions.py), under its keys.
CPU_ASSUMPTION_KEYS = {
    "cpu_macs_per_ms": "macs_per_ms",
    "cpu_bytes_per_ms": "bytes_per_ms",
    "cpu_op_overhead_ms": "op_overhead_ms",
}


def cpu_rates(assumptions: Mapping[str, float] | None = None) -> dict[str, float]:
    """The assumed phone-CPU rates in force: ASSUMED_CPU, overridden by the project's assumed
    constants (``cpu_macs_per_ms`` etc., as the assignment reads them; other keys are not CPU's)."""
    rates = dict(ASSUMED_CPU)
    for key, value in (assumptions or {}).items():
        if key in CPU_ASSUMPTION_KEYS:
            rates[CPU_ASSUMPTION_KEYS[key]] = float(value)
    return rates


def assumed_cpu_ms(
    macs: float, activation_bytes: float, rates: Mapping[str, float] | None = None
) -> float:
    """Assumed phone-CPU time of one op: dispatch + the larger of compute and memory time."""
    a = rates or ASSUMED_CPU
    return a["op_overhead_ms"] + max(macs / a["macs_per_ms"], activation_bytes / a["bytes_per_ms"])


@dataclass
class NodeEstimate:
    id: str
    op_type: str
    ms: float
    precision: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "op_type": self.op_type, "ms": self.ms, "precision": self.precision}


@dataclass
class DeviceEstimate:
    """A predicted end-to-end latency on one device's NPU, with its per-node breakdown."""

    device: str
    device_label: str
    soc_model: int
    htp_arch: int
    precision: str
    total_ms: float
    overhead_ms: float
    nodes: list[NodeEstimate]
    median_abs_rel_err: float | None
    validation_models: int
    spearman: float | None
    coefficients_from: str  # the fitted device whose coefficients were used
    fitted_on: list[str] = field(default_factory=list)
    model_sha256: str = ""
    kind: str = "estimated"
    backend: str = "htp"
    notes: list[str] = field(default_factory=list)
    # The same model on the phone's CPU, from ASSUMED rates (kind "assumed"), per node and total.
    cpu_total_ms: float = 0.0
    cpu_nodes: dict[str, float] = field(default_factory=dict)
    cpu_assumptions: dict[str, float] = field(default_factory=lambda: dict(ASSUMED_CPU))

    @property
    def cpu_label(self) -> str:
        return (
            f"≈{_fmt_ms(self.cpu_total_ms)} ms on {self.device}'s CPU (assumed rates, not measured)"
        )

    @property
    def error_text(self) -> str:
        if self.median_abs_rel_err is None:
            return "error not measured for this device"
        return (
            f"±{self.median_abs_rel_err * 100:.0f}% median error on "
            f"{self.validation_models} validation models"
        )

    @property
    def label(self) -> str:
        """'≈0.41 ms on Samsung Galaxy S24 (estimated; ±N% median error on M validation models)'."""
        via = (
            "" if self.coefficients_from == self.device else f", via {self.coefficients_from}'s fit"
        )
        return f"≈{_fmt_ms(self.total_ms)} ms on {self.device} (estimated{via}; {self.error_text})"

    def node_ms(self) -> dict[str, float]:
        return {n.id: n.ms for n in self.nodes}

    def overlay(self) -> NodeOverlay:
        """Per-node estimated ms, as the graph, the project and ``estimate --json`` carry it."""
        source = f"{self.device} ({self.error_text})"
        return NodeOverlay(
            f"Estimated ms on {self.device}", self.node_ms(), "ms", "estimated", source, "magma"
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["nodes"] = [n.to_json() for n in self.nodes]
        d["label"] = self.label
        d["cpu_label"] = self.cpu_label
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceEstimate:
        d = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        d["nodes"] = [NodeEstimate(**n) for n in data.get("nodes", [])]
        return cls(**d)


def _fmt_ms(ms: float) -> str:
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}"


@lru_cache(maxsize=4)
def load_coefficients(path: str | None = None) -> dict[str, Any]:
    """The shipped fitted coefficients (ConfigError naming the file when missing or malformed)."""
    p = Path(path) if path else COEFFS_PATH
    try:
        data = json.loads(p.read_text())
        if not data.get("devices"):
            raise ValueError("no fitted devices")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"device estimate coefficients unreadable: {exc}", path=str(p)) from exc
    data["_sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    return data


def _coeff_device(device: Device, coeffs: dict[str, Any]) -> str:
    """The fitted device to use: the device itself, else a fitted device of the same chipset,
    else the fitted device with the closest HTP architecture."""
    fitted = coeffs["devices"]
    if device.name in fitted:
        return device.name
    for name, entry in fitted.items():
        if entry.get("chipset_id") == device.chipset_id:
            return name
    return min(fitted, key=lambda n: (abs(int(fitted[n]["htp_arch"]) - device.htp_arch), n))


def _precision_key(bits: int, quantized: bool) -> str:
    if not quantized or bits >= 32:
        return "float"
    return "w8a16" if bits > 8 else "w8a8"


def _group(entry: dict[str, Any], key: str) -> dict[str, Any]:
    groups = entry["precisions"]
    if key in groups:
        return groups[key]
    return groups["w8a8"] if key.startswith("w8") and "w8a8" in groups else groups["float"]


def model_precision(feats: list[NodeFeatures], quantized: bool) -> str:
    if not quantized:
        return "fp16"
    bits = {f.bits for f in feats}
    if bits <= {8}:
        return "w8a8"
    if bits <= {16} and quantized:
        return "w8a16"
    return (
        "mixed("
        + "/".join(f"{'fp' if b == 16 and not quantized else 'int'}{b}" for b in sorted(bits))
        + ")"
    )


def estimate_graph(
    graph: ModelGraph,
    device: Device | str | None = None,
    *,
    assumptions: Mapping[str, float] | None = None,
) -> DeviceEstimate:
    """Estimate from an already loaded graph (no cache). ``assumptions``: the project's assumed
    constants (as in ``assignment/assumptions.py``); the phone-CPU figure uses its CPU rates."""
    dev = resolve_device(device)
    coeffs = load_coefficients()
    fitted_name = _coeff_device(dev, coeffs)
    entry = coeffs["devices"][fitted_name]
    quantized = is_quantized(graph)
    # as compiled: shape arithmetic folded (the CPU figure below counts the same graph)
    graph = fold_shape_constants(graph)
    feats = node_features(graph)
    nodes: list[NodeEstimate] = []
    for f in feats:
        key = _precision_key(f.bits, quantized)
        coef = _group(entry, key)["coef"]
        ms = sum(coef.get(k, 0.0) * f.values.get(k, 0.0) for k in FEATURES)
        nodes.append(NodeEstimate(f.id, f.op_type, float(ms), "fp16" if key == "float" else key))
    main_key = "float" if not quantized else "w8a8"
    group = _group(entry, main_key)
    overhead = float(group.get("intercept_ms", 0.0))
    total = overhead + sum(n.ms for n in nodes)
    val = (coeffs.get("validation", {}).get(fitted_name, {}) or {}).get(main_key) or {}
    notes = []
    if fitted_name != dev.name:
        notes.append(
            f"no AI Hub fit for {dev.name}; coefficients of {fitted_name} "
            f"(HTP v{entry['htp_arch']}) used"
        )
    too_high = over_rank(graph, feats)
    if too_high:
        notes.append(
            f"{len(too_high)} node(s) have tensors of rank > {HTP_MAX_RANK}, which the HTP does not "
            f"take (e.g. {too_high[0]}): on the phone they run on the CPU between HTP partitions, "
            "which this estimate prices as HTP work, so it is likely low"
        )
    rates = cpu_rates(assumptions)
    cpu_nodes = {
        n.id: assumed_cpu_ms(float(n.macs), float(n.activation_bytes or 0), rates)
        for n in graph.nodes
        if n.op_type not in ("Constant",)
    }
    return DeviceEstimate(
        cpu_total_ms=float(sum(cpu_nodes.values())),
        cpu_nodes=cpu_nodes,
        cpu_assumptions=rates,
        device=dev.name,
        device_label=dev.label,
        soc_model=dev.soc_model,
        htp_arch=dev.htp_arch,
        precision=model_precision(feats, quantized),
        total_ms=float(total),
        overhead_ms=overhead,
        nodes=nodes,
        median_abs_rel_err=val.get("median_abs_rel_err") if fitted_name == dev.name else None,
        validation_models=int(val.get("n", 0)),
        spearman=val.get("spearman"),
        coefficients_from=fitted_name,
        fitted_on=list(coeffs.get("provenance", {}).get("fit_models", [])),
        notes=notes,
    )


def estimate_cache_dir() -> Path:
    root = os.environ.get("NPU_STUDIO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "npu-studio"
    )
    return Path(root) / "estimates"


def estimate_model(
    model_path: str | Path,
    device: Device | str | None = None,
    *,
    use_cache: bool = True,
    assumptions: Mapping[str, float] | None = None,
) -> DeviceEstimate:
    """Predicted latency of the model at ``model_path`` on ``device``'s NPU (default target if None).

    A float model is estimated as HTP runs it (fp16); a QDQ model at its own int8/int16 precisions.
    Cached on disk by model content hash, device, coefficient file and the assumed CPU rates
    (``assumptions``: the project's assumed constants; see :func:`estimate_graph`).
    """
    dev = resolve_device(device)
    sha = file_sha256(model_path)
    coeffs = load_coefficients()
    rates = json.dumps(cpu_rates(assumptions), sort_keys=True)
    key = hashlib.sha256(
        f"{sha}|{dev.name}|{coeffs['_sha256']}|{SCHEMA_VERSION}|{rates}".encode()
    ).hexdigest()[:32]
    cache = estimate_cache_dir() / f"{key}.json"
    if use_cache and cache.exists():
        try:
            return DeviceEstimate.from_json(json.loads(cache.read_text()))
        except (OSError, ValueError, TypeError):
            pass  # a damaged cache entry is recomputed
    est = estimate_graph(ModelGraph.load(model_path), dev, assumptions=assumptions)
    est.model_sha256 = sha
    if use_cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(cache, est.to_json())
        except (OSError, StudioError):
            pass  # the cache is an optimisation; a read-only home must not fail an estimate
    return est
