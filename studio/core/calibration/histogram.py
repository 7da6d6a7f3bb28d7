"""Per-tensor running statistics: exact min/max plus a zero-anchored, growable histogram.

Why this shape: calibration must be ONE pass over the data, yet the methods that need a histogram
(percentile, entropy, MSE) want it over the final range, which is only known at the end. ORT's
HistogramCollector re-histograms and pads; we instead keep bins on a fixed grid of multiples of a
width ``w`` (bin ``k`` covers ``[k*w, (k+1)*w)``). When new data falls outside, the grid grows by
whole bins; when it would exceed ``max_bins``, the width doubles (``2**m``) and old bins merge
exactly (bin ``k`` -> ``k >> m``). No interpolation, no second pass, and zero is always an edge.

Cost per binned element is about four vectorised numpy passes (scale, shift, cast, bincount),
~1.5 ns, most of it ``np.bincount``. ``sample_every = k`` bins only the values at positions
0, k, 2k, ... of the tensor's whole value stream (counted across calls, so the binned set does not
depend on how the data was batched); min, max and ``count`` still cover every value, so
``counts.sum()`` is about ``count / k``. Methods read the histogram as a distribution, which is
what a deterministic stride of a large stream preserves; the extremes come from min/max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_BINS = 2048
_CHUNK = 1 << 16


class Scratch:
    """Reusable float32 + index buffers for :meth:`RunningHistogram.update`."""

    def __init__(self) -> None:
        self._f = np.empty(_CHUNK, dtype=np.float32)
        self._i = np.empty(_CHUNK, dtype=np.int32)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        return self._f[:size], self._i[:size]


@dataclass
class RunningHistogram:
    """min/max/count of everything seen, and its histogram on the grid ``k * width``."""

    max_bins: int = DEFAULT_BINS
    minimum: float = math.inf
    maximum: float = -math.inf
    count: int = 0
    width: float = 0.0
    first_bin: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # bin every k-th value of the tensor's value stream (1 = all); min/max/count stay exact
    sample_every: int = 1

    # ----- collecting ------------------------------------------------------------------------
    def update(self, values: np.ndarray, scratch: Scratch | None = None) -> tuple[float, float]:
        """Add ``values`` (any shape, float); returns this batch's (min, max).

        ``scratch`` holds buffers reused across calls: fresh multi-MB temporaries would cost a
        page fault per 4 KB on every call, more than the arithmetic itself.
        """
        flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        if flat.size == 0:
            return math.nan, math.nan
        lo = float(flat.min())
        hi = float(flat.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return lo, hi  # caller reports the tensor; nothing is added
        self.minimum = min(self.minimum, lo)
        self.maximum = max(self.maximum, hi)
        k = max(1, int(self.sample_every))
        if k > 1:  # stream positions 0, k, 2k, ...: the same values however the data is batched
            flat = flat[(-self.count) % k :: k]
        self.count += int(values.size)
        self._cover(lo, hi)
        nb = self.counts.size
        scratch = scratch or Scratch()
        inv = np.float32(1.0 / self.width)
        # one guard bin each side absorbs float32 rounding at the edges (cheaper than a clip pass)
        shift = np.float32(self.first_bin - 1)
        clip = abs(self.first_bin) > (1 << 20)  # far from zero float32 may lose the bin: clip
        binned = np.zeros(nb + 2, dtype=np.int64)
        # chunks keep the temporaries in L2; int32 indices convert ~7x faster than int64 ones
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start : start + _CHUNK]
            fbuf, ibuf = scratch.get(chunk.size)
            np.multiply(chunk, inv, out=fbuf)
            np.subtract(fbuf, shift, out=fbuf)
            if clip:
                np.clip(fbuf, 0, nb + 1, out=fbuf)
            np.copyto(ibuf, fbuf, casting="unsafe")  # truncation == floor: values are >= 0
            binned += np.bincount(ibuf, minlength=nb + 2)
        self.counts += binned[1 : nb + 1]
        self.counts[0] += binned[0]
        self.counts[-1] += binned[nb + 1 :].sum()
        return lo, hi

    def _cover(self, lo: float, hi: float) -> None:
        """Make the grid cover [lo, hi], growing by whole bins and merging by powers of two."""
        if self.counts.size == 0:
            span = hi - lo
            if span > 0:
                self.width = span / (self.max_bins - 2)
            else:  # constant so far: a tiny grid around the value; later data widens it exactly
                self.width = max(abs(lo), 1e-30) * 2.0**-20
            self.first_bin = math.floor(lo / self.width)
            last = math.floor(hi / self.width)
            self.counts = np.zeros(last - self.first_bin + 1, dtype=np.int64)
            return
        first = min(self.first_bin, math.floor(lo / self.width))
        last = max(self.first_bin + self.counts.size - 1, math.floor(hi / self.width))
        if first == self.first_bin and last == self.first_bin + self.counts.size - 1:
            return
        shift = 0
        while (last >> shift) - (first >> shift) + 1 > self.max_bins:
            shift += 1
        old_index = np.arange(self.first_bin, self.first_bin + self.counts.size, dtype=np.int64)
        new_first = first >> shift
        new_counts = np.zeros((last >> shift) - new_first + 1, dtype=np.int64)
        np.add.at(new_counts, (old_index >> shift) - new_first, self.counts)
        self.counts = new_counts
        self.first_bin = int(new_first)
        self.width = self.width * (1 << shift)

    # ----- views ----------------------------------------------------------------------------
    @property
    def edges(self) -> np.ndarray:
        """Bin edges (len = bins + 1), float64."""
        return (np.arange(self.counts.size + 1, dtype=np.float64) + self.first_bin) * self.width

    @property
    def mean(self) -> float:
        """Mean from the histogram (bin centres): within half a bin width of the exact mean."""
        counts, edges = self.clipped_counts()
        total = counts.sum()
        if not total:
            return 0.0
        return float(np.dot(counts, (edges[:-1] + edges[1:]) * 0.5) / total)

    @property
    def std(self) -> float:
        counts, edges = self.clipped_counts()
        total = counts.sum()
        if not total:
            return 0.0
        centres = (edges[:-1] + edges[1:]) * 0.5
        var = float(np.dot(counts, (centres - self.mean) ** 2) / total)
        return math.sqrt(max(var, 0.0))

    def clipped_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) restricted to [minimum, maximum]: the outer bins end at the true extremes.

        The outermost bins are partly empty (the data stops inside them); every method that reads
        an edge uses these so that no range ever exceeds the observed min/max.
        """
        edges = self.edges.copy()
        if self.counts.size:
            edges[0] = max(edges[0], self.minimum)
            edges[-1] = min(edges[-1], self.maximum)
            edges[-1] = max(edges[-1], edges[0])
        return self.counts, edges
