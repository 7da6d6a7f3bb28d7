"""Does the converted model compute what the source did? Compared on the same random inputs.

The source framework's outputs (torch, or the LiteRT interpreter) and the ONNX model's outputs on
ONNX Runtime's CPU provider are compared per output: max abs diff and SQNR
(20 log10 ||ref|| / ||ref - onnx||). A float conversion must reach :data:`MIN_FLOAT_SQNR_DB`;
one that does not is reported as disagreeing, never accepted silently. The float graph of an
int8/int16 source cannot match its integer arithmetic that closely, so there an output also agrees
when it is within one quantisation step of the source's (its scale); the QDQ model built with the
carried encodings is what reproduces the integer results. Names, order and shapes of
the inputs and outputs are checked too (an NHWC source stays NHWC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MIN_FLOAT_SQNR_DB = 40.0
SQNR_CAP_DB = 300.0  # identical outputs: reported as this (JSON has no infinity)


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = np.asarray(ref, dtype=np.float64).ravel()
    err = ref - np.asarray(got, dtype=np.float64).ravel()
    noise = float(np.linalg.norm(err))
    signal = float(np.linalg.norm(ref))
    if noise == 0.0:
        return SQNR_CAP_DB
    if signal == 0.0:
        return -SQNR_CAP_DB
    return min(SQNR_CAP_DB, 20.0 * math.log10(signal / noise))


@dataclass
class OutputCheck:
    name: str
    shape: list[int]
    max_abs_diff: float
    sqnr_db: float
    step: float | None = None  # a quantised source's output step: within it counts as agreeing

    @property
    def agrees(self) -> bool:
        return self.sqnr_db >= MIN_FLOAT_SQNR_DB or (
            self.step is not None and self.max_abs_diff <= self.step
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "max_abs_diff": self.max_abs_diff,
            "sqnr_db": self.sqnr_db,
            "step": self.step,
            "agrees": self.agrees,
        }


@dataclass
class ImportCheck:
    """What the comparison found; ``agrees`` is the verdict shown to the user."""

    outputs: list[OutputCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    threshold_db: float = MIN_FLOAT_SQNR_DB
    reference: str = ""

    @property
    def min_sqnr_db(self) -> float:
        return min((o.sqnr_db for o in self.outputs), default=-SQNR_CAP_DB)

    @property
    def agrees(self) -> bool:
        if self.problems or not self.outputs:
            return False
        return all(o.agrees for o in self.outputs)

    def summary(self) -> str:
        parts = [
            f"{o.name}: max abs diff {o.max_abs_diff:.3g}, SQNR {o.sqnr_db:.1f} dB"
            for o in self.outputs
        ]
        verdict = "agrees" if self.agrees else "DISAGREES"
        head = (
            f"converted model {verdict} with {self.reference} (threshold {self.threshold_db:g} dB)"
        )
        return "; ".join([head, *parts, *self.problems])

    def to_json(self) -> dict[str, Any]:
        return {
            "agrees": self.agrees,
            "threshold_db": self.threshold_db,
            "min_sqnr_db": self.min_sqnr_db,
            "reference": self.reference,
            "outputs": [o.to_json() for o in self.outputs],
            "problems": list(self.problems),
            "summary": self.summary(),
        }


def compare(
    onnx_path: str | Path,
    inputs: dict[str, np.ndarray],
    reference: list[np.ndarray],
    reference_name: str,
    expected_outputs: list[str] | None = None,
    steps: dict[str, float] | None = None,
) -> ImportCheck:
    """Run ``onnx_path`` on ``inputs`` (ORT CPU) and compare with ``reference``, in order.

    A quantised import runs unfused (``simulation_session``): its quantisation as written, which
    is what the source's int8 interpreter computes, not ORT's host-dependent int8 kernels.
    """
    from studio.core.engine.sessions import simulation_session

    check = ImportCheck(reference=reference_name)
    session = simulation_session(str(onnx_path))
    onnx_inputs = session.get_inputs()
    names = [i.name for i in onnx_inputs]
    if names != list(inputs):
        check.problems.append(f"input names/order changed: source {list(inputs)}, ONNX {names}")
        return check
    for info in onnx_inputs:
        if list(info.shape) != list(inputs[info.name].shape):
            check.problems.append(
                f"input '{info.name}' shape {info.shape} differs from the source's "
                f"{list(inputs[info.name].shape)} (layout not kept)"
            )
    if check.problems:
        return check
    outs = session.get_outputs()
    if expected_outputs is not None and [o.name for o in outs] != expected_outputs:
        check.problems.append(
            f"output names/order changed: source {expected_outputs}, ONNX {[o.name for o in outs]}"
        )
    if len(outs) != len(reference):
        check.problems.append(f"{len(outs)} outputs, the source has {len(reference)}")
        return check
    results = session.run(None, {k: v for k, v in inputs.items()})
    for info, ref, got in zip(outs, reference, results, strict=True):
        got = np.asarray(got)
        if got.shape != np.asarray(ref).shape:
            check.problems.append(
                f"output '{info.name}' shape {list(got.shape)} differs from the source's "
                f"{list(np.asarray(ref).shape)}"
            )
            continue
        diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if got.size else 0.0
        check.outputs.append(
            OutputCheck(
                info.name,
                list(got.shape),
                diff,
                round(sqnr_db(ref, got), 2),
                (steps or {}).get(info.name),
            )
        )
    return check
