"""HTP cycles of one inference of a QDQ model: the speed axis of the mixed-precision curve.

Why a function of its own rather than the profile job: the auto-MP search asks for one figure
per point (tens of points), so it needs the cheapest honest measurement, not the full record.
It opens the model on QNN HTP with CPU fallback DISABLED (a model that does not fully offload has
no "HTP cycles" to report, and a partial figure would flatter it) and QNN's detailed profiler,
runs ``1 + runs`` inferences on fixed random inputs, and reads the "Accelerator (execute) time
(cycles)" of each run from the profiler CSV with the profile job's parser (:mod:`.qnn_csv`).

The first run is discarded (VTCM acquire and power-on inflate it) and the LOWEST of the others is
returned: on the x86-64 simulator a busy host only ever adds cycles (see :mod:`.layers`), so the
minimum is the closest to the uncontended cost. Ten runs by default, not three: host load comes in
bursts that inflated 3-4 consecutive runs (small_cnn A16: 1.06 M cycles quiet, 1.7-4.3 M in a
burst; one 3-run measurement of its A8 model read 1.32 M instead of 0.65 M), while a run costs
~5-10 ms against ~0.15 s for the session, so seven more runs buy a steady figure almost free.
Never an estimate: where HTP or the figure is missing, BackendUnavailableError says why.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from studio.core.engine.sessions import make_session, random_inputs
from studio.core.errors import BackendUnavailableError, BadInputError
from studio.core.profiling.readers.qnn_csv import QnnBlock, parse_qnn_csv

DEFAULT_RUNS = 10


def htp_total_cycles(
    qdq_model_path: str | Path,
    *,
    runs: int = DEFAULT_RUNS,
    seed: int = 0,
    input_shapes: dict[str, list[int]] | None = None,
) -> float:
    """Accelerator cycles of one inference of ``qdq_model_path`` on QNN HTP (lowest of ``runs``).

    Raises BackendUnavailableError when QNN HTP cannot open the model with CPU fallback disabled
    (HTP absent, or an op it does not support) or when the profiler reports no cycle total.
    """
    runs = int(runs)
    if runs < 1:
        raise BadInputError(f"htp_total_cycles: runs must be >= 1 (got {runs})")
    path = Path(qdq_model_path)
    if not path.is_file():
        raise BadInputError("model file not found", path=str(path))
    with tempfile.TemporaryDirectory(prefix="studio-cycles-") as scratch:
        csv_path = Path(scratch) / "qnn_profile.csv"
        sess, _info = make_session(
            path,
            "htp",
            provider_options={
                "profiling_level": "detailed",
                "profiling_file_path": str(csv_path),
            },
            disable_cpu_fallback=True,
        )
        feeds = random_inputs(sess, input_shapes, seed=seed)
        for _ in range(1 + runs):
            sess.run(None, feeds)
        del sess  # the QNN EP writes its CSV when the session goes
        gc.collect()
        if not csv_path.is_file():
            raise BackendUnavailableError(
                f"QNN HTP wrote no profiler CSV for {path.name}: no cycle figure to report"
            )
        profile = parse_qnn_csv(csv_path)
    per_run = _cycles_per_run(profile.blocks, 1 + runs, path.name)
    return float(min(per_run[1:]))


def _cycles_per_run(blocks: list[QnnBlock], inferences: int, name: str) -> list[float]:
    """Accelerator cycles of each inference: the blocks of one run summed (one block per QNN
    graph executed, so a model split into several QNN graphs still gets its whole cost)."""
    if not blocks or len(blocks) % inferences:
        raise BackendUnavailableError(
            f"QNN HTP profiler for {name}: {len(blocks)} execution blocks for {inferences} "
            "inferences; cannot attribute cycles to runs"
        )
    graphs = len(blocks) // inferences
    totals: list[float] = []
    for i in range(inferences):
        values = [b.accelerator_cycles for b in blocks[i * graphs : (i + 1) * graphs]]
        if any(v is None or v <= 0 for v in values):
            raise BackendUnavailableError(
                f"QNN HTP profiler for {name} reported no 'Accelerator (execute) time (cycles)' "
                f"for run {i + 1}"
            )
        totals.append(float(sum(v for v in values if v is not None)))
    return totals
