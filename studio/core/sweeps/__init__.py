"""Sweeps: quantisation x device x config grids run on Ray, with a Pareto front to pick from.

Public API::

    spec = SweepSpec.load("sweep.json")          # or SweepSpec(models=[...], grid={...})
    doc = run_sweep(spec, "SWEEP.json", address=None, on_row=print, token=CancelToken())
    doc["rows"][0]["sqnr_db"], doc["rows"][0]["pareto"]

The top layer of ``studio.core``: it runs the calibration, quantisation, accuracy, toolchain and
profiling jobs unchanged, once per point, and writes their ordinary records.
"""

from studio.core.sweeps.results import latency_of, mark_pareto
from studio.core.sweeps.run import point_label, records_dir, run_sweep
from studio.core.sweeps.spec import DEFAULT_POINT, POINT_KEYS, SweepSpec, parse_grid_arg

__all__ = [
    "DEFAULT_POINT",
    "POINT_KEYS",
    "SweepSpec",
    "latency_of",
    "mark_pareto",
    "parse_grid_arg",
    "point_label",
    "records_dir",
    "run_sweep",
]
