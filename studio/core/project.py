"""The project: everything a user decided about one model, saved so that no work is ever lost.

A ``.npustudio`` file is JSON with a ``schema_version`` and a migration path. It keeps the model
path and sha256 (a moved or changed model is detected), input-shape fixes, calibration settings
and cache key, the quantisation plan with every edit, backend config, constraints and pins,
profiling run history (results stored beside it in ``<name>.runs/``), overlays and UI layout.

Saves are atomic; autosave writes a sibling recovery file that is offered back after a crash.
Workspace-specific sections are kept as plain JSON dicts owned by their core modules
(``QuantPlan.to_json()``, ...): this module validates the envelope and the types it knows, and
never drops a section it does not understand.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import ConfigError
from studio.core.hashing import file_sha256
from studio.core.jsonread import Field

SCHEMA_VERSION = 2
# Run records written off the caller's thread (``Project.add_run(..., background=True)``): one
# writer, so records land in the order they were added.
_RUN_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-record-writer")
PROJECT_SUFFIX = ".npustudio"
BACKENDS = ("htp", "gpu", "cpu")


def _write_record(target: Path, record: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
    atomic_write_json(target, record() if callable(record) else record)


@dataclass
class Constraints:
    """What the user asked of the backend assignment."""

    power_critical: bool = False
    performance_critical: bool = False
    latency_budget_ms: float | None = None
    pins: dict[str, str] = field(default_factory=dict)  # node id -> backend
    # The ASSUMED constants the user changed (key -> value; studio.core.assignment.assumptions
    # names them and holds the defaults). Only changed values are stored.
    assumptions: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "power_critical": self.power_critical,
            "performance_critical": self.performance_critical,
            "latency_budget_ms": self.latency_budget_ms,
            "pins": dict(self.pins),
            "assumptions": dict(self.assumptions),
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>") -> Constraints:
        doc = _field(data, source, "constraints")
        doc.object()
        budget_field = doc.key("latency_budget_ms", None).optional()
        budget = None
        if budget_field is not None:
            budget = budget_field.number()
            if budget <= 0:
                raise budget_field.fail("must be > 0")
        pins = {}
        for node, backend in doc.key("pins", {}).items():
            if backend.value not in BACKENDS:
                raise ConfigError(
                    f"constraints.pins['{node}']: unknown backend '{backend.value}' "
                    f"(expected one of {', '.join(BACKENDS)})",
                    path=source,
                )
            pins[str(node)] = str(backend.value)
        assumed: dict[str, float] = {}
        for key, value in doc.key("assumptions", {}).items():
            assumed[str(key)] = value.number()
            if assumed[str(key)] <= 0:
                raise value.fail("must be > 0")
        return cls(
            power_critical=doc.key("power_critical", False).boolean(),
            performance_critical=doc.key("performance_critical", False).boolean(),
            latency_budget_ms=budget,
            pins=pins,
            assumptions=assumed,
        )


@dataclass
class RunRef:
    """A profiling run kept in the project's history; the full record lives in its own file."""

    id: str
    label: str
    file: str  # relative to the project's runs folder
    backend: str = ""
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "file": self.file,
            "backend": self.backend,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: Any, source: str, where: str) -> RunRef:
        doc = _field(data, source, where)
        run_id = doc.key("id").string()
        file = doc.key("file")
        if Path(file.string()).is_absolute() or ".." in Path(file.value).parts:
            raise file.fail("must stay inside the runs folder")
        return cls(
            id=run_id,
            label=str(doc.key("label", run_id).value),
            file=file.value,
            backend=str(doc.key("backend", "").value),
            created=doc.key("created", 0.0).number(),
        )


@dataclass
class ModelCheck:
    """Result of comparing the project's recorded model with what is on disk now."""

    status: str  # "ok" | "missing" | "changed"
    path: Path
    expected_sha256: str
    actual_sha256: str | None = None

    @property
    def message(self) -> str:
        if self.status == "missing":
            return f"the model file {self.path} is missing (moved or deleted?)"
        if self.status == "changed":
            return (
                f"the model file {self.path} changed since the project was saved "
                f"(sha256 {self.expected_sha256[:12]}… -> {(self.actual_sha256 or '')[:12]}…)"
            )
        return "model unchanged"


