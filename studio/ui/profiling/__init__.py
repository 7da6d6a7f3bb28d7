"""The Profiling workspace: measured latency, per-layer cost on the graph, run comparison, export.

Thin over :mod:`studio.core.profiling`: every figure shown here comes from a ``ProfileRun`` record
produced by the core's profile job; this package only arranges, plots and exports it.
"""
