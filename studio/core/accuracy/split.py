"""Which samples an accuracy figure is measured on, and the words that say so.

Why: an SQNR measured on the samples the ranges were fitted to flatters the quantisation (the
ranges contain exactly those values). ``quantize`` therefore evaluates on data calibration never
saw: the ``--eval`` source when given, else a held-back tail of ``--calib``. With fewer than
:data:`MIN_SPLIT` calibration samples there is nothing to spare: all of them calibrate and
evaluate, and the label says the figure is on calibration data. ``random:N`` evaluates on a
separate random draw (another seed). Every figure carries :attr:`EvalSplit.label`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.calibration import CalibrationSource, Preprocess
from studio.core.calibration.collect import load_fixed, model_inputs

MIN_SPLIT = 16  # fewer calibration samples than this: no hold-out
HELD_FRACTION = 0.25
MAX_EVAL = 32


@dataclass
class EvalSplit:
    """The evaluation samples, how many calibration may use, and what they are."""

    feeds: list[dict[str, np.ndarray]] = field(repr=False)
    calib_limit: int | None
    kind: str  # "eval", "held-out", "calibration", "random"
    label: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "samples": len(self.feeds),
            "calib_limit": self.calib_limit,
        }


def _source(model: str, data: str, shapes, preprocess, seed: int) -> CalibrationSource:
    inputs = model_inputs(load_fixed(model, shapes))
    return CalibrationSource(data, inputs, preprocess, seed=seed)


def split_for_eval(
    model: str,
    calib: str,
    eval_data: str | None = None,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    preprocess: Preprocess | None = None,
    max_eval: int = MAX_EVAL,
) -> EvalSplit:
    """Evaluation samples for ``model`` that calibration on ``calib`` does not see (see module)."""
    if eval_data:
        feeds = list(_source(model, eval_data, input_shapes, preprocess, 1))[:max_eval]
        return EvalSplit(
            feeds,
            None,
            "eval",
            f"held-out: {len(feeds)} samples of --eval {eval_data} (calibration never saw them)",
        )
    if calib.startswith("random:"):
        count = min(int(calib.split(":", 1)[1] or 0), max_eval) or 1
        feeds = list(_source(model, f"random:{count}", input_shapes, preprocess, 1))
        return EvalSplit(
            feeds,
            None,
            "random",
            f"{count} random samples drawn apart from calibration's (random data: no real "
            "accuracy)",
        )
    source = _source(model, calib, input_shapes, preprocess, 0)
    total = source.count()
    if total < MIN_SPLIT:
        return EvalSplit(
            list(source),
            None,
            "calibration",
            f"calibration data: only {total} samples (< {MIN_SPLIT}), so all of them calibrate "
            "and evaluate; the figure is on data the ranges were fitted to (give --eval)",
        )
    held = min(max(8, int(round(total * HELD_FRACTION))), max_eval, total // 2)
    # only the tail is kept in memory (an image folder may be large)
    tail = [feed for index, feed in enumerate(source) if index >= total - held]
    return EvalSplit(
        tail,
        total - held,
        "held-out",
        f"held-out: the last {held} of {total} --calib samples (calibration used the first "
        f"{total - held})",
    )


def calibration_label(spec: str, count: int) -> str:
    """The label of a figure measured on ``count`` samples of the calibration source itself
    (what the editor does when no separate evaluation data was given)."""
    if str(spec).startswith("random:"):
        return f"{count} random samples drawn apart from calibration's (random data)"
    return (
        f"calibration data: {count} of the samples the ranges were fitted to "
        "(not held out: expect real accuracy to be lower)"
    )
