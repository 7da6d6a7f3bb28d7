"""The sweep file (``sweep.json``): which models, which data, and a grid or list of points.

A sweep is declared, not programmed, so it can be reviewed, versioned and re-run::

    {"schema_version": 1,
     "models": ["model.onnx"],
     "calib": "calib.npz",               # image folder, .npy/.npz, or random:N
     "eval": null,                       # held-out data; default: the last samples of calib
     "grid": {"act_bw": [8, 16], "weight_bw": [8], "per_channel": [true, false]},
     "points": [],                       # explicit points, added to the grid's
     "base": {"method": "minmax", "device": null, "perf_mode": "burst"},
     "options": {"profile_runs": 3, "sqnr_backend": "cpu", "timeout_s": 600}}

Every key a point may set is in :data:`POINT_KEYS`, named after the quantise flags. Values are
checked here, before anything runs, against the same tables the quantiser and backend config
use, so a typo fails the whole sweep at once, naming the file and the key, instead of 200 points
failing one by one on a cluster.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import ConfigError

SCHEMA_VERSION = 1

# the defaults of ``npu-studio quantize`` (one source: the plan's own defaults)
DEFAULT_POINT: dict[str, Any] = {
    "act_bw": 8,
    "weight_bw": 8,
    "per_channel": True,
    "method": "minmax",
    "percentile": 99.99,
    "techniques": [],
    "perf_mode": "burst",
    "device": None,
}
POINT_KEYS = tuple(DEFAULT_POINT)
OPTION_DEFAULTS: dict[str, Any] = {
    "profile_runs": 3,  # HTP (emulated) runs whose record the Profiling workspace opens; 0: none
    "sqnr_backend": "cpu",  # where the output SQNR is measured: cpu or htp
    "eval_samples": 8,  # held out from the calibration data when no eval source is given
    "timeout_s": 900.0,  # one point, end to end
    "num_cpus": 1.0,  # Ray resource request of one point
    # Ray's max_calls for the point task: 0 reuses Ray workers (each point's native work runs
    # in a fresh studio worker process anyway); 1 also retires the Ray worker after each point
    "ray_max_calls": 0,
}


def available_techniques() -> tuple[str, ...]:
    """The post-training techniques this studio's quantiser implements (none until it has one).

    Read from the quantiser's own registry when it exists, so a sweep can name only what runs.
    """
    try:
        from studio.core.quantize import techniques as registry  # type: ignore[attr-defined]
    except ImportError:
        return ()
    names = getattr(registry, "TECHNIQUES", None) or getattr(registry, "NAMES", None) or ()
    return tuple(str(n) for n in (names.keys() if isinstance(names, dict) else names))


def _check_value(key: str, value: Any, where: str, source: str) -> Any:
    """``value`` normalised for ``key``, or a ConfigError naming where it came from."""
    from studio.core.calibration import METHODS
    from studio.core.engine.config import PERFORMANCE_MODES
    from studio.core.quantize.plan import ACT_BITWIDTHS, WEIGHT_BITWIDTHS

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key}={value!r}: expected {expected}", path=source)

    if key == "act_bw":
        if not isinstance(value, int) or isinstance(value, bool) or value not in ACT_BITWIDTHS:
            raise bad(" or ".join(map(str, ACT_BITWIDTHS)))
    elif key == "weight_bw":
        if not isinstance(value, int) or isinstance(value, bool) or value not in WEIGHT_BITWIDTHS:
            raise bad(" or ".join(map(str, WEIGHT_BITWIDTHS)))
    elif key == "per_channel":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key == "method":
        if value not in METHODS:
            raise bad("one of " + ", ".join(METHODS))
    elif key == "percentile":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
            raise bad("a number in (0, 100]")
        value = float(value)
    elif key == "techniques":
        if isinstance(value, str):
            value = [v for v in value.replace("+", ",").split(",") if v and v != "none"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of technique names")
        known = available_techniques()
        unknown = [v for v in value if v not in known]
        if unknown:
            have = ", ".join(known) if known else "none are implemented in this studio yet"
            raise bad(f"techniques this quantiser implements ({have}); unknown: {unknown}")
        value = sorted(set(value))
    elif key == "perf_mode":
        if value not in PERFORMANCE_MODES:
            raise bad("one of " + ", ".join(PERFORMANCE_MODES))
    elif key == "device":
        if value is not None:
            from studio.core.devices.catalogue import resolve_device
            from studio.core.errors import BadInputError

            if not isinstance(value, str) or not value.strip():
                raise bad("a device or chipset name from the catalogue")
            try:
                value = resolve_device(value).name  # one spelling: the catalogue's
            except BadInputError as exc:
                raise ConfigError(f"{where}: {exc}", path=source) from exc
    else:
        raise ConfigError(
            f"{where}: unknown key '{key}' (a point sets {', '.join(POINT_KEYS)})", path=source
        )
    return value


def check_point(params: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    """A full point (defaults filled in), every value checked."""
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: a point must be an object, got {params!r}", path=source)
    out = dict(DEFAULT_POINT)
    for key, value in params.items():
        out[key] = _check_value(key, value, where, source)
    return out


@dataclass
class SweepSpec:
    """What to sweep. ``expand()`` gives the points, each a full dict of :data:`POINT_KEYS`."""

    models: list[str]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    base: dict[str, Any] = field(default_factory=dict)
    calib: str | None = None
    eval: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    schema_version: int = SCHEMA_VERSION

    def option(self, name: str) -> Any:
        return self.options.get(name, OPTION_DEFAULTS[name])

    def validate(self) -> None:
        src = self.source
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise ConfigError("sweep: 'models' must be a non-empty list of paths", path=src)
        if not isinstance(self.grid, dict) or not isinstance(self.points, list):
            raise ConfigError("sweep: 'grid' must be an object and 'points' a list", path=src)
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"sweep grid: {key} must be a non-empty list", path=src)
            for v in values:
                _check_value(key, v, f"grid {key}", src)
        check_point(self.base, "base", src)
        for i, p in enumerate(self.points):
            check_point({**self.base, **p}, f"points[{i}]", src)
        for name, value in self.options.items():
            if name not in OPTION_DEFAULTS:
                raise ConfigError(
                    f"sweep options: unknown '{name}' (known: {', '.join(OPTION_DEFAULTS)})",
                    path=src,
                )
            if name == "sqnr_backend" and value not in ("cpu", "htp"):
                raise ConfigError("sweep options: sqnr_backend must be cpu or htp", path=src)
            if name != "sqnr_backend" and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ConfigError(f"sweep options: {name} must be a number >= 0", path=src)

    def expand(self) -> list[dict[str, Any]]:
        """Every point of the sweep: models x (grid product + explicit points), in file order.

        Duplicates (the same model and parameters twice) are kept once.
        """
        self.validate()
        keys = list(self.grid)
        combos = [
            dict(zip(keys, vals, strict=True)) for vals in itertools.product(*self.grid.values())
        ]
        if not combos and not self.points:
            combos = [{}]
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for model in self.models:
            for i, extra in enumerate([*combos, *self.points]):
                params = check_point({**self.base, **extra}, f"point {i}", self.source)
                point = {"model": model, **params}
                ident = json.dumps(point, sort_keys=True)
                if ident not in seen:
                    seen.add(ident)
                    out.append(point)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "models": list(self.models),
            "calib": self.calib,
            "eval": self.eval,
            "grid": {k: list(v) for k, v in self.grid.items()},
            "points": [dict(p) for p in self.points],
            "base": dict(self.base),
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>") -> SweepSpec:
        if not isinstance(data, dict):
            raise ConfigError("a sweep file must hold a JSON object", path=source)
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ConfigError(f"sweep file has no valid schema_version ({version!r})", path=source)
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"sweep schema_version {version} is newer than this studio reads "
                f"({SCHEMA_VERSION}); update npu-studio",
                path=source,
            )
        known = {"schema_version", "models", "calib", "eval", "grid", "points", "base", "options"}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"sweep file: unknown keys {extra}", path=source)
        models = data.get("models")
        if isinstance(models, str):
            models = [models]
        base = Path(source).parent if source != "<memory>" else None
        if isinstance(models, list) and base is not None:
            # paths in the file are relative to the file, as in a project
            models = [
                str(base / m) if isinstance(m, str) and not Path(m).is_absolute() else m
                for m in models
            ]
        calib = data.get("calib")
        ev = data.get("eval")
        if base is not None:
            calib, ev = (_relative_source(v, base) for v in (calib, ev))
        spec = cls(
            models=models if isinstance(models, list) else [],
            grid=data.get("grid") or {},
            points=data.get("points") or [],
            base=data.get("base") or {},
            calib=calib,
            eval=ev,
            options=data.get("options") or {},
            source=source,
        )
        spec.validate()
        return spec

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        return cls.from_json(read_json_strict(path, error_type=ConfigError), source=str(path))

    def save(self, path: str | Path) -> Path:
        atomic_write_json(path, self.to_json())
        return Path(path)


def _relative_source(value: Any, base: Path) -> Any:
    """A data source from the file, resolved against the file's folder (``random:N`` as it is)."""
    if not isinstance(value, str) or value.startswith("random:") or Path(value).is_absolute():
        return value
    return str(base / value)


