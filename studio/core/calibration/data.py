"""Calibration data sources: image folders, .npy/.npz files or folders, and ``random:N``.

Why one module: every source becomes the same thing, an iterator of feed dicts checked against
the model's inputs, plus a hash of exactly what was read, so the stats cache can tell whether the
data changed. A wrong shape or dtype, NaN or Inf is a BadInputError naming the file and input.

NPZ conventions (one file may hold many samples):
- keys are input names (a single-input model accepts any single key);
- an array of the input's shape is one sample; ``[N, *shape]``, or ``[N, *shape[1:]]`` when the
  input's batch dim is 1, is N samples.
A ``.npy`` file is the single input of a single-input model, with the same stacking rule.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.engine.sessions import random_array
from studio.core.errors import BadInputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
ARRAY_SUFFIXES = {".npy", ".npz"}
_HASH_CONTENT_LIMIT = 256 << 20  # hash file contents up to this much data, else stat() them
RANDOM_WARNING = (
    "calibrating on random data: the encodings say nothing about real inputs; "
    "use real samples (an image folder or .npy/.npz files) before trusting accuracy figures"
)


@dataclass
class InputSpec:
    """One model input as calibration sees it: fixed shape and numpy dtype."""

    name: str
    shape: list[int]
    dtype: str = "float32"


@dataclass
class Preprocess:
    """How images become tensors: ``x = (pixel * scale - mean) / std`` after resize.

    ``size`` is (height, width); None takes it from the input shape. ``layout`` None infers NCHW
    when the channel dim (1 or 3) is second, else NHWC.
    """

    size: tuple[int, int] | None = None
    layout: str | None = None
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    scale: float = 1.0 / 255.0
    color: str = "RGB"

    def to_json(self) -> dict[str, Any]:
        return {
            "size": list(self.size) if self.size else None,
            "layout": self.layout,
            "mean": list(self.mean),
            "std": list(self.std),
            "scale": self.scale,
            "color": self.color,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Preprocess:
        data = dict(data or {})
        size = data.get("size")
        return cls(
            size=tuple(int(v) for v in size) if size else None,  # type: ignore[arg-type]
            layout=data.get("layout"),
            mean=[float(v) for v in data.get("mean", [0.0, 0.0, 0.0])],
            std=[float(v) for v in data.get("std", [1.0, 1.0, 1.0])],
            scale=float(data.get("scale", 1.0 / 255.0)),
            color=str(data.get("color", "RGB")),
        )


class CalibrationSource:
    """Iterates feed dicts for ``inputs``; :attr:`data_hash` identifies what will be read."""

    def __init__(
        self,
        spec: str | Path,
        inputs: list[InputSpec],
        preprocess: Preprocess | None = None,
        *,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        self.spec = str(spec)
        self.inputs = inputs
        self.preprocess = preprocess or Preprocess()
        self.seed = seed
        self.warnings: list[str] = []
        self.random_count: int | None = None
        self.files: list[Path] = []
        self.kind = "files"
        if self.spec.startswith("random:"):
            try:
                self.random_count = int(self.spec.split(":", 1)[1])
            except ValueError as exc:
                raise BadInputError(f"calibration source '{self.spec}': expected random:N") from exc
            if self.random_count <= 0:
                raise BadInputError(f"calibration source '{self.spec}': N must be positive")
            self.kind = "random"
            self.warnings.append(RANDOM_WARNING)
        else:
            self._scan(Path(self.spec))
        for inp in inputs:
            if any(not isinstance(d, int) or d <= 0 for d in inp.shape):
                raise BadInputError(
                    f"input '{inp.name}' has dynamic shape {inp.shape}: fix it with "
                    f"--input-shape {inp.name}=..."
                )
        self.limit = limit

    def _scan(self, path: Path) -> None:
        if not path.exists():
            raise BadInputError("calibration data not found", path=str(path))
        if path.is_file():
            if path.suffix.lower() not in ARRAY_SUFFIXES | IMAGE_SUFFIXES:
                raise BadInputError(
                    "calibration file must be .npy, .npz or an image", path=str(path)
                )
            files = [path]
        else:
            files = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in ARRAY_SUFFIXES | IMAGE_SUFFIXES
            )
            if not files:
                raise BadInputError(
                    "no calibration files (.npy, .npz or images) in this folder", path=str(path)
                )
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if images and len(images) != len(files):
            raise BadInputError(
                "mixes images and arrays: use one kind per calibration folder", path=str(path)
            )
        self.kind = "images" if images else "arrays"
        if self.kind == "images":
            image_inputs = [i for i in self.inputs if _is_float(i.dtype)]
            if len(self.inputs) != 1 or not image_inputs:
                raise BadInputError(
                    "image folders feed models with one float input; use .npz files for "
                    f"{len(self.inputs)} inputs",
                    path=str(path),
                )
        self.files = files

    # ----- identity -------------------------------------------------------------------------
    @property
    def data_hash(self) -> str:
        """SHA-256 over file names and bytes (or the random spec), plus preprocessing.

        Beyond 256 MB of data, names + sizes + modification times stand in for the bytes, so
        opening a project on a large image folder does not read it twice.
        """
        h = hashlib.sha256()
        h.update(repr([(i.name, i.shape, i.dtype) for i in self.inputs]).encode())
        if self.kind == "random":
            h.update(f"random:{self.random_count}:seed={self.seed}".encode())
        else:
            sizes = [p.stat().st_size for p in self.files]
            by_content = sum(sizes) <= _HASH_CONTENT_LIMIT
            for path, size in zip(self.files, sizes, strict=True):
                h.update(path.name.encode() + b"\0")
                if not by_content:  # large data sets: name, size and mtime identify a file
                    h.update(f"{size}:{path.stat().st_mtime_ns}".encode())
                    continue
                with open(path, "rb") as handle:
                    for chunk in iter(lambda handle=handle: handle.read(1 << 20), b""):
                        h.update(chunk)
        if self.kind == "images":
            h.update(repr(sorted(self.preprocess.to_json().items())).encode())
        if self.limit:
            h.update(f"limit={self.limit}".encode())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.spec,
            "kind": self.kind,
            "files": len(self.files),
            "preprocess": self.preprocess.to_json() if self.kind == "images" else None,
        }

    # ----- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        produced = 0
        for feed in self._feeds():
            if self.limit is not None and produced >= self.limit:
                return
            produced += 1
            yield feed

    def count(self) -> int:
        """Number of samples (reads array headers only; images count one each)."""
        if self.kind == "random":
            n = self.random_count or 0
        elif self.kind == "images":
            n = len(self.files)
        else:
            n = sum(self._samples_in(p) for p in self.files)
        return min(n, self.limit) if self.limit else n

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        if self.kind == "random":
            rng = np.random.default_rng(self.seed)
            for _ in range(self.random_count or 0):
                yield {i.name: _random_array(rng, i) for i in self.inputs}
        elif self.kind == "images":
            for path in self.files:
                yield {self.inputs[0].name: self._image(path, self.inputs[0])}
        else:
            for path in self.files:
                yield from self._array_feeds(path)

    def _samples_in(self, path: Path) -> int:
        arrays = _npz_headers(path, [i.name for i in self.inputs])
        if arrays is None:  # .npy, or anything unusual: the full reader and its messages
            arrays = self._load_arrays(path, mmap=True)
        first = self.inputs[0]
        arr = arrays[first.name]
        _check_dtype(arr, first, path)
        return _sample_count(arr, first, path)

    def _load_arrays(self, path: Path, mmap: bool = False) -> dict[str, np.ndarray]:
        try:
            if path.suffix.lower() == ".npy":
                loaded = {"": np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)}
            else:
                with np.load(path, allow_pickle=False) as npz:
                    loaded = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError) as exc:
            raise BadInputError(f"cannot read calibration array: {exc}", path=str(path)) from exc
        names = [i.name for i in self.inputs]
        if len(names) == 1 and len(loaded) == 1:
            return {names[0]: next(iter(loaded.values()))}
        if "" in loaded:
            raise BadInputError(
                f"a .npy file holds one array but the model has {len(names)} inputs "
                f"({', '.join(names)}): use .npz with one key per input",
                path=str(path),
            )
        missing = [n for n in names if n not in loaded]
        if missing:
            raise BadInputError(
                f"missing input '{missing[0]}' (file has {', '.join(sorted(loaded)) or 'nothing'})",
                path=str(path),
            )
        return {n: loaded[n] for n in names}

    def _array_feeds(self, path: Path) -> Iterator[dict[str, np.ndarray]]:
        arrays = self._load_arrays(path)
        for inp in self.inputs:
            _check_values(arrays[inp.name], inp, path)
        counts = {i.name: _sample_count(arrays[i.name], i, path) for i in self.inputs}
        if len(set(counts.values())) != 1:
            raise BadInputError(
                f"inputs hold different numbers of samples: {counts}", path=str(path)
            )
        n = next(iter(counts.values()))
        for k in range(n):
            feed = {}
            for inp in self.inputs:
                arr = arrays[inp.name]
                sample = arr if n == 1 and list(arr.shape) == inp.shape else arr[k]
                feed[inp.name] = np.ascontiguousarray(sample.reshape(inp.shape), inp.dtype)
            yield feed

    def _image(self, path: Path, inp: InputSpec) -> np.ndarray:
        try:
            from PIL import Image
        except ImportError as exc:  # pragma: no cover - Pillow is a dependency
            raise BadInputError(
                "reading images needs Pillow (pip install pillow); or give .npy/.npz files"
            ) from exc
        pp = self.preprocess
        layout = pp.layout or ("NCHW" if len(inp.shape) == 4 and inp.shape[1] in (1, 3) else "NHWC")
        if len(inp.shape) != 4:
            raise BadInputError(
                f"input '{inp.name}' has shape {inp.shape}; images need a 4-D input", path=str(path)
            )
        channels = inp.shape[1] if layout == "NCHW" else inp.shape[3]
        height, width = (inp.shape[2], inp.shape[3]) if layout == "NCHW" else inp.shape[1:3]
        if pp.size and tuple(pp.size) != (height, width):
            raise BadInputError(
                f"preprocess size {list(pp.size)} differs from input '{inp.name}' {inp.shape}"
            )
        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                img = img.resize((width, height), Image.BILINEAR)
                pixels = np.asarray(img, dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise BadInputError(f"cannot read image: {exc}", path=str(path)) from exc
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if channels == 3 and pp.color.upper() == "BGR":
            pixels = pixels[:, :, ::-1]
        mean = np.asarray(pp.mean[:channels] or [0.0], dtype=np.float32)
        std = np.asarray(pp.std[:channels] or [1.0], dtype=np.float32)
        x = (pixels * np.float32(pp.scale) - mean) / std
        x = x.transpose(2, 0, 1)[None] if layout == "NCHW" else x[None]
        return np.ascontiguousarray(x, dtype=inp.dtype)


def _is_float(dtype: str) -> bool:
    return np.issubdtype(np.dtype(dtype), np.floating)


def _npz_headers(path: Path, names: list[str]) -> dict[str, np.ndarray] | None:
    """Shape/dtype stand-ins for the arrays of an .npz, from the members' headers only.

    Why: counting samples before the pass would otherwise decompress, CRC-check and copy every
    array once more (several ms per 100 images). The stand-ins are zero-stride views: they carry
    ``shape`` and ``dtype`` and no data. None when the file is not a plain .npz of our inputs.
    """
    if path.suffix.lower() != ".npz":
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            members = {m.removesuffix(".npy"): m for m in archive.namelist()}
            if len(names) == 1 and len(members) == 1:
                members = {names[0]: next(iter(members.values()))}
            out = {}
            for name in names:
                with archive.open(members[name]) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                    else:
                        return None
                if dtype.hasobject:
                    return None
                base = np.zeros(1, dtype=dtype)
                out[name] = np.lib.stride_tricks.as_strided(base, shape, (0,) * len(shape))
            return out
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _sample_count(arr: np.ndarray, inp: InputSpec, path: Path) -> int:
    shape = list(arr.shape)
    if shape == inp.shape:
        return 1
    if len(shape) == len(inp.shape) + 1 and shape[1:] == inp.shape:
        return shape[0]
    if (
        inp.shape
        and inp.shape[0] == 1
        and len(shape) == len(inp.shape)
        and shape[1:] == inp.shape[1:]
    ):
        return shape[0]
    raise BadInputError(
        f"input '{inp.name}': array shape {shape} does not match the model's {inp.shape} "
        f"(nor [N, ...] samples of it)",
        path=str(path),
    )


def _check_values(arr: np.ndarray, inp: InputSpec, path: Path) -> None:
    _check_dtype(arr, inp, path)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "Inf"
        raise BadInputError(f"input '{inp.name}' contains {bad} values", path=str(path))


def _check_dtype(arr: np.ndarray, inp: InputSpec, path: Path) -> None:
    want_float = _is_float(inp.dtype)
    kind = arr.dtype.kind
    if want_float and kind not in "fiu":
        raise BadInputError(
            f"input '{inp.name}': dtype {arr.dtype} cannot feed a {inp.dtype} input", path=str(path)
        )
    if not want_float and kind not in "iub":
        raise BadInputError(
            f"input '{inp.name}': dtype {arr.dtype} cannot feed a {inp.dtype} input "
            "(integer data expected)",
            path=str(path),
        )


def _random_array(rng: np.random.Generator, inp: InputSpec) -> np.ndarray:
    return random_array(rng, inp.shape, inp.dtype)
