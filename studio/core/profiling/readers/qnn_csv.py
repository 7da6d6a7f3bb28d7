"""Reading the QNN EP's profiler CSV (``profiling_file_path``) into per-run blocks.

Why a parser of our own: the file is *not* a proper CSV. Fields are not quoted or escaped, so an
Event Identifier such as a QNN op name may contain commas; the csv module would split it. We read
the header once, and give every surplus field of a row back to the Event Identifier column.

Layout seen with onnxruntime-qnn 2.x on x86-64 (HTP simulator), one header, appended per session:

* setup rows: ``FINALIZE``/``INIT``/``DEINIT`` ROOT events with their ``UNKNOWN`` SUB-EVENTs;
* then per executed graph a block: BACKEND ROOT rows (VTCM acquire, "Accelerator (execute) time
  (cycles)"), NODE SUB-EVENT rows (per-op cycles, ``"/stem/Conv_token_1:OpId_24 (cycles)"``),
  "Accelerator (execute) time" in US, and a closing ``EXECUTE`` row "QNN (execute) time".

A block is therefore closed by an EXECUTE row; rows after the last EXECUTE are an incomplete block
and are dropped (with a note) rather than reported as a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.errors import BadInputError

HEADER = (
    "Msg Timestamp",
    "Message",
    "Time",
    "Unit of Measurement",
    "Timing Source",
    "Event Level",
    "Event Identifier",
)
_ID_COLUMN = "Event Identifier"
_SETUP_MESSAGES = {"INIT", "FINALIZE", "DEINIT", "DE-INIT", "COMPOSE"}
# "/stem/Conv_token_1:OpId_24 (cycles)", "Input OpId_2 (cycles)", "Gemm13:OpId_62"
_OP_RE = re.compile(r"^(?P<name>.*?)(?::|\s)OpId_(?P<id>\d+)(?:\s*\((?P<unit>[^()]*)\))?\s*$")
_UNIT_SUFFIX_RE = re.compile(r"\s*\((?P<unit>cycles|us|count|bytes)\)\s*$", re.IGNORECASE)


@dataclass
class QnnEvent:
    """One row of the CSV with its fields typed; ``value`` is None when Time is not a number."""

    message: str
    value: float | None
    unit: str
    source: str
    level: str
    identifier: str


@dataclass
class QnnOpTime:
    """One NODE row: the QNN op name (without OpId / unit), its op id, value and unit."""

    name: str
    op_id: int | None
    value: float
    unit: str


@dataclass
class QnnBlock:
    """One graph execution: per-op figures in file order plus the backend's ROOT metrics."""

    ops: list[QnnOpTime] = field(default_factory=list)
    metrics: dict[str, tuple[float, str]] = field(default_factory=dict)

    @property
    def accelerator_cycles(self) -> float | None:
        item = self.metrics.get("Accelerator (execute) time (cycles)")
        return item[0] if item else None

    @property
    def accelerator_us(self) -> float | None:
        item = self.metrics.get("Accelerator (execute) time")
        return item[0] if item else None

    @property
    def execute_us(self) -> float | None:
        item = self.metrics.get("QNN (execute) time")
        return item[0] if item else None


@dataclass
class QnnProfile:
    """The parsed file: setup events (finalize/init), execution blocks, and parse notes."""

    setup: list[QnnEvent] = field(default_factory=list)
    blocks: list[QnnBlock] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def setup_us(self, identifier: str) -> float | None:
        """A setup ROOT time by identifier, e.g. ``"QNN (finalize) time"`` (summed if repeated)."""
        values = [
            e.value
            for e in self.setup
            if e.identifier == identifier and e.value is not None and e.unit.upper() == "US"
        ]
        return float(sum(values)) if values else None


def split_op_identifier(identifier: str) -> tuple[str, int | None, str]:
    """``"/stem/Conv_token_1:OpId_24 (cycles)"`` -> ``("/stem/Conv_token_1", 24, "cycles")``.

    Identifiers without an OpId keep their text (minus a trailing unit in parentheses).
    """
    text = identifier.strip()
    m = _OP_RE.match(text)
    if m:
        return m.group("name").strip(), int(m.group("id")), (m.group("unit") or "").strip()
    u = _UNIT_SUFFIX_RE.search(text)
    if u:
        return text[: u.start()].strip(), None, u.group("unit")
    return text, None, ""


def _split_row(line: str, header: list[str]) -> dict[str, str]:
    parts = line.split(",")
    extra = len(parts) - len(header)
    if extra < 0:
        raise ValueError(f"{len(parts)} fields, header has {len(header)}")
    k = header.index(_ID_COLUMN)
    row: dict[str, str] = {}
    for i, name in enumerate(header):
        if i < k:
            row[name] = parts[i]
        elif i == k:
            row[name] = ",".join(parts[k : k + extra + 1])
        else:
            row[name] = parts[i + extra]
    return row


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def parse_qnn_csv_text(text: str, source: str = "<text>") -> QnnProfile:
    """Parse the CSV text; raise BadInputError when the header is missing or unknown."""
    lines = [ln.rstrip("\r") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise BadInputError("QNN profile CSV is empty", path=source)
    header = [h.strip() for h in lines[0].split(",")]
    missing = [h for h in ("Message", "Time", "Unit of Measurement", _ID_COLUMN) if h not in header]
    if missing:
        raise BadInputError(
            f"not a QNN profiler CSV: header lacks {', '.join(missing)} (got '{lines[0][:120]}')",
            path=source,
        )
    profile = QnnProfile()
    current = QnnBlock()
    in_setup = False
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("Msg Timestamp,"):
            continue  # a repeated header (another session appended to the same file)
        try:
            row = _split_row(line, header)
        except ValueError as exc:
            profile.notes.append(f"line {number} skipped: {exc}")
            continue
        event = QnnEvent(
            message=row.get("Message", "").strip().upper(),
            value=_number(row.get("Time", "")),
            unit=row.get("Unit of Measurement", "").strip(),
            source=row.get("Timing Source", "").strip(),
            level=row.get("Event Level", "").strip(),
            identifier=row.get(_ID_COLUMN, "").strip(),
        )
        if event.message in _SETUP_MESSAGES:
            in_setup = True
            profile.setup.append(event)
            continue
        if in_setup and event.message == "UNKNOWN" and event.level.upper() == "SUB-EVENT":
            profile.setup.append(event)
            continue
        in_setup = False
        if event.value is None:
            profile.notes.append(f"line {number}: non-numeric time '{row.get('Time')}'")
            continue
        if event.message == "NODE":
            name, op_id, _ = split_op_identifier(event.identifier)
            current.ops.append(QnnOpTime(name, op_id, event.value, event.unit.upper()))
        else:
            current.metrics[event.identifier] = (event.value, event.unit.upper())
        if event.message == "EXECUTE":
            profile.blocks.append(current)
            current = QnnBlock()
    if current.ops or current.metrics:
        profile.notes.append(
            f"{len(current.ops)} op rows after the last EXECUTE row were dropped (incomplete run)"
        )
    return profile


def parse_qnn_csv(path: str | Path) -> QnnProfile:
    """Parse a profiler CSV file written by the QNN EP."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BadInputError(
            f"cannot read QNN profile CSV: {exc.strerror or exc}", path=str(p)
        ) from exc
    return parse_qnn_csv_text(text, str(p))