@dataclass
class Project:
    """All of a user's decisions about one model. Mutate through methods so ``dirty`` is right."""

    model_path: Path
    model_sha256: str = ""
    path: Path | None = None  # where it is saved; None until the first save
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    quant_plan: dict[str, Any] = field(default_factory=dict)
    backend_config: dict[str, Any] = field(default_factory=dict)
    constraints: Constraints = field(default_factory=Constraints)
    runs: list[RunRef] = field(default_factory=list)
    overlays: dict[str, Any] = field(default_factory=dict)
    ui: dict[str, Any] = field(default_factory=dict)
    # The one target device of this project (a catalogue name); "" = the studio's default target.
    target_device: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # sections from newer tools, kept verbatim
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # run id -> the background write of its record (``add_run(background=True)``), until saved
    _run_writes: dict[str, Future] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    dirty: bool = False

    # ----- creation and persistence -------------------------------------------------------
    @classmethod
    def new(cls, model_path: str | Path, sha256: str | None = None) -> Project:
        """A fresh project around a model; ``sha256`` "" leaves the hash to be set later (the
        window hashes a large model on its loader thread, not while the user waits)."""
        model = Path(model_path).resolve()
        if sha256 is None:
            sha256 = file_sha256(model) if model.is_file() else ""
        return cls(model_path=model, model_sha256=sha256)

    @classmethod
    def load(cls, path: str | Path) -> Project:
        """Read and validate a project file; errors name the file and the field."""
        source = Path(path)
        data = read_json_strict(source, error_type=ConfigError)
        project = cls.from_json(data, source=str(source), base=source.parent)
        project.path = source.resolve()
        project.dirty = False
        return project

    def save(self, path: str | Path | None = None) -> Path:
        """Atomically write the project; on failure the previous file stays intact."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ConfigError("the project has no file yet: choose where to save it")
        if target.suffix != PROJECT_SUFFIX:
            target = target.with_suffix(PROJECT_SUFFIX)
        target = target.resolve()
        self._finish_run_writes()
        old_runs = self.runs_dir()
        new_runs = target.with_suffix(".runs")
        if old_runs != new_runs and old_runs.is_dir():
            # The records travel with the project (a first save, or "save as"); copied before the
            # project that references them is written. An unsaved project's scratch copy goes.
            shutil.copytree(old_runs, new_runs, dirs_exist_ok=True)
        atomic_write_json(target, self.to_json(base=target.parent))
        if self.path is None and old_runs != new_runs:
            shutil.rmtree(old_runs, ignore_errors=True)
        self.path = target
        self.dirty = False
        discard_recovery(self)
        return target

    def autosave(self) -> Path:
        """Write the recovery file (not the project itself); cheap enough to call often."""
        target = autosave_path(self)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_json(base=(self.path.parent if self.path else None))
        data["autosave_of"] = str(self.path) if self.path else None
        data["autosaved_at"] = time.time()
        atomic_write_json(target, data)
        return target

    # ----- edits --------------------------------------------------------------------------
    def update(self, section: str, value: Any) -> None:
        """Replace one section (e.g. ``quant_plan``) and mark the project dirty."""
        if section not in _SECTIONS:
            raise ConfigError(f"unknown project section '{section}'")
        if section == "constraints" and not isinstance(value, Constraints):
            value = Constraints.from_json(value)
        setattr(self, section, value)
        self.dirty = True

    def add_run(
        self,
        run_id: str,
        label: str,
        record: dict[str, Any] | Callable[[], dict[str, Any]],
        backend: str = "",
        *,
        background: bool = False,
    ) -> RunRef:
        """Store a profiling run record beside the project and reference it in the history.

        ``background=True`` lists the run at once and writes its record on a writer thread:
        a large model's record is megabytes of JSON, and checking, serialising and fsyncing it
        held the UI thread. ``run_write(run_id)`` is that write's future (its exception is
        the failure); ``save`` waits for pending writes and leaves out runs whose write failed.
        ``record`` may be a callable that makes the record (``ProfileRun.to_json``), so that
        building it happens on the writer thread too (~0.1 s for a 20k-node run).
        """
        folder = self.runs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
        target = folder / f"{safe}.json"
        if background:
            self._run_writes[run_id] = _RUN_WRITER.submit(_write_record, target, record)
        else:
            _write_record(target, record)
        ref = RunRef(
            id=run_id, label=label, file=f"{safe}.json", backend=backend, created=time.time()
        )
        self.runs = [r for r in self.runs if r.id != run_id] + [ref]
        self.dirty = True
        return ref

    def run_write(self, run_id: str) -> Future | None:
        """The pending or finished background write of ``run_id``'s record (None: none)."""
        return self._run_writes.get(run_id)

    def forget_run(self, run_id: str) -> None:
        """Drop a run from the history (its record could not be written)."""
        self._run_writes.pop(run_id, None)
        kept = [r for r in self.runs if r.id != run_id]
        if len(kept) != len(self.runs):
            self.runs = kept
            self.dirty = True

    def _finish_run_writes(self) -> None:
        """Wait for background record writes; a run whose write failed leaves the history."""
        for run_id, write in list(self._run_writes.items()):
            if write.exception() is not None:
                self.forget_run(run_id)
        self._run_writes.clear()

    def rename_run(self, run_id: str, label: str) -> None:
        """Relabel a run in the history; its record, place and time stay as they were."""
        label = label.strip()
        if not label:
            raise ConfigError("a run label cannot be empty")
        for ref in self.runs:
            if ref.id == run_id:
                if ref.label != label:
                    ref.label = label
                    self.dirty = True
                return
        raise ConfigError(f"no run '{run_id}' in the project")

    def load_run(self, run_id: str) -> dict[str, Any]:
        write = self._run_writes.get(run_id)
        if write is not None and write.exception() is not None:  # waits for a pending write
            raise ConfigError(f"run '{run_id}' was not saved: {write.exception()}")
        for ref in self.runs:
            if ref.id == run_id:
                return read_json_strict(self.runs_dir() / ref.file, error_type=ConfigError)
        raise ConfigError(f"no run '{run_id}' in the project")

    def runs_dir(self) -> Path:
        if self.path is not None:
            return self.path.with_suffix(".runs")
        return _data_home() / "unsaved" / f"{self.id}.runs"

    def check_model(self) -> ModelCheck:
        """Detect a moved or changed model so the UI can ask the user what to do."""
        if not self.model_path.is_file():
            return ModelCheck("missing", self.model_path, self.model_sha256)
        actual = file_sha256(self.model_path)
        if self.model_sha256 and actual != self.model_sha256:
            return ModelCheck("changed", self.model_path, self.model_sha256, actual)
        return ModelCheck("ok", self.model_path, self.model_sha256, actual)

    def relocate_model(self, new_path: str | Path, accept_changed: bool = False) -> ModelCheck:
        """Point the project at a moved model; refuse a different model unless accepted."""
        candidate = Path(new_path).resolve()
        if not candidate.is_file():
            raise ConfigError("model file not found", path=str(candidate))
        actual = file_sha256(candidate)
        if self.model_sha256 and actual != self.model_sha256 and not accept_changed:
            return ModelCheck("changed", candidate, self.model_sha256, actual)
        self.model_path, self.model_sha256, self.dirty = candidate, actual, True
        return ModelCheck("ok", candidate, actual, actual)

    # ----- JSON ---------------------------------------------------------------------------
    def to_json(self, base: Path | None = None) -> dict[str, Any]:
        model = self.model_path
        if base is not None:
            try:
                model = Path(os.path.relpath(self.model_path, base))
            except ValueError:  # different drives on Windows
                model = self.model_path
        data = {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "model": {"path": str(model), "sha256": self.model_sha256},
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "calibration": self.calibration,
            "quant_plan": self.quant_plan,
            "backend_config": self.backend_config,
            "constraints": self.constraints.to_json(),
            "runs": [r.to_json() for r in self.runs],
            "overlays": self.overlays,
            "ui": self.ui,
            "target_device": self.target_device,
        }
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>", base: Path | None = None) -> Project:
        data = migrate(_field(data, source).object(), source)
        doc = _field(data, source)
        model = doc.key("model", None)
        model_path = Path(model.key("path", None).string())
        if not model_path.is_absolute() and base is not None:
            model_path = (base / model_path).resolve()
        shapes = {}
        for name, dims in doc.key("input_shapes", {}).items():
            shapes[str(name)] = [d.integer(low=1) for d in dims.elements()]

        def section(key: str) -> dict[str, Any]:
            return doc.key(key, {}).object()

        known = {
            "schema_version",
            "id",
            "model",
            "input_shapes",
            "autosave_of",
            "autosaved_at",
            *_SECTIONS,
        }
        project = cls(
            model_path=model_path,
            model_sha256=str(model.key("sha256", "").value),
            input_shapes=shapes,
            calibration=section("calibration"),
            quant_plan=section("quant_plan"),
            backend_config=section("backend_config"),
            constraints=Constraints.from_json(data.get("constraints", {}), source),
            runs=[RunRef.from_json(r, source, r.where) for r in doc.key("runs", []).elements()],
            overlays=section("overlays"),
            ui=section("ui"),
            target_device=doc.key("target_device", "").string(),
            extra={k: v for k, v in data.items() if k not in known},
            id=str(data.get("id") or uuid.uuid4().hex),
        )
        return project


