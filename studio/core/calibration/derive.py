"""Statistics of tensors that are exact functions of another tensor's values, without running them.

Why: a Relu output is ``max(x, 0)`` of its input, a Clip output ``clamp(x, lo, hi)``, and a
Reshape/Flatten/Squeeze/Transpose output holds the very same values. On our zero-anchored grid
(edges at multiples of the bin width) their histograms follow exactly from the input's: the mass
below ``lo`` moves into the bin holding ``lo`` (0 is always an edge, so a Relu is bin-exact), the
extremes clamp. So these tensors are neither exposed by the instrumented model nor binned: in a
CNN that is a third of the activations, and the calibration pass is that much cheaper.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.calibration.histogram import RunningHistogram

# ops whose output is a rearrangement of the input's values (same multiset of numbers)
_SAME_VALUES = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"}


@dataclass(frozen=True)
class Derivation:
    """``output`` = clamp(``source``, ``lo``, ``hi``) element-wise (None: no bound)."""

    output: str
    source: str
    lo: float | None = None
    hi: float | None = None


def derivations(proto: onnx.ModelProto, float_tensors: set[str]) -> list[Derivation]:
    """Derivable tensors in topological order (a chain Relu -> Flatten derives from the root)."""
    inits = {t.name: t for t in proto.graph.initializer}
    consts = {n.output[0]: n for n in proto.graph.node if n.op_type == "Constant" and n.output}

    def scalar(name: str) -> float | None:
        if not name:
            return None
        if name in inits:
            arr = numpy_helper.to_array(inits[name])
        elif name in consts:
            attr = next((a for a in consts[name].attribute if a.name == "value"), None)
            if attr is None:
                return math.nan
            arr = numpy_helper.to_array(attr.t)
        else:
            return math.nan  # a computed bound: not derivable
        return float(arr.reshape(-1)[0]) if arr.size == 1 else math.nan

    out: list[Derivation] = []
    for node in proto.graph.node:
        if not node.input or not node.output or node.input[0] not in float_tensors:
            continue
        dst = node.output[0]
        if dst not in float_tensors or len([o for o in node.output if o]) != 1:
            continue
        if node.op_type in _SAME_VALUES:
            out.append(Derivation(dst, node.input[0]))
        elif node.op_type == "Relu":
            out.append(Derivation(dst, node.input[0], 0.0, None))
        elif node.op_type == "Clip":
            attrs = {a.name: a.f for a in node.attribute}
            lo = (
                attrs.get("min")
                if "min" in attrs
                else scalar(node.input[1] if len(node.input) > 1 else "")
            )
            hi = (
                attrs.get("max")
                if "max" in attrs
                else scalar(node.input[2] if len(node.input) > 2 else "")
            )
            if (lo is not None and math.isnan(lo)) or (hi is not None and math.isnan(hi)):
                continue
            out.append(Derivation(dst, node.input[0], lo, hi))
    return out


def derive(src: RunningHistogram, d: Derivation) -> RunningHistogram:
    """The histogram of ``clamp(values, lo, hi)`` from the histogram of ``values``."""
    h = copy.deepcopy(src)
    if (d.lo is None and d.hi is None) or h.count == 0 or not h.counts.size:
        return h
    # the model clamps in float32: so do the bounds
    lo = -math.inf if d.lo is None else float(np.float32(d.lo))
    hi = math.inf if d.hi is None else float(np.float32(d.hi))
    for bound in (lo, hi):
        if math.isfinite(bound) and not h.minimum <= bound <= h.maximum:
            _extend(h, math.floor(bound / h.width))  # a bound outside the data: grow to it
    first, counts = h.first_bin, h.counts.copy()
    last = first + counts.size - 1
    if h.minimum < lo:
        k = min(max(math.floor(lo / h.width), first), last)
        moved = counts[: k - first].sum()
        counts[: k - first] = 0
        counts[k - first] += moved
    if h.maximum > hi:
        k = min(max(math.floor(hi / h.width), first), last)
        moved = counts[k - first + 1 :].sum()
        counts[k - first + 1 :] = 0
        counts[k - first] += moved
    h.minimum = min(max(h.minimum, lo), hi)
    h.maximum = max(min(h.maximum, hi), lo)
    nz = np.flatnonzero(counts)  # trim empty bins at both ends: the grid stays tight
    if nz.size:
        counts = counts[nz[0] : nz[-1] + 1]
        first += int(nz[0])
    h.counts, h.first_bin = counts.astype(np.int64), first
    return h


def _extend(h: RunningHistogram, k: int) -> None:
    """Grow the grid to bin ``k`` when that stays within the bin budget (else clamp to an end)."""
    first, last = h.first_bin, h.first_bin + h.counts.size - 1
    new_first, new_last = min(first, k), max(last, k)
    if new_last - new_first + 1 > h.max_bins:
        return
    grown = np.zeros(new_last - new_first + 1, dtype=np.int64)
    grown[first - new_first : first - new_first + h.counts.size] = h.counts
    h.counts, h.first_bin = grown, new_first
