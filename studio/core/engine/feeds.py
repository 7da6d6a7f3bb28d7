"""Input feeds for a session: from a .npz, a folder of .npy files, or random; outputs to .npz.

Arrays cross process boundaries as files (never pickles): ``np.load(..., allow_pickle=False)``.
Every feed is checked against the session's inputs, so a wrong name, shape or dtype is a
BadInputError naming the tensor instead of an ORT error deep inside a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from studio.core.engine.sessions import _ORT_TO_NUMPY, random_inputs
from studio.core.errors import BadInputError
from studio.core.model.prepare import check_input_shapes, fix_input_shapes


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays by name from ``X.npz`` or a folder of ``NAME.npy`` files (no pickles)."""
    src = Path(path)
    if src.is_dir():
        files = sorted(src.glob("*.npy"))
        if not files:
            raise BadInputError("no .npy files in this folder", path=str(src))
        return {f.stem: _load_npy(f) for f in files}
    if not src.is_file():
        raise BadInputError("inputs file not found", path=str(src))
    if src.suffix == ".npy":
        return {src.stem: _load_npy(src)}
    try:
        with np.load(src, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read as .npz: {exc}", path=str(src)) from exc


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read as .npy: {exc}", path=str(path)) from exc


def check_feeds(sess: Any, feeds: dict[str, np.ndarray], source: str = "inputs") -> dict[str, Any]:
    """Match feeds to the session's inputs by name, shape and dtype; cast safe float widths."""
    checked: dict[str, np.ndarray] = {}
    names = [i.name for i in sess.get_inputs()]
    missing = [n for n in names if n not in feeds]
    if missing:
        raise BadInputError(
            f"{source} lacks input(s) {', '.join(missing)} (has: {', '.join(feeds) or 'none'})"
        )
    extra = [n for n in feeds if n not in names]
    if extra:
        raise BadInputError(
            f"{source} has unknown input(s) {', '.join(extra)} (model: {', '.join(names)})"
        )
    for inp in sess.get_inputs():
        array = np.asarray(feeds[inp.name])
        want = _ORT_TO_NUMPY.get(inp.type)
        if want is not None and array.dtype != want:
            if np.issubdtype(array.dtype, np.floating) and np.issubdtype(want, np.floating):
                array = array.astype(want)
            else:
                raise BadInputError(
                    f"{source}: input '{inp.name}' is {array.dtype}, the model expects "
                    f"{np.dtype(want).name}"
                )
        shape = list(inp.shape)
        if len(shape) != array.ndim or any(
            isinstance(d, int) and d > 0 and d != a
            for d, a in zip(shape, array.shape, strict=False)
        ):
            raise BadInputError(
                f"{source}: input '{inp.name}' has shape {list(array.shape)}, the model expects {shape}"
            )
        checked[inp.name] = array
    return checked


def make_feeds(
    sess: Any,
    inputs: str | Path | None,
    input_shapes: dict[str, list[int]] | None = None,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], bool]:
    """Feeds from ``inputs`` or random ones; returns (feeds, were_random)."""
    if inputs is None:
        return random_inputs(sess, input_shapes, seed=seed), True
    return check_feeds(sess, load_arrays(inputs), source=str(inputs)), False


def save_outputs(path: str | Path, names: list[str], values: list[np.ndarray]) -> dict[str, Any]:
    """Write outputs to ``.npz`` (atomically enough: a temp name, then rename); describe them."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp.npz")
    np.savez(tmp, **{n: np.asarray(v) for n, v in zip(names, values, strict=True)})
    tmp.replace(target)
    return {n: describe(v) for n, v in zip(names, values, strict=True)}


def describe(value: np.ndarray) -> dict[str, Any]:
    array = np.asarray(value)
    info: dict[str, Any] = {"shape": list(array.shape), "dtype": array.dtype.name}
    if array.size and np.issubdtype(array.dtype, np.number):
        info.update(
            min=float(array.min()),
            max=float(array.max()),
            mean=float(array.astype(np.float64).mean()),
        )
    return info


def needs_fixed_shapes(model_path: str | Path, shapes: dict[str, list[int]] | None) -> bool:
    """True when ``shapes`` fixes a dim the model leaves open (checked as the fixer checks it)."""
    import onnx

    if not shapes:
        return False
    model = onnx.load(str(model_path), load_external_data=False)
    inputs = check_input_shapes(model, shapes, model_path)
    for name, inp in inputs.items():
        dims = inp.type.tensor_type.shape.dim
        declared = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if declared != list(shapes[name]):
            return True
    return False


def write_fixed_copy(
    model_path: str | Path, shapes: dict[str, list[int]], folder: str | Path
) -> Path:
    """A copy of the model with ``shapes`` fixed (``model.prepare.fix_input_shapes``), in ``folder``.

    QNN needs static shapes: a dynamic batch dim makes every node "Cannot get shape" and fall
    back to the CPU. ``--input-shape`` therefore fixes the model itself, not only the random feed;
    the outputs get the shapes inference now finds, so the session declares them fixed too.
    """
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, remove_invalid_dim_values

    src = Path(model_path)
    model = onnx.load(str(src))  # with external data: the copy must be self-contained
    remove_invalid_dim_values(model.graph)  # a -1 dim is an unknown one, not a size
    fix_input_shapes(model, shapes, src)
    try:
        fix_output_shapes(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; name the model
        raise BadInputError(f"shapes {shapes} do not fit the model: {exc}", path=str(src)) from exc
    target = Path(folder) / f"{src.stem}.fixed.onnx"
    large = model.ByteSize() > 1_800_000_000
    onnx.save(model, str(target), save_as_external_data=large, location=f"{target.name}.data")
    return target