def parse_grid_arg(item: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2`` from the command line, values typed as the key expects."""
    key, sep, text = item.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not text:
        raise ConfigError(f"--grid '{item}': expected KEY=V1,V2,...")
    if key not in POINT_KEYS:
        raise ConfigError(f"--grid '{item}': unknown key '{key}' (keys: {', '.join(POINT_KEYS)})")
    if key == "techniques":  # a value is a set: 'cle+adaround' or 'none'
        return key, [[v for v in part.split("+") if v and v != "none"] for part in text.split(",")]
    if key == "device":
        return key, [v.strip() for v in text.split(",") if v.strip()]
    values: list[Any] = []
    for raw in text.split(","):
        raw = raw.strip()
        if key in ("act_bw", "weight_bw"):
            try:
                values.append(int(raw))
            except ValueError as exc:
                raise ConfigError(f"--grid {key}: '{raw}' is not a whole number") from exc
        elif key == "per_channel":
            low = raw.lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ConfigError(f"--grid per_channel: '{raw}' is not true/false")
            values.append(low in ("true", "1", "yes", "on"))
        elif key == "percentile":
            try:
                values.append(float(raw))
            except ValueError as exc:
                raise ConfigError(f"--grid percentile: '{raw}' is not a number") from exc
        else:
            values.append(raw)
    return key, values
