"""One per-node overlay: a value for each ONNX node id, what the values are and where they came from.

Why one type: the graph colours nodes by a profile's cost, the device estimate, the SQNR of an
analysis or the backend plan; the project keeps the overlay on screen; the report draws the heat
graph; the CLI prints per-node figures. Each used to pass a bare ``{node id: float}`` beside loose
``unit``/``colormap`` strings, and nothing said whether the numbers were measured, emulated or
estimated (DESIGN.md: every number says what it is). A :class:`NodeOverlay` carries that with the
values, and ``to_json``/``from_json`` are the one saved shape (the project's ``overlays.active``,
``estimate --json``'s ``overlay``).

Ground floor: plain data, no model, no Qt. ``values`` are finite floats; a node without a figure
is absent (the graph draws it as "no data"), never a made-up zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from studio.core import jsonread
from studio.core.errors import BadInputError

# measured: real hardware or this host, named in ``source``; emulated: the x86-64 HTP emulator;
# estimated: a device model (its error in ``source``); assumed: a visible editable constant;
# counted: from the model itself (MACs, bytes); derived: computed from others (a share, a plan).
KINDS = ("measured", "emulated", "estimated", "assumed", "counted", "derived")
AGGREGATES = ("max", "sum")


@dataclass
class NodeOverlay:
    """Values by node id, with ``unit``, ``kind`` (see KINDS) and ``source`` (device or run label).

    ``colormap`` and ``aggregate`` (how a collapsed group combines its members) are how the graph
    should draw it; they travel with the values so that a restored overlay looks the same.
    """

    name: str
    values: dict[str, float] = field(default_factory=dict)
    unit: str = ""
    kind: str = "measured"
    source: str = ""
    colormap: str = "viridis"
    aggregate: str = "max"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BadInputError(f"overlay '{self.name}': kind {self.kind!r} is not one of {KINDS}")
        if self.aggregate not in AGGREGATES:
            raise BadInputError(f"overlay '{self.name}': aggregate {self.aggregate!r} is unknown")
        self.values = {
            str(k): float(v)
            for k, v in self.values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }

    @property
    def label(self) -> str:
        """The overlay in words, for a legend or a report caption: name, unit, what it is."""
        unit = f" ({self.unit})" if self.unit else ""
        source = f", {self.source}" if self.source else ""
        return f"{self.name}{unit}: {self.kind}{source}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "values": dict(self.values),
            "unit": self.unit,
            "kind": self.kind,
            "source": self.source,
            "colormap": self.colormap,
            "aggregate": self.aggregate,
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>") -> NodeOverlay:
        """Read an overlay; ``kind``/``source``/``aggregate`` default for records saved before them."""
        doc = jsonread.wrap(data, source)
        values = {}
        for node, value in doc.key("values", {}).items():
            values[node] = value.number()
        return cls(
            name=doc.key("name", "overlay").string(),
            values=values,
            unit=doc.key("unit", "").string(),
            kind=doc.key("kind", "measured").string(choices=KINDS),
            source=doc.key("source", "").string(),
            colormap=doc.key("colormap", "viridis").string(),
            aggregate=doc.key("aggregate", "max").string(choices=AGGREGATES),
        )