_SECTIONS = (
    "calibration",
    "quant_plan",
    "backend_config",
    "constraints",
    "runs",
    "overlays",
    "ui",
    "input_shapes",
    "target_device",
)


def migrate(data: dict[str, Any], source: str = "<memory>") -> dict[str, Any]:
    """Bring an older project document up to SCHEMA_VERSION, one step at a time.

    v1 (first prototype) kept ``model_path``/``model_sha256`` at the top level and pins beside the
    constraints; v2 groups them. A newer file than this tool understands is refused, not guessed.
    """
    version = _field(data, source).key("schema_version", 1).integer()
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"written by a newer npu-studio (schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}): update npu-studio to open it",
            path=source,
        )
    data = dict(data)
    if version == 1:
        if "model" not in data:
            data["model"] = {
                "path": data.pop("model_path", None),
                "sha256": data.pop("model_sha256", ""),
            }
        constraints = dict(_field(data.get("constraints") or {}, source, "constraints").object())
        if "pins" in data:
            constraints["pins"] = data.pop("pins")
        data["constraints"] = constraints
        version = 2
    data["schema_version"] = version
    return data


# ----- autosave and recovery ------------------------------------------------------------------
def _data_home() -> Path:
    root = os.environ.get("NPU_STUDIO_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "npu-studio"
    )
    return Path(root)


