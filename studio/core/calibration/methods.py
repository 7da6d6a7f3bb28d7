"""Range-setting methods computed from stored statistics, never from the data again.

Every method maps a tensor's :class:`RunningHistogram` to a (min, max) range, so changing the
method in the editor is instant: the calibration pass is not repeated.

- ``minmax``: the observed extremes.
- ``percentile``: drop ``(100 - p)/2`` percent on each side (ORT's asymmetric rule), read from the
  cumulative histogram with linear interpolation inside a bin.
- ``entropy``: TensorRT's KL-divergence threshold search (as ORT's ``HistogramCollector``), on the
  one-sided histogram for non-negative tensors and on ``|x|`` otherwise.
- ``mse``: the range minimising expected squared error = rounding noise (``scale**2 / 12`` per
  in-range value) + clipping error of the values outside; searched on a grid of shrunk ranges.

All results are clamped to the observed [min, max] and always contain zero (QNN forces zero in the
range; see REFERENCE.md §1), so no method ever widens a range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from studio.core.calibration.histogram import RunningHistogram
from studio.core.errors import BadInputError

DEFAULT_PERCENTILE = 99.99


def compute_range(
    hist: RunningHistogram,
    method: str = "minmax",
    *,
    bitwidth: int = 8,
    percentile: float = DEFAULT_PERCENTILE,
) -> tuple[float, float]:
    """The (min, max) that ``method`` picks for this tensor's statistics."""
    if hist.count == 0 or not hist.counts.size:
        return 0.0, 0.0
    if method not in REGISTRY:
        raise BadInputError(f"unknown calibration method '{method}' (choose {', '.join(METHODS)})")
    lo, hi = REGISTRY[method].compute(hist, bitwidth, percentile)
    lo = max(float(lo), hist.minimum)
    hi = min(float(hi), hist.maximum)
    if hi < lo:
        lo, hi = hist.minimum, hist.maximum
    return lo, hi


def _percentile(hist: RunningHistogram, percentile: float) -> tuple[float, float]:
    if not 50.0 < percentile <= 100.0:
        raise BadInputError(f"percentile must be in (50, 100], got {percentile}")
    counts, edges = hist.clipped_counts()
    cut = (100.0 - percentile) / 200.0
    return _quantile(counts, edges, cut), _quantile(counts, edges, 1.0 - cut)


def _quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Value below which a fraction ``q`` of the mass lies, linear within the bin."""
    cdf = np.cumsum(counts, dtype=np.float64)
    total = cdf[-1]
    if total <= 0:
        return float(edges[0])
    target = q * total
    i = int(np.searchsorted(cdf, target, side="left"))
    i = min(i, counts.size - 1)
    before = cdf[i - 1] if i > 0 else 0.0
    inside = counts[i]
    frac = 0.0 if inside <= 0 else (target - before) / inside
    return float(edges[i] + min(max(frac, 0.0), 1.0) * (edges[i + 1] - edges[i]))


def _entropy(hist: RunningHistogram, bitwidth: int) -> tuple[float, float]:
    """TensorRT's KL threshold on the magnitude histogram; 16-bit grids fall back to min/max."""
    counts, edges = hist.clipped_counts()
    one_sided = hist.minimum >= 0.0
    # the histogram of |x| on the same grid: zero is an edge, so bins fold exactly
    zero = int(round(-edges[0] / hist.width)) if edges[0] < 0 < edges[-1] else None
    if one_sided or zero is None or hist.maximum <= 0:
        mags = counts if hist.maximum > 0 else counts[::-1]
    else:
        neg = counts[:zero][::-1]
        pos = counts[zero:]
        size = max(neg.size, pos.size)
        mags = np.zeros(size, dtype=np.int64)
        mags[: pos.size] += pos
        mags[: neg.size] += neg
    levels = 2**bitwidth if one_sided else 2 ** (bitwidth - 1)
    if mags.size <= levels:
        return hist.minimum, hist.maximum
    threshold_bin = _kl_threshold_bin(mags.astype(np.float64), levels)
    amax = threshold_bin * hist.width
    if one_sided:
        return hist.minimum, min(hist.maximum, hist.minimum + amax)
    if hist.maximum <= 0:
        return max(hist.minimum, -amax), hist.maximum
    return max(hist.minimum, -amax), min(hist.maximum, amax)


