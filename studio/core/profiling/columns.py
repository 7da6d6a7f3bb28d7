"""The per-layer profiler columns: one record each, read by every table that lists them.

Why one list: the CSV export, the HTML report's table and the Profiling workspace's Qt table all
show the same per-layer figures. Written out in each of them, a new figure meant four edits in four
folders and a header that drifted between them. Here a column is a :class:`Column` (key, header,
unit, what kind of figure it is, how to read it off a :class:`LayerRow` and how to show it), and
``views`` says which tables carry it. Adding a column is one record in :data:`LAYER_COLUMNS` (and,
when it is a new figure, its field in ``records.py``): both in this folder.

Kinds (DESIGN.md, "every number says what it is"): ``measured`` figures come from a profiler (they
read as *emulated* on a run of the x86-64 HTP emulator, see :meth:`Column.kind_for`); ``derived``
ones are computed from measured ones (a share, cycles per MAC); ``counted`` ones from the model
itself (MACs); ``identity`` columns name the row and carry no figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.core.profiling.records import MEASURE_CYCLES, MEASURE_TIME, LayerRow, ProfileRun

KINDS = ("identity", "measured", "derived", "counted")

# The tables a column can stand in.
CSV = "csv"
REPORT = "report"
TABLE = "table"  # the Profiling workspace's per-layer table
ALL_VIEWS = frozenset({CSV, REPORT, TABLE})


def fmt_count(value: float | None) -> str:
    """1.23 M / 45.6 k style, for cycles and MACs."""
    if value is None:
        return "—"
    v = float(value)
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{suffix}"
    return f"{v:.0f}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(x) for x in value)
    return str(value)


def _count(value: Any) -> str:
    return fmt_count(value) if value else ""


def _fixed(digits: int) -> Callable[[Any], str]:
    return lambda value: "" if value is None else f"{value:.{digits}f}"


def _percent(value: Any) -> str:
    return "" if value is None else f"{value * 100:.2f}%"


def _range(value: Any) -> str:
    return f"{value[0]:,.0f}-{value[1]:,.0f}" if value else ""


@dataclass(frozen=True)
class Column:
    """One per-layer column.

    ``key``: the CSV header and the name in JSON; ``label``: the header people read (UI table,
    report); ``unit``: what the number counts ("" for text); ``kind``: see the module docstring;
    ``get``: the raw value of a row (None when the row has none); ``fmt``: that value as text for
    a person; ``measure``: the row measure the column belongs to (the report shows only the run's
    primary one); ``views``: the tables that carry it; ``tip``: the header tooltip.
    """

    key: str
    label: str
    get: Callable[[LayerRow], Any]
    unit: str = ""
    kind: str = "identity"
    fmt: Callable[[Any], str] = _text
    measure: str | None = None
    views: frozenset[str] = ALL_VIEWS
    tip: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.key}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def numeric(self) -> bool:
        return self.kind != "identity"

    def kind_for(self, run: ProfileRun | None) -> str:
        """The kind as the run's reader should hear it: the emulator's figures are emulated."""
        if self.kind == "measured" and run is not None and run.is_emulated():
            return "emulated"
        return self.kind

    def text(self, row: LayerRow) -> str:
        """The cell as a person reads it."""
        return self.fmt(self.get(row))

    def sort_key(self, row: LayerRow) -> Any:
        """What a table sorts the column by: the raw number (missing ones last), else the text."""
        value = self.get(row)
        if not self.numeric:
            return _text(value)
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else None
        return -1.0 if value is None else float(value)

    def describe(self, run: ProfileRun | None = None) -> dict[str, str]:
        """The column as JSON (what the export says each number is)."""
        return {"key": self.key, "label": self.label, "unit": self.unit, "kind": self.kind_for(run)}


def _range_end(i: int) -> Callable[[LayerRow], Any]:
    return lambda r: r.value_range[i] if r.value_range else None


LAYER_COLUMNS: list[Column] = [
    Column("node_id", "Node", lambda r: r.node_id),
    Column("op_type", "Op", lambda r: r.op_type),
    Column("backend", "Backend", lambda r: r.backend, fmt=lambda v: str(v).upper()),
    Column(
        "cycles",
        "Cycles",
        lambda r: r.cycles,
        unit="cycles",
        kind="measured",
        fmt=lambda v: "" if v is None else fmt_count(v),
        measure=MEASURE_CYCLES,
        tip="QNN profiler cycles per inference (the simulator's on x86-64), median of profiled runs",
    ),
    Column(
        "time_us",
        "Time (µs)",
        lambda r: r.time_us,
        unit="µs",
        kind="measured",
        fmt=_fixed(1),
        measure=MEASURE_TIME,
        tip="ORT kernel time per inference (CPU EP), median of profiled runs",
    ),
    Column(
        "share",
        "Share",
        lambda r: r.share,
        unit="fraction",
        kind="derived",
        fmt=_percent,
        tip="Share of the run's total of the same measure (cycles with cycles, time with time)",
    ),
    Column(
        "macs",
        "MACs",
        lambda r: r.macs,
        unit="MACs",
        kind="counted",
        fmt=_count,
        tip="Multiply-accumulates of the node (and of nodes the backend fused into it)",
    ),
    Column(
        "cycles_per_mac",
        "Cycles/MAC",
        lambda r: r.cycles_per_mac,
        unit="cycles/MAC",
        kind="derived",
        fmt=_fixed(3),
        tip="Cycles per MAC: how efficiently the backend runs this layer's arithmetic",
    ),
    Column(
        "value_min",
        "Lowest over runs",
        _range_end(0),
        kind="measured",
        views=frozenset({CSV}),
    ),
    Column(
        "value_max",
        "Highest over runs",
        _range_end(1),
        kind="measured",
        views=frozenset({CSV}),
    ),
    Column(
        "value_range",
        "Range over runs",
        lambda r: r.value_range,
        kind="measured",
        fmt=_range,
        views=frozenset({REPORT}),
        tip="Lowest and highest reading over the profiled runs",
    ),
    Column(
        "inserted_by_backend",
        "Inserted by the backend",
        lambda r: int(r.inserted),
        views=frozenset({CSV}),
    ),
    Column("fused", "Fused", lambda r: r.fused, views=frozenset({CSV})),
    Column("inferred_fused", "Fused (inferred)", lambda r: r.inferred, views=frozenset({CSV})),
    Column("backend_ops", "Backend ops", lambda r: r.backend_ops, views=frozenset({CSV})),
    Column("note", "Note", lambda r: r.note),
]


def columns(view: str) -> list[Column]:
    """The columns of one table (``CSV``, ``REPORT`` or ``TABLE``), in order. Read at call time."""
    return [c for c in LAYER_COLUMNS if view in c.views]


def column(key: str) -> Column:
    for c in LAYER_COLUMNS:
        if c.key == key:
            return c
    raise KeyError(key)


def report_columns(run: ProfileRun) -> list[Column]:
    """The report's columns for ``run``: a figure of another measure than the run's is left out."""
    measure = run.primary_measure
    return [c for c in columns(REPORT) if c.measure is None or c.measure == measure]
