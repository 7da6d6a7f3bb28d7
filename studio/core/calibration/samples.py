"""Sample data that ships with a model: ``<model stem>_data/calibration/`` and ``.../heldout/``.

Why a convention: a newcomer's first press of Calibrate must work, and must not calibrate on
whatever folder the process happens to run in. A model with a ``<stem>_data`` folder beside it
(the demo has one) is calibrated on its ``calibration`` images by default and its accuracy is
measured on the separate ``heldout`` images; a model without one defaults to ``random:N``, which
the calibration source itself warns about (``RANDOM_WARNING``), and the UI shows that warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.core.calibration.data import ARRAY_SUFFIXES, IMAGE_SUFFIXES, RANDOM_WARNING

DEFAULT_RANDOM_SAMPLES = 16
DATA_SUFFIX = "_data"


@dataclass(frozen=True)
class SampleData:
    """The folders found beside a model (either may be None)."""

    calibration: Path | None
    heldout: Path | None


def _has_samples(folder: Path) -> bool:
    return folder.is_dir() and any(
        p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | ARRAY_SUFFIXES
        for p in folder.iterdir()
    )


def find_sample_data(model_path: str | Path) -> SampleData | None:
    """``<stem>_data/{calibration,heldout}`` beside ``model_path``, when it holds samples."""
    model = Path(model_path)
    root = model.with_name(model.stem + DATA_SUFFIX)
    calib, held = root / "calibration", root / "heldout"
    found = SampleData(calib if _has_samples(calib) else None, held if _has_samples(held) else None)
    return found if (found.calibration or found.heldout) else None


def default_calibration_source(
    model_path: str | Path | None, random_samples: int = DEFAULT_RANDOM_SAMPLES
) -> tuple[str, str | None]:
    """(source spec, warning or None) to calibrate ``model_path`` with when the user chose none.

    The model's own sample folder when it ships one; otherwise ``random:N`` with its warning.
    Never the current folder.
    """
    samples = find_sample_data(model_path) if model_path else None
    if samples is not None and samples.calibration is not None:
        return str(samples.calibration), None
    return f"random:{random_samples}", RANDOM_WARNING


def heldout_source(model_path: str | Path | None) -> str | None:
    """The model's held-out samples (for accuracy figures), or None when it ships none."""
    samples = find_sample_data(model_path) if model_path else None
    return str(samples.heldout) if samples is not None and samples.heldout else None
