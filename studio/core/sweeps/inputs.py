"""Sweep inputs as content-addressed blobs: read once on the driver, moved once per node.

Why: a sweep of 1,000 points over one model must not send the model and its data 1,000 times.
The driver reads each model and turns each data source into one ``.npz`` (calibration and the
held-out evaluation split), names every blob by its SHA-256, and puts it in Ray's object store
once. A point receives only the names and object refs; on its node it looks in a local cache
folder first and fetches a blob only when that node has not seen it yet, so the bytes a point
moves are a few kilobytes of request and result once its node holds the inputs.

Data sources are materialised here, with the model's own input checks, so every point of a
model sees exactly the same samples (an image folder is decoded once, not once per point).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.hashing import file_sha256

CACHE_ENV = "STUDIO_SWEEP_CACHE"


@dataclass(frozen=True)
class Blob:
    """One input of a sweep: its content hash, size, and the suffix its file needs."""

    sha256: str
    size: int
    suffix: str
    role: str  # "model" | "calib" | "eval"
    origin: str  # what the user named (a path, random:N), for the report

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ModelInputs:
    """A model's three blobs and their bytes (held on the driver until put in the store)."""

    model: Blob
    calib: Blob
    eval: Blob
    data: dict[str, bytes]  # sha256 -> bytes
    calib_samples: int
    eval_samples: int
    notes: list[str]


def _arrays_hash(arrays: dict[str, np.ndarray]) -> str:
    """Hash of names, dtypes, shapes and values: the same samples give the same name however
    the ``.npz`` container happens to be laid out."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _npz(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    names = list(feeds[0])
    return {n: np.stack([f[n] for f in feeds]) for n in names}


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _feeds(model: str, source: str, seed: int, limit: int | None = None):
    from studio.core.calibration import CalibrationSource
    from studio.core.calibration.collect import load_fixed, model_inputs

    src = CalibrationSource(source, model_inputs(load_fixed(model, None)), seed=seed, limit=limit)
    return list(src), list(src.warnings)


def materialise(
    model: str | Path, calib: str | None, eval_source: str | None, eval_samples: int = 8
) -> ModelInputs:
    """Read ``model`` and turn its calibration and evaluation data into two ``.npz`` blobs.

    Without ``eval_source`` the evaluation data is held out: the last ``eval_samples`` samples
    (at most a quarter) of the calibration source, which then calibrates on the rest. With
    ``random:N`` calibration, evaluation is ``random:eval_samples`` drawn with another seed.
    """
    path = Path(model)
    if not path.is_file():
        raise BadInputError("model file not found", path=str(path))
    model_bytes = path.read_bytes()
    calib = calib or "random:8"
    notes: list[str] = []
    feeds, warnings = _feeds(str(path), calib, seed=0)
    notes.extend(warnings)
    if not feeds:
        raise BadInputError("the calibration source holds no samples", path=calib)
    if eval_source:
        held, more = _feeds(str(path), eval_source, seed=1, limit=eval_samples or None)
        notes.extend(more)
        eval_origin = eval_source
    elif calib.startswith("random:"):
        held, _ = _feeds(str(path), f"random:{max(1, eval_samples)}", seed=1)
        eval_origin = f"random:{max(1, eval_samples)} (seed 1, not the calibration samples)"
    elif len(feeds) >= 2:
        k = max(1, min(eval_samples, len(feeds) // 4))
        feeds, held = feeds[:-k], feeds[-k:]
        eval_origin = f"last {k} samples of {calib}, held out of calibration"
    else:
        held = feeds
        eval_origin = f"{calib} (one sample: evaluated on the calibration sample itself)"
        notes.append("only one calibration sample: the SQNR is measured on that same sample")
    data: dict[str, bytes] = {}
    blobs = []
    for role, part, origin in (("calib", feeds, calib), ("eval", held, eval_origin)):
        arrays = _npz(part)
        raw = _npz_bytes(arrays)
        sha = _arrays_hash(arrays)
        data[sha] = raw
        blobs.append(Blob(sha, len(raw), ".npz", role, origin))
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    data[model_sha] = model_bytes
    return ModelInputs(
        model=Blob(model_sha, len(model_bytes), ".onnx", "model", str(path)),
        calib=blobs[0],
        eval=blobs[1],
        data=data,
        calib_samples=len(feeds),
        eval_samples=len(held),
        notes=notes,
    )


def node_cache_dir(root: str | None = None) -> Path:
    """This node's blob and calibration cache: ``root`` (the driver's ``STUDIO_SWEEP_CACHE``,
    sent with each point), else the node's own ``STUDIO_SWEEP_CACHE``, else a temp folder."""
    root = (
        root
        or os.environ.get(CACHE_ENV)
        or str(Path(tempfile.gettempdir()) / "npu-studio-sweep-cache")
    )
    path = Path(root)
    (path / "blobs").mkdir(parents=True, exist_ok=True)
    return path


def blob_path(root: Path, blob: dict[str, Any]) -> Path:
    return root / "blobs" / f"{blob['sha256']}{blob['suffix']}"


def store_blob(root: Path, blob: dict[str, Any], data: bytes) -> Path:
    """Write a fetched blob into the node cache atomically, after checking its size.

    Concurrent points on one node may fetch the same blob: both write a temp file and rename,
    and either result is the same bytes.
    """
    if len(data) != int(blob["size"]):
        raise BadInputError(
            f"sweep input {blob['role']} arrived with {len(data)} bytes, expected {blob['size']}"
        )
    final = blob_path(root, blob)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, final)
    return final


def cached_blob(root: Path, blob: dict[str, Any]) -> Path | None:
    """The node's copy of ``blob`` if it holds one of the right size (a model is re-hashed)."""
    path = blob_path(root, blob)
    if not path.is_file() or path.stat().st_size != int(blob["size"]):
        return None
    if blob["role"] == "model" and file_sha256(path) != blob["sha256"]:
        return None
    return path