def _kl_threshold_bin(p_full: np.ndarray, levels: int, max_candidates: int = 96) -> int:
    """Number of leading bins that minimises KL(P || Q), P clipped at the threshold, Q quantised.

    TensorRT's search; candidates are spaced evenly (at most ``max_candidates``) and groups are
    summed with prefix sums instead of a per-candidate bincount, ~20x faster than ORT's loop.
    """
    n = p_full.size
    candidates = np.unique(
        np.linspace(levels, n, num=min(max_candidates, n - levels + 1)).astype(int)
    )
    nonzero_all = (p_full != 0).astype(np.float64)
    mass_cs = np.concatenate(([0.0], np.cumsum(p_full)))
    nz_cs = np.concatenate(([0.0], np.cumsum(nonzero_all)))
    total = mass_cs[-1]
    best_i, best_kl = n, math.inf
    g = np.arange(levels + 1)
    for i in candidates:
        i = int(i)
        # group k holds bins [ceil(k*i/levels), ceil((k+1)*i/levels)) -- same as (j*levels)//i
        bounds = -((-g * i) // levels)
        gmass = mass_cs[bounds[1:]] - mass_cs[bounds[:-1]]
        gnz = nz_cs[bounds[1:]] - nz_cs[bounds[:-1]]
        per_bin = np.repeat(gmass / np.maximum(gnz, 1.0), np.diff(bounds))
        q = per_bin * nonzero_all[:i]
        p = p_full[:i].copy()
        if i < n:
            p[-1] += total - mass_cs[i]
        kl = _kl(p, q)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def _kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    """KL divergence after ORT/TensorRT's smoothing (move eps mass onto the empty bins)."""
    ps, qs = _smooth(p, eps), _smooth(q, eps)
    if ps is None or qs is None:
        return math.inf
    mask = ps > 0
    # smoothing can push a tiny non-empty bin of q below zero: treat it as (almost) empty
    q = np.maximum(qs[mask], 1e-12)
    return float(np.sum(ps[mask] * np.log(ps[mask] / q)))


def _smooth(dist: np.ndarray, eps: float) -> np.ndarray | None:
    total = dist.sum()
    if total <= 0:
        return None
    d = dist / total
    zeros = d == 0
    n_zero = int(zeros.sum())
    n_nonzero = d.size - n_zero
    if n_nonzero == 0:
        return None
    eps1 = eps * n_zero / n_nonzero
    if eps1 >= 1.0:
        return None
    return d + eps * zeros - eps1 * (~zeros)


def _mse(hist: RunningHistogram, bitwidth: int, grid: int = 48) -> tuple[float, float]:
    """Grid search of (lo, hi) shrinks minimising rounding noise + clipping error."""
    counts, edges = hist.clipped_counts()
    c = (edges[:-1] + edges[1:]) * 0.5
    n = counts.astype(np.float64)
    total = n.sum()
    if total <= 0:
        return hist.minimum, hist.maximum
    lo0, hi0 = min(hist.minimum, 0.0), max(hist.maximum, 0.0)
    fractions = np.linspace(1.0 / grid, 1.0, grid)
    los = lo0 * fractions if lo0 < 0 else np.array([lo0])
    his = hi0 * fractions if hi0 > 0 else np.array([hi0])
    # prefix sums give the clipping error of every candidate bound in O(bins)
    cn, cnc, cnc2 = np.cumsum(n), np.cumsum(n * c), np.cumsum(n * c * c)

    def below(bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.searchsorted(c, bound, side="left")  # bins with centre < bound
        idx = k - 1
        cnt = np.where(idx >= 0, cn[np.maximum(idx, 0)], 0.0)
        s1 = np.where(idx >= 0, cnc[np.maximum(idx, 0)], 0.0)
        s2 = np.where(idx >= 0, cnc2[np.maximum(idx, 0)], 0.0)
        return cnt, s2 - 2 * bound * s1 + bound * bound * cnt

    def above(bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.searchsorted(c, bound, side="right")  # bins with centre > bound start at k
        idx = k - 1
        cnt_b = np.where(idx >= 0, cn[np.maximum(idx, 0)], 0.0)
        s1_b = np.where(idx >= 0, cnc[np.maximum(idx, 0)], 0.0)
        s2_b = np.where(idx >= 0, cnc2[np.maximum(idx, 0)], 0.0)
        cnt, s1, s2 = cn[-1] - cnt_b, cnc[-1] - s1_b, cnc2[-1] - s2_b
        return cnt, s2 - 2 * bound * s1 + bound * bound * cnt

    n_lo, e_lo = below(los)
    n_hi, e_hi = above(his)
    span = his[None, :] - los[:, None]
    scale = np.maximum(span, 1e-30) / (2**bitwidth - 1)
    inside = total - n_lo[:, None] - n_hi[None, :]
    err = inside * scale * scale / 12.0 + e_lo[:, None] + e_hi[None, :]
    i, j = np.unravel_index(int(np.argmin(err)), err.shape)
    return float(los[i]), float(his[j])


@dataclass(frozen=True)
class Method:
    """One range-setting method: its name (CLI, plans), the GUI's label and the range it picks."""

    name: str
    label: str
    compute: Callable[[RunningHistogram, int, float], tuple[float, float]]  # hist, bits, pct


# The one list of methods: the plan's validation, the CLI's --method choices and the GUI's
# combo boxes are derived from it. A new method is a function above and one record here.
REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method("minmax", "Min/max (exact range)", lambda h, _b, _p: (h.minimum, h.maximum)),
        Method("percentile", "Percentile (clip outliers)", lambda h, _b, p: _percentile(h, p)),
        Method("entropy", "Entropy (KL divergence)", lambda h, b, _p: _entropy(h, b)),
        Method("mse", "MSE (minimise error)", lambda h, b, _p: _mse(h, b)),
    )
}
METHODS: tuple[str, ...] = tuple(REGISTRY)
