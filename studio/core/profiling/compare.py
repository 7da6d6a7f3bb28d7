"""Side-by-side comparison of profile runs (e.g. INT8 vs mixed 16-bit on HTP vs fp32 on CPU).

Rows are keyed by ONNX node id, which survives quantisation (the QDQ model keeps the float
model's node names), so one table lines up the same layer across runs. Runs may measure layers
in different units (HTP: simulator cycles, CPU: microseconds): a value ratio is only given when
both cells share a unit; the share of the run's total is always comparable and its delta is given
in percentage points.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any

from studio.core.errors import BadInputError
from studio.core.profiling.records import ProfileRun

SCHEMA_VERSION = 1


@dataclass
class CompareCell:
    value: float | None
    unit: str | None
    share: float | None
    backend: str


@dataclass
class CompareRow:
    """One layer across runs; ``None`` cells where a run has no figure for it."""

    node_id: str
    op_type: str
    inserted: bool
    cells: list[CompareCell | None]
    share_delta_pp: list[float | None]
    value_ratio: list[float | None]


@dataclass
class Comparison:
    runs: list[dict[str, Any]]
    rows: list[CompareRow] = field(default_factory=list)
    baseline: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "baseline": self.baseline,
            "runs": self.runs,
            "rows": [asdict(r) for r in self.rows],
        }

    def to_csv(self) -> str:
        """One line per layer; per run: value, unit, share, share delta (pp), value ratio."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        head = ["node_id", "op_type", "inserted_by_backend"]
        for run in self.runs:
            tag = run["label"] or run["id"]
            head += [f"{tag} value", f"{tag} unit", f"{tag} share", f"{tag} Δshare pp"]
            head += [f"{tag} ratio"]
        writer.writerow(head)
        for row in self.rows:
            line: list[Any] = [row.node_id, row.op_type, int(row.inserted)]
            for cell, dpp, ratio in zip(
                row.cells, row.share_delta_pp, row.value_ratio, strict=True
            ):
                if cell is None:
                    line += ["", "", "", "", ""]
                else:
                    line += [_fmt(cell.value), cell.unit or "", _fmt(cell.share), _fmt(dpp)]
                    line += [_fmt(ratio)]
            writer.writerow(line)
        return buf.getvalue()


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _summary(run: ProfileRun, base: ProfileRun) -> dict[str, Any]:
    s = run.stats
    accel = run.backend_stats.get("accelerator_cycles") or {}
    return {
        "id": run.id,
        "label": run.label,
        "backend": run.backend,
        "model_path": run.model_path,
        "mean_ms": s.mean_ms,
        "p50_ms": s.p50_ms,
        "p95_ms": s.p95_ms,
        "p99_ms": s.p99_ms,
        "throughput_ips": s.throughput_ips,
        "mean_ratio_vs_baseline": s.mean_ms / base.stats.mean_ms if base.stats.mean_ms else None,
        "accelerator_cycles_p50": accel.get("p50"),
    }


def compare_runs(runs: list[ProfileRun], baseline: int = 0) -> Comparison:
    """Line the runs' layers up by node id; deltas are against ``runs[baseline]``."""
    if not runs:
        raise BadInputError("nothing to compare: no profile runs given")
    if not 0 <= baseline < len(runs):
        raise BadInputError(f"baseline index {baseline} is out of range for {len(runs)} runs")
    base = runs[baseline]
    order: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    for run in [base, *runs]:
        for r in run.all_rows:
            if r.node_id not in seen:
                seen.add(r.node_id)
                order.append((r.node_id, r.op_type, r.inserted))
    tables = [{r.node_id: r for r in run.all_rows} for run in runs]
    rows: list[CompareRow] = []
    for node_id, op_type, inserted in order:
        cells: list[CompareCell | None] = []
        for table in tables:
            r = table.get(node_id)
            cells.append(None if r is None else CompareCell(r.value, r.measure, r.share, r.backend))
        b = cells[baseline]
        dpp: list[float | None] = []
        ratios: list[float | None] = []
        for c in cells:
            if c is None or b is None or c.share is None or b.share is None:
                dpp.append(None)
            else:
                dpp.append((c.share - b.share) * 100.0)
            if c is None or b is None or c.unit != b.unit or not b.value or c.value is None:
                ratios.append(None)
            else:
                ratios.append(c.value / b.value)
        rows.append(CompareRow(node_id, op_type, inserted, cells, dpp, ratios))
    return Comparison([_summary(r, base) for r in runs], rows, baseline)
