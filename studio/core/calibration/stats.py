"""CalibrationStats: what one calibration pass learnt, saved as JSON + NPZ (never pickle).

The stats are keyed by model SHA-256 + data hash + preprocessing + options (:func:`cache_key`), so
re-opening a project or changing the method reads them back instead of re-running the model.
Layout of a cache entry folder::

    <cache_dir>/<key>/stats.json     schema_version, key parts, per-tensor scalars
    <cache_dir>/<key>/stats.npz      h<i> = histogram counts of tensor i (int64)
    <cache_dir>/<key>/prepared.onnx  the model the stats belong to (shapes fixed, BN folded)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.atomic import atomic_write_bytes, atomic_write_json, read_json_strict
from studio.core.calibration.histogram import DEFAULT_BINS, RunningHistogram
from studio.core.calibration.methods import DEFAULT_PERCENTILE, compute_range
from studio.core.errors import BadInputError

SCHEMA_VERSION = 1
STATS_JSON = "stats.json"
STATS_NPZ = "stats.npz"
PREPARED_MODEL = "prepared.onnx"


def default_cache_dir() -> Path:
    """``$NPU_STUDIO_CACHE`` or ``$XDG_CACHE_HOME/npu-studio`` or ``~/.cache/npu-studio``."""
    env = os.environ.get("NPU_STUDIO_CACHE")
    if env:
        return Path(env) / "calibration"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "npu-studio" / "calibration"


def cache_key(model_sha256: str, data_hash: str, options: dict[str, Any]) -> str:
    """Short stable key from the model, the data and every option that changes the numbers."""
    text = json.dumps(
        {"model": model_sha256, "data": data_hash, "options": options}, sort_keys=True
    ).encode()
    return hashlib.sha256(text).hexdigest()[:32]


@dataclass
class TensorStats:
    """A view of one tensor's statistics for UIs and reports (no histogram copy)."""

    name: str
    minimum: float
    maximum: float
    mean: float
    std: float
    count: int
    bins: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CalibrationStats:
    """Per-tensor running statistics of one calibration pass, plus what they were computed from."""

    model_sha256: str
    data_hash: str
    options: dict[str, Any]
    num_samples: int
    histograms: dict[str, RunningHistogram] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    folder: Path | None = None
    elapsed_s: float = 0.0
    _range_memo: dict[tuple, tuple[float, float]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def key(self) -> str:
        return cache_key(self.model_sha256, self.data_hash, self.options)

    @property
    def prepared_model(self) -> Path | None:
        """The model whose tensor names these stats use (None until saved)."""
        return self.folder / PREPARED_MODEL if self.folder else None

    def tensor_names(self) -> list[str]:
        return list(self.histograms)

    def tensor(self, name: str) -> TensorStats:
        h = self.histograms[name]
        return TensorStats(name, h.minimum, h.maximum, h.mean, h.std, h.count, int(h.counts.size))

    def histogram(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) of one tensor, outer edges clamped to the observed min/max.

        A sub-sampled histogram (``sample_every`` k > 1) is shown scaled by k, so its counts
        estimate the tensor's real counts (they sum to about ``count``) in a plot.
        """
        h = self.histograms[name]
        counts, edges = h.clipped_counts()
        return (counts * h.sample_every if h.sample_every > 1 else counts), edges

    def range(
        self,
        name: str,
        method: str = "minmax",
        *,
        bitwidth: int = 8,
        percentile: float = DEFAULT_PERCENTILE,
    ) -> tuple[float, float]:
        if name not in self.histograms:
            raise BadInputError(f"no calibration statistics for tensor '{name}'")
        # memoised: the editor rebuilds after every edit and entropy costs ms per tensor
        key = (name, method, int(bitwidth), float(percentile) if method == "percentile" else None)
        found = self._range_memo.get(key)
        if found is None:
            found = compute_range(
                self.histograms[name], method, bitwidth=bitwidth, percentile=percentile
            )
            self._range_memo[key] = found
        return found

    def ranges(
        self,
        method: str = "minmax",
        *,
        bitwidth: int | dict[str, int] = 8,
        percentile: float = DEFAULT_PERCENTILE,
    ) -> dict[str, tuple[float, float]]:
        """Ranges of every tensor; ``bitwidth`` may be per tensor (entropy/MSE depend on it)."""
        out = {}
        for name in self.histograms:
            bw = bitwidth.get(name, 8) if isinstance(bitwidth, dict) else bitwidth
            out[name] = self.range(name, method, bitwidth=bw, percentile=percentile)
        return out

    # ----- persistence --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Scalars only (histograms go to the NPZ); what ``--json`` and the project show."""
        return {
            "schema_version": SCHEMA_VERSION,
            "model_sha256": self.model_sha256,
            "data_hash": self.data_hash,
            "options": self.options,
            "num_samples": self.num_samples,
            "input_names": self.input_names,
            "output_names": self.output_names,
            "warnings": self.warnings,
            "elapsed_s": self.elapsed_s,
            "tensors": [
                {
                    "name": name,
                    "dtype": self.dtypes.get(name, "float32"),
                    "shape": self.shapes.get(name),
                    "min": h.minimum,
                    "max": h.maximum,
                    "count": h.count,
                    "width": h.width,
                    "first_bin": h.first_bin,
                    "max_bins": h.max_bins,
                    "sample_every": h.sample_every,
                }
                for name, h in self.histograms.items()
            ],
        }

    def save(self, folder: str | Path, *, durable: bool = True) -> Path:
        """Write stats.json + stats.npz atomically into ``folder`` (created).

        ``durable=False`` skips the fsyncs: for a cache entry that is built in a scratch folder
        and renamed into place whole (a lost entry is only recomputed), where the syncs cost
        more than the histograms on a busy disk.
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        arrays = {f"h{i}": h.counts for i, h in enumerate(self.histograms.values())}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        if durable:
            atomic_write_bytes(target / STATS_NPZ, buf.getvalue())
            atomic_write_json(target / STATS_JSON, self.to_json())
        else:
            (target / STATS_NPZ).write_bytes(buf.getvalue())
            text = json.dumps(self.to_json(), allow_nan=False)
            (target / STATS_JSON).write_text(text, encoding="utf-8")
        self.folder = target
        return target

    @classmethod
    def load(cls, folder: str | Path) -> CalibrationStats:
        """Read a cache entry; any inconsistency is a BadInputError naming the file."""
        target = Path(folder)
        meta = read_json_strict(target / STATS_JSON, error_type=BadInputError)
        if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
            raise BadInputError("unsupported calibration stats version", path=str(target))
        try:
            with np.load(target / STATS_NPZ, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise BadInputError(
                f"cannot read histograms: {exc}", path=str(target / STATS_NPZ)
            ) from exc
        stats = cls(
            model_sha256=str(meta["model_sha256"]),
            data_hash=str(meta["data_hash"]),
            options=dict(meta.get("options") or {}),
            num_samples=int(meta["num_samples"]),
            input_names=list(meta.get("input_names") or []),
            output_names=list(meta.get("output_names") or []),
            warnings=list(meta.get("warnings") or []),
            elapsed_s=float(meta.get("elapsed_s") or 0.0),
            folder=target,
        )
        for i, t in enumerate(meta.get("tensors") or []):
            counts = arrays.get(f"h{i}")
            if counts is None:
                raise BadInputError(f"histogram of '{t.get('name')}' missing", path=str(target))
            h = RunningHistogram(
                max_bins=int(t.get("max_bins", DEFAULT_BINS)),
                minimum=float(t["min"]),
                maximum=float(t["max"]),
                count=int(t["count"]),
                width=float(t["width"]),
                first_bin=int(t["first_bin"]),
                counts=counts.astype(np.int64),
                sample_every=int(t.get("sample_every", 1)),
            )
            stats.histograms[t["name"]] = h
            stats.dtypes[t["name"]] = t.get("dtype", "float32")
            if t.get("shape") is not None:
                stats.shapes[t["name"]] = list(t["shape"])
        return stats