def autosave_path(project: Project) -> Path:
    """Saved projects autosave beside themselves; untitled ones under the user's data folder."""
    if project.path is not None:
        return project.path.with_name(f".{project.path.name}.autosave")
    return _data_home() / "autosave" / f"{project.id}{PROJECT_SUFFIX}"


def find_recovery(path: str | Path) -> Path | None:
    """An autosave newer than the saved project, i.e. work that a crash would otherwise lose."""
    target = Path(path).resolve()
    candidate = target.with_name(f".{target.name}.autosave")
    if not candidate.is_file():
        return None
    if target.is_file() and candidate.stat().st_mtime <= target.stat().st_mtime:
        return None
    return candidate


def orphan_autosaves() -> list[Path]:
    """Autosaves of untitled projects left behind by a crash (offered at start-up)."""
    folder = _data_home() / "autosave"
    return sorted(folder.glob(f"*{PROJECT_SUFFIX}")) if folder.is_dir() else []


def find_model_recovery(model_path: str | Path) -> Path | None:
    """The newest autosave of an *untitled* project on ``model_path``, if one was left behind.

    Opening a model alone (``npu-studio MODEL``, ``make run``, File > Open) starts an untitled
    project; if the last one on the same model was autosaved and never saved or discarded (a
    crash, a kill), this is the work to offer back. Autosaves older than the model file are
    ignored: they describe a model that has changed since.
    """
    model = Path(model_path).resolve()
    if not model.is_file():
        return None
    newest: tuple[float, Path] | None = None
    for candidate in orphan_autosaves():
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
            stamp = candidate.stat().st_mtime
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("autosave_of"):
            continue
        saved_model = (
            (data.get("model") or {}).get("path") if isinstance(data.get("model"), dict) else None
        )
        if not isinstance(saved_model, str) or Path(saved_model).resolve() != model:
            continue
        if stamp < model.stat().st_mtime:
            continue
        if newest is None or stamp > newest[0]:
            newest = (stamp, candidate)
    return newest[1] if newest else None


def load_recovery(recovery: str | Path, original: str | Path | None = None) -> Project:
    """Open an autosave as an unsaved (dirty) project bound to its original file, if any."""
    source = Path(recovery)
    data = read_json_strict(source, error_type=ConfigError)
    base = Path(original).resolve().parent if original else source.parent
    project = Project.from_json(data, source=str(source), base=base)
    target = original or data.get("autosave_of")
    project.path = Path(target).resolve() if target else None
    project.dirty = True
    return project


def discard_recovery(project: Project) -> None:
    try:
        autosave_path(project).unlink()
    except (FileNotFoundError, OSError):
        pass


# ----- validation helpers ---------------------------------------------------------------------
def _field(value: Any, source: str, where: str = "") -> Field:
    """``value`` as a typed JSON field of the project file ``source`` (errors are ConfigError)."""
    if isinstance(value, Field):
        return value
    return Field(value, source, where, ConfigError)
