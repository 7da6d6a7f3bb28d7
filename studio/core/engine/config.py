"""``backend_config.json``: per-backend settings mapped onto QNN EP provider and ORT session options.

Users write friendly names (``performance_mode``, ``graph_finalization_mode``); this module maps
them onto the exact QNN EP option names (REFERENCE.md §3) and checks their types and ranges. A key
we do not know is REPORTED in ``warnings`` (never silently dropped, never fatal: a newer file may
carry options an older studio does not understand); a wrong type, NaN or an out-of-range value is a
ConfigError naming the file and the field.

Example::

    {"schema_version": 1,
     "htp_config": {"performance_mode": "burst", "precision_mode": "int8", "soc_model": 60,
                    "htp_arch": 73, "vtcm_mb": 8, "graph_finalization_mode": 3},
     "cpu_config": {"num_threads": 4, "graph_optimization_level": "all"}}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core import jsonread
from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import ConfigError
from studio.core.model.ops import is_quantized_model  # noqa: F401 - callers import it here

SCHEMA_VERSION = 1

PERFORMANCE_MODES = (
    "burst",
    "balanced",
    "default",
    "high_performance",
    "high_power_saver",
    "low_balanced",
    "low_power_saver",
    "power_saver",
    "extreme_power_saver",
    "sustained_high_performance",
)
PRECISION_MODES = ("auto", "int8", "fp16")
CONTEXT_PRIORITIES = ("low", "normal", "normal_high", "high")
HTP_ARCHS = (68, 69, 73, 75, 79, 81)
GRAPH_OPT_LEVELS = ("disabled", "basic", "extended", "all")
PROFILING_LEVELS = ("off", "basic", "detailed", "optrace")

# field -> (type, allowed values or (min, max), QNN provider option name or None)
_HTP_FIELDS: dict[str, tuple[type, Any, str | None]] = {
    "performance_mode": (str, PERFORMANCE_MODES, "htp_performance_mode"),
    "precision_mode": (str, PRECISION_MODES, None),
    "vtcm_mb": (int, (1, 64), "vtcm_mb"),
    "device_id": (int, (0, 64), "device_id"),
    "soc_model": (int, (1, 10_000), "soc_model"),
    "htp_arch": (int, HTP_ARCHS, "htp_arch"),
    "graph_finalization_mode": (int, (0, 3), "htp_graph_finalization_optimization_mode"),
    "offload_graph_io_quantization": (bool, None, "offload_graph_io_quantization"),
    "context_priority": (str, CONTEXT_PRIORITIES, "qnn_context_priority"),
    "rpc_control_latency": (int, (0, 1_000_000), "rpc_control_latency"),
    "profiling_level": (str, PROFILING_LEVELS, "profiling_level"),
    "provider_options": (dict, None, None),
}
_GPU_FIELDS: dict[str, tuple[type, Any, str | None]] = {
    "context_priority": (str, CONTEXT_PRIORITIES, "qnn_context_priority"),
    "device_id": (int, (0, 64), "device_id"),
    "provider_options": (dict, None, None),
}
_CPU_FIELDS: dict[str, tuple[type, Any, str | None]] = {
    "num_threads": (int, (0, 1024), None),
    "graph_optimization_level": (str, GRAPH_OPT_LEVELS, None),
    "session_options": (dict, None, None),
}
_SECTIONS = {"htp_config": _HTP_FIELDS, "gpu_config": _GPU_FIELDS, "cpu_config": _CPU_FIELDS}
_SECTION_OF_BACKEND = {"htp": "htp_config", "gpu": "gpu_config", "cpu": "cpu_config"}


@dataclass
class SessionArgs:
    """Keyword arguments for :func:`studio.core.engine.sessions.make_session`, plus what to tell the user."""

    provider_options: dict[str, str] = field(default_factory=dict)
    session_config: dict[str, str] = field(default_factory=dict)
    intra_op_num_threads: int | None = None
    graph_optimization_level: str | None = None
    warnings: list[str] = field(default_factory=list)

    def make_session_kwargs(self) -> dict[str, Any]:
        return {
            "provider_options": dict(self.provider_options),
            "session_config": dict(self.session_config),
            "intra_op_num_threads": self.intra_op_num_threads,
            "graph_optimization_level": self.graph_optimization_level,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "provider_options": self.provider_options,
            "session_config": self.session_config,
            "intra_op_num_threads": self.intra_op_num_threads,
            "graph_optimization_level": self.graph_optimization_level,
            "warnings": self.warnings,
        }


@dataclass
class BackendConfig:
    """The validated content of a backend_config.json (sections are plain checked dicts)."""

    htp_config: dict[str, Any] = field(default_factory=dict)
    gpu_config: dict[str, Any] = field(default_factory=dict)
    cpu_config: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    warnings: list[str] = field(default_factory=list)
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": self.schema_version}
        for name in _SECTIONS:
            if getattr(self, name):
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_json(cls, data: Any, source: str = "backend_config.json") -> BackendConfig:
        """Validate ``data``; ConfigError for bad types/values, warnings for unknown keys."""
        doc = jsonread.wrap(data, source, ConfigError)
        config = cls(source=source)
        version = doc.key("schema_version", SCHEMA_VERSION).integer(low=1)
        if version > SCHEMA_VERSION:
            config.warnings.append(
                f"{source}: schema_version {version} is newer than this studio's "
                f"({SCHEMA_VERSION}); unknown keys are ignored"
            )
        for key, section in doc.items():
            if key == "schema_version":
                continue
            fields = _SECTIONS.get(key)
            if fields is None:
                config.warnings.append(f"{source}: unknown section '{key}' ignored")
                continue
            setattr(config, key, _check_section(section, fields, config.warnings))
        return config

    @classmethod
    def load(cls, path: str | Path) -> BackendConfig:
        return cls.from_json(read_json_strict(path, error_type=ConfigError), source=str(path))

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_json())

    def session_args(self, backend: str, *, quantized: bool | None = None) -> SessionArgs:
        """Provider/session options for ``backend``; ``quantized`` picks HTP precision in auto mode."""
        args = SessionArgs(warnings=list(self.warnings))
        if backend == "htp":
            _htp_args(self.htp_config, args, quantized, self.source or "a backend_config.json")
        elif backend == "gpu":
            _qnn_args(self.gpu_config, _GPU_FIELDS, args)
        elif backend == "cpu":
            cfg = self.cpu_config
            args.intra_op_num_threads = cfg.get("num_threads") or None
            args.graph_optimization_level = cfg.get("graph_optimization_level")
            args.session_config.update(
                {k: str(v) for k, v in cfg.get("session_options", {}).items()}
            )
        for section, name in ((s, b) for b, s in _SECTION_OF_BACKEND.items()):
            if name != backend and getattr(self, section):
                args.warnings.append(f"'{section}' does not apply to backend '{backend}'")
        return args


def _check_section(
    section: jsonread.Field,
    fields: dict[str, tuple[type, Any, str | None]],
    warnings: list[str],
) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    source = section.source
    for key, item in section.items():
        value = item.value
        if key not in fields:
            warnings.append(
                f"{source}: {item.where}: unknown key, ignored (known: {', '.join(fields)})"
            )
            continue
        kind, allowed, _ = fields[key]
        if value is None:
            continue
        if kind is dict:
            if not isinstance(value, dict) or not all(
                isinstance(v, (str, int, float, bool)) and _finite(v) for v in value.values()
            ):
                raise item.fail("expected an object of strings/numbers")
            warnings.append(
                f"{source}: {item.where}: {len(value)} option(s) passed through unchecked: "
                + ", ".join(sorted(value))
                + " (onnxruntime-qnn accepts unknown option names and values without an error)"
            )
            checked[key] = {str(k): v for k, v in value.items()}
            continue
        where = item.where
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} is {value}, expected a finite {kind.__name__}", path=source)
        value = {int: item.integer, str: item.string, bool: item.boolean}[kind]()
        if isinstance(allowed, tuple) and kind is int and len(allowed) == 2 and key != "htp_arch":
            low, high = allowed
            if not low <= value <= high:
                raise ConfigError(f"{where} = {value} is outside [{low}, {high}]", path=source)
        elif isinstance(allowed, tuple) and value not in allowed:
            raise ConfigError(
                f"{where} = {value!r} is not one of {', '.join(map(str, allowed))}", path=source
            )
        checked[key] = value
    return checked


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _qnn_args(
    cfg: dict[str, Any], fields: dict[str, tuple[type, Any, str | None]], args: SessionArgs
) -> None:
    for key, value in cfg.items():
        option = fields[key][2]
        if option is not None:
            args.provider_options[option] = (
                ("1" if value else "0") if isinstance(value, bool) else str(value)
            )
    for key, value in cfg.get("provider_options", {}).items():
        args.provider_options[str(key)] = str(value)


def _htp_args(cfg: dict[str, Any], args: SessionArgs, quantized: bool | None, source: str) -> None:
    _qnn_args(cfg, _HTP_FIELDS, args)
    precision = cfg.get("precision_mode", "auto")
    fp16 = precision == "fp16" or (precision == "auto" and quantized is False)
    if fp16:
        args.provider_options["enable_htp_fp16_precision"] = "1"
        if "soc_model" not in args.provider_options:
            # fp16 needs a soc_model: the target device's (--device, the project's, or the default)
            from studio.core.engine.sessions import apply_htp_target

            apply_htp_target(args.provider_options)
    elif precision == "int8" and quantized is False:
        args.warnings.append(
            "precision_mode int8 with a float model: there is no quantisation to run in int8, so "
            "the graph runs in float (fp32 in the x86 simulator); quantise the model, or set "
            "precision_mode fp16 to match how HTP devices run float graphs"
        )


def load_backend_config(path: str | Path | None) -> BackendConfig:
    """The config at ``path``, or the defaults when no file is given."""
    return BackendConfig() if path is None else BackendConfig.load(path)


def field_option(section: str, key: str) -> str:
    """What a backend_config.json field becomes in the session, in words (for editors and docs).

    ``htp_config.vtcm_mb`` -> ``QNN provider option vtcm_mb``; fields without a one-to-one option
    say how they act (precision picks fp16, threads set the session's intra-op threads).
    """
    if section == "htp_config" and key == "precision_mode":
        return "fp16: QNN provider options enable_htp_fp16_precision=1 + soc_model; int8/auto: none"
    if section == "cpu_config" and key == "num_threads":
        return "ORT session option intra_op_num_threads"
    if section == "cpu_config" and key == "graph_optimization_level":
        return "ORT session option graph_optimization_level"
    fields = _SECTIONS.get(section, {})
    if key not in fields:
        return "not a backend_config.json field"
    option = fields[key][2]
    return f"QNN provider option {option}" if option else "passed through as given"


def field_choices(section: str, key: str) -> Any:
    """The allowed values (tuple) or (min, max) range of a field, as the validator checks them."""
    return _SECTIONS[section][key][1]
