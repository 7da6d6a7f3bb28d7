"""Profiling: measure a model on a backend, map the backend's per-op figures to ONNX nodes, report.

Modules, one job each:

* :mod:`.stats` - LatencyStats and the latency / timeline arithmetic.
* :mod:`.measure` - the timed loop (per-run latency, CPU use, memory), progress and cancel.
* :mod:`.job` - the ``profile_model`` job (worker or inline) that produces a :class:`ProfileRun`.
* :mod:`.layers` - the separate profiled pass (QNN CSV + graph dump, ORT profile + optimized graph).
* :mod:`.qnn_csv`, :mod:`.qnn_dump`, :mod:`.ort_profile`, :mod:`.viewer_text` - file parsers.
* :mod:`.mapping` - backend op names -> ONNX node ids, per-layer rows, shares; helped by
  :mod:`.structural` (unnamed ops matched through their neighbours), :mod:`.fixups` (how backends
  report fused groups) and :mod:`.optypes` (op-type aliases and families).
* :mod:`.records` - :class:`ProfileRun` / :class:`LayerRow` with ``to_json`` / ``from_json``.
* :mod:`.compare`, :mod:`.suggestions` - side-by-side runs; grounded bottleneck suggestions.
* :mod:`.report`, :mod:`.svg`, :mod:`.graph_svg`, :mod:`.export` - HTML report, charts, CSV/JSON.
* :mod:`.pipeline` - inspect -> quantise -> compile -> profile -> report.

The names below are the stable API for the UI (the Profiling workspace) and other callers.
"""

from studio.core.profiling.compare import CompareCell, CompareRow, Comparison, compare_runs
from studio.core.profiling.records import SCHEMA_VERSION, LayerRow, ProfileRun
from studio.core.profiling.stats import LatencyStats, latency_stats, timeline_bins
from studio.core.profiling.suggestions import Suggestion, suggest

__all__ = [
    "SCHEMA_VERSION",
    "CompareCell",
    "CompareRow",
    "Comparison",
    "LatencyStats",
    "LayerRow",
    "ProfileRun",
    "Suggestion",
    "compare_runs",
    "latency_stats",
    "suggest",
    "timeline_bins",
]
