"""The workspace's state holder: the core QuantPlan, the calibration stats and what they give.

Why a Qt object at all: the table, the histogram, the charts and the graph overlay all show the
same plan, and each must repaint after an edit, an undo, an import or a recalibration. The session
turns core results into signals; it decides nothing itself. Every edit is expressed as a core
``TensorOverride`` (or an imported ``EncodingSet``), applied through an undo command
(``commands.py``), and the effective encodings are recomputed by ``QuantPlan.encodings`` - the
same call the CLI makes, so the GUI can never show an encoding the build would not use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from PySide6.QtCore import QObject, Signal

from studio.core.calibration import CalibrationStats
from studio.core.encodings import Encoding, EncodingSet
from studio.core.encodings.model_info import ModelView
from studio.core.errors import EncodingsError, StudioError
from studio.core.quantize import editing
from studio.core.quantize.editing import copy_override
from studio.core.quantize.plan import QuantPlan, TensorOverride
from studio.core.quantize.scope import quantisable_tensors

log = logging.getLogger(__name__)

WEIGHT_HIST_BINS = 256


@dataclass(frozen=True)
class TensorRow:
    """One line of the table: a quantisable tensor and where it sits in the graph."""

    name: str
    kind: str  # activation | param | bias
    op_type: str  # producing op (activations) or consuming op (weights)
    node_id: str | None  # node id in ctx.graph to select; None when it has no counterpart


class QuantSession(QObject):
    """Plan + stats + model -> rows, encodings, SQNR; signals for every change."""

    rows_reset = Signal()  # the set of tensors changed (new model, new calibration)
    tensors_changed = Signal(list)  # names whose encodings changed ([] = all)
    sqnr_changed = Signal()
    plan_changed = Signal()  # after any change of the plan (autosave hook)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.plan = QuantPlan()
        self.stats: CalibrationStats | None = None
        self.graph: Any = None  # studio.core.model.graph.ModelGraph of the original model
        self.proto: onnx.ModelProto | None = None  # the model the tensor names belong to
        self._uses_cache: tuple[Any, editing.TensorUses] | None = None  # (proto, its index)
        self.prepared: onnx.ModelProto | None = None  # folded model before calibration
        self.preparing = False  # the prepared model is being computed (no rows yet)
        self.rows: list[TensorRow] = []
        self._row_index: dict[str, TensorRow] = {}
        self.encodings = EncodingSet()
        self.sqnr: dict[str, float] = {}
        self.sqnr_source = ""
        self.sqnr_stale = False  # the plan changed since the SQNR was measured
        # tensor -> {"node", "op_type", "reason", "target"} of a node HTP would not take
        self.htp_fallbacks: dict[str, dict[str, str]] = {}
        self.htp_checked = False  # an HTP check ran on the current plan
        self.edited: set[str] = set()
        self.generation = 0  # bumped per model: undo commands of another model do nothing
        self._weights: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ set-up
    def set_model(self, graph: Any) -> None:
        """A new model: no stats yet, and no rows until :meth:`set_prepared` hands over the
        prepared (BatchNorm-folded) model: the original's BatchNorm parameters are never
        quantised, so listing them would show tensors no edit can affect."""
        self.graph = graph
        self.generation += 1
        self.plan = QuantPlan()  # the project's plan, if any, is restored by the workspace
        self.stats = None
        self.proto = None
        self.prepared = None
        self.preparing = graph is not None
        self.sqnr = {}
        self._weights = {}
        self._rebuild_rows()
        self._recompute()
        self.rows_reset.emit()
        self.sqnr_changed.emit()

    def set_prepared(
        self, proto: onnx.ModelProto | None, generation: int, rows: list[TensorRow] | None = None
    ) -> bool:
        """The prepared model for the current model (None: preparation failed, list the
        original's tensors by the same rules). Ignored when it belongs to an older model, or
        when calibration stats (which carry their own prepared model) arrived first."""
        if generation != self.generation or self.graph is None:
            return False
        self.preparing = False
        self.prepared = proto
        if self.stats is not None:
            return False
        self.proto = proto if proto is not None else self.graph.proto
        self._weights = {}
        self._recompute()
        self._rebuild_rows(rows if proto is not None and not self.plan.imported else None)
        self.rows_reset.emit()
        return True

    def set_stats(self, stats: CalibrationStats | None, pre: StatsView | None = None) -> None:
        """New calibration: tensor names now come from the prepared (folded) model.

        ``pre`` (:func:`stats_view`, computed on the job's thread for the plan as it was then)
        saves reading the prepared model, the encodings and the rows on the UI thread.
        """
        if (
            pre is not None
            and stats is not None
            and pre.stats is stats
            and pre.plan_json == self.plan.to_json()
        ):
            self.stats, self._weights, self.sqnr = stats, {}, {}
            self.proto, self.encodings = pre.proto, pre.encodings
            self.edited = set(self.plan.overrides)
            self._rebuild_rows(pre.rows)
            self.rows_reset.emit()
            self.sqnr_changed.emit()
            return
        self.stats = stats
        self._weights = {}
        if stats is not None and stats.prepared_model is not None:
            self.proto = onnx.load(str(stats.prepared_model))
        elif self.prepared is not None or self.preparing:
            self.proto = self.prepared
        elif self.graph is not None:
            self.proto = self.graph.proto
        self.sqnr = {}
        self._recompute()
        self._rebuild_rows()
        self.rows_reset.emit()
        self.sqnr_changed.emit()

    def set_plan(self, plan: QuantPlan) -> None:
        """Replace the whole plan (project opened); no undo entry."""
        self.plan = plan
        self._recompute()
        self._rebuild_rows()
        self.rows_reset.emit()

    def set_htp_fallbacks(self, fallbacks: dict[str, dict[str, str]]) -> None:
        """Per tensor, the node that would leave HTP and QNN's reason (``htp_fallbacks``);
        the editor's HTP column shows them until the plan changes."""
        self.htp_fallbacks = dict(fallbacks)
        self.htp_checked = True
        self.tensors_changed.emit([])

    def set_sqnr(self, values: dict[str, float], source: str = "") -> None:
        self.sqnr = {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
        self.sqnr_source = source
        self.sqnr_stale = False
        self.sqnr_changed.emit()
        self.tensors_changed.emit([])

    # ------------------------------------------------------------------ queries
    def encoding(self, name: str) -> Encoding | None:
        enc = self.encodings.get(name)
        if enc is None and self.plan.imported is not None:
            enc = self.plan.imported.get(name)
        return enc

    def row(self, name: str) -> TensorRow | None:
        return self._row_index.get(name)

    def histogram(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(counts, edges): calibration histogram for activations, the data for weights."""
        if self.stats is not None and name in self.stats.histograms:
            return self.stats.histogram(name)
        data = self.weight_array(name)
        if data is None or data.size == 0:
            return None
        lo, hi = float(data.min()), float(data.max())
        if hi <= lo:
            hi = lo + 1e-6
        counts, edges = np.histogram(data, bins=WEIGHT_HIST_BINS, range=(lo, hi))
        return counts, edges

    def observed_range(self, name: str) -> tuple[float, float] | None:
        if self.stats is not None and name in self.stats.histograms:
            t = self.stats.tensor(name)
            return t.minimum, t.maximum
        data = self.weight_array(name)
        if data is None or data.size == 0:
            return None
        return float(data.min()), float(data.max())

    def weight_array(self, name: str) -> np.ndarray | None:
        if name in self._weights:
            return self._weights[name]
        if self.proto is None:
            return None
        for init in self.proto.graph.initializer:
            if init.name == name:
                try:
                    arr = numpy_helper.to_array(init)
                except Exception:  # noqa: BLE001 - external data not loaded: no histogram
                    return None
                arr = arr.astype(np.float64, copy=False)
                self._weights[name] = arr
                return arr
        return None

    def quant_mse(self, name: str) -> float | None:
        """Relative quantise-dequantise MSE of the tensor under its current encoding."""
        from studio.core.quantize.mse import encoding_mse

        enc = self.encoding(name)
        if enc is None or enc.is_float:
            return None
        key = (name, id(enc))
        cache = self.__dict__.setdefault("_mse_cache", {})
        if key not in cache:
            weights = self.weight_array(name)
            hist = self.histogram(name) if weights is None else None
            found = encoding_mse(enc, values=weights, histogram=hist)
            cache[key] = found.relative if found is not None else None
        return cache[key]

    def allowed_bitwidths(self, name: str) -> tuple[int, ...]:
        """Integer widths QNN HTP takes for this tensor (the bit-width editor offers these)."""
        from studio.core.quantize.editing import (
            ACTIVATION_BITS,
            activation_bits_of,
            allowed_bitwidths,
        )

        if self.proto is None:
            return ACTIVATION_BITS
        # the rule depends on the activations the tensor's nodes read (16-bit weights need
        # 16-bit activations; a constant operand needs their width)
        uses = self._tensor_uses()
        acts = activation_bits_of(self.plan, self.proto, name, uses)
        return allowed_bitwidths(self.proto, name, activation_bits=acts, uses=uses)

    def _tensor_uses(self) -> editing.TensorUses:
        """Who reads each tensor of ``self.proto``, indexed once per model: the editor asks
        per tensor, and each rule check would otherwise scan every node (twice)."""
        cached = self._uses_cache
        if cached is None or cached[0] is not self.proto:
            cached = self._uses_cache = (self.proto, editing.tensor_uses(self.proto))
        return cached[1]

    def can_per_channel(self, name: str) -> bool:
        """Only weights of rank >= 2 have output channels to scale separately."""
        row = self.row(name)
        if row is None or row.kind == "activation":
            return False
        data = self.weight_array(name)
        return data is not None and data.ndim >= 2

    def node_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """Map per-tensor values onto node ids (graph overlay); the first tensor of a node wins
        for activations, weights only fill nodes without an activation value."""
        out: dict[str, Any] = {}
        for kind_pass in ("activation", "param"):
            for r in self.rows:
                if r.kind == kind_pass and r.node_id and r.name in values and r.node_id not in out:
                    out[r.node_id] = values[r.name]
        return out

    def badges(self) -> dict[str, str]:
        """``{node_id: "A16 W8"}``: bit widths per node, for the graph's badges."""
        parts: dict[str, dict[str, str]] = {}
        for r in self.rows:
            enc = self.encoding(r.name)
            if enc is None or not r.node_id or r.kind == "bias":
                continue
            prefix = "A" if r.kind == "activation" else "W"
            text = "F" + str(enc.bitwidth) if enc.is_float else str(enc.bitwidth)
            parts.setdefault(r.node_id, {}).setdefault(prefix, prefix + text)
        return {n: " ".join(p[k] for k in ("A", "W") if k in p) for n, p in parts.items()}

    # ------------------------------------------------------------------ edits (used by commands)
    def override(self, name: str) -> TensorOverride | None:
        return self.plan.overrides.get(name)

    def apply_overrides(self, changes: dict[str, TensorOverride | None]) -> None:
        """Set (or clear, for None) the overrides; raises and restores on a core refusal."""
        before = {n: copy_override(self.plan.overrides.get(n)) for n in changes}
        try:
            for name, ov in changes.items():
                if ov is None:
                    self.plan.clear_override(name)
                else:
                    self.plan.set_override(copy_override(ov))
            self._recompute()
        except StudioError:
            for name, ov in before.items():
                if ov is None:
                    self.plan.clear_override(name)
                else:
                    self.plan.overrides[name] = ov
            self._recompute()
            raise
        self._changed(list(changes))

    def apply_import(self, encset: EncodingSet | None, source: str | None) -> None:
        self.plan.imported = encset.copy() if encset is not None else None
        self.plan.imported_source = source
        self._mark_stale()
        self._recompute()
        self._rebuild_rows()
        self.rows_reset.emit()
        self.plan_changed.emit()

    def apply_defaults(self, values: dict[str, Any]) -> None:
        """Plan-wide settings (activation_bitwidth, method, ...); validated by the core."""
        old = self.plan.to_json()
        for key, value in values.items():
            setattr(self.plan, key, value)
        try:
            self.plan.validate()
            self._recompute()
        except StudioError:
            self.plan = QuantPlan.from_json(old)
            self._recompute()
            raise
        self._changed([])

    def _changed(self, names: list[str]) -> None:
        # folding a Relu's range into its producer can change a neighbour: repaint all rows
        self._mark_stale()
        self.tensors_changed.emit([])
        self.plan_changed.emit()

    def _mark_stale(self) -> None:
        self.htp_checked = False  # the plan changed: the HTP column no longer says "all on HTP"
        self.htp_fallbacks = {}
        if self.sqnr and not self.sqnr_stale:
            self.sqnr_stale = True
            self.sqnr_changed.emit()

    def reflects(self, name: str, key: str, value: Any) -> bool:
        """Whether the effective encoding shows a requested setting (see the core's editing rules)."""
        return editing.reflects(self.encoding(name), key, value)

    # ------------------------------------------------------------------ building new overrides
    def edited_override(self, name: str, key: str, value: Any) -> TensorOverride:
        """The override after the user sets ``key`` to ``value`` on ``name``; the core checks it.

        Raises EncodingsError/ConfigError/ValueError with the core's message when invalid.
        """
        row = self.row(name)
        weight = row is not None and row.kind not in ("activation", "bias")
        if key == "bits" and self.proto is not None and weight:
            dtype, bits = editing.parse_bitwidth(str(value))
            uses = self._tensor_uses()
            acts = editing.activation_bits_of(self.plan, self.proto, name, uses)
            reason = (
                None
                if dtype == "float"
                else editing.why_not(self.proto, name, bits, None, acts, uses)
            )
            if reason is not None:  # the editor offers only what HTP runs
                raise EncodingsError(f"tensor '{name}': {bits}-bit: {reason}")
        return editing.edited_override(
            name,
            row.kind if row is not None else None,
            self.encoding(name),
            self.plan.overrides.get(name),
            key,
            value,
        )

    def range_override(self, name: str, lo: float, hi: float) -> TensorOverride:
        """The override giving ``name`` the range [lo, hi] (scale/offset follow in the core)."""
        return editing.range_override(
            name, self.encoding(name), self.plan.overrides.get(name), lo, hi
        )

    # ------------------------------------------------------------------ internals
    def _recompute(self) -> None:
        if self.stats is None:
            self.encodings = EncodingSet()
        else:
            self.encodings = self.plan.encodings(self.stats, self.proto)
        self.edited = set(self.plan.overrides)

    def _rebuild_rows(self, rows: list[TensorRow] | None = None) -> None:
        """Rows in graph order: each node's weights, then its outputs (inputs first).

        ``rows`` computed elsewhere (:func:`build_rows` on the preparer's thread) are used as
        they are: listing a 20k-node model's tensors takes a few hundred ms of Python.
        """
        if rows is None:
            rows = build_rows(
                self.proto,
                self.graph,
                set(self.stats.tensor_names()) | set(self.encodings) if self.stats else set(),
                self.plan.imported,
                self.encoding,
            )
        self.rows = rows
        self._row_index = {r.name: r for r in self.rows}


@dataclass
class StatsView:
    """What :meth:`QuantSession.set_stats` derives from new stats, computed off the UI thread."""

    stats: CalibrationStats
    plan_json: dict[str, Any]
    proto: onnx.ModelProto
    encodings: EncodingSet
    rows: list[TensorRow]


def stats_view(stats: CalibrationStats, plan_json: dict[str, Any], graph: Any) -> StatsView | None:
    """The prepared model, the plan's encodings and the rows for ``stats`` (a worker thread)."""
    if stats.prepared_model is None:
        return None
    plan = QuantPlan.from_json(plan_json)
    proto = onnx.load(str(stats.prepared_model))
    encodings = plan.encodings(stats, proto)

    def encoding_of(name: str) -> Encoding | None:
        enc = encodings.get(name)
        if enc is None and plan.imported is not None:
            enc = plan.imported.get(name)
        return enc

    extra = set(stats.tensor_names()) | set(encodings)
    rows = build_rows(proto, graph, extra, plan.imported, encoding_of)
    return StatsView(stats, plan_json, proto, encodings, rows)


def build_rows(
    proto: onnx.ModelProto | None,
    graph: Any,
    extra: set[str] = frozenset(),  # type: ignore[assignment]
    imported: Any = None,
    encoding_of: Any = None,
) -> list[TensorRow]:
    """The table's rows for ``proto`` (pure: safe on a worker thread).

    ``extra``: names calibration or the plan's encodings add; ``imported``: an imported
    EncodingSet whose names are listed too (those the model lacks at the end).
    """
    rows: list[TensorRow] = []
    if proto is None:
        return rows
    view = ModelView(proto)
    # the build's own rule (no Clip min/max, Resize scales... as "weights"); biases stay
    # listed after calibration too (the build derives them: int32, no editable encoding)
    wanted = set(quantisable_tensors(proto)) | set(extra)
    if imported is not None:
        wanted |= set(imported)
    graph_nodes = getattr(graph, "node_by_id", {}) or {}
    graph_tensors = getattr(graph, "tensors", {}) or {}

    def node_id(proto_node: onnx.NodeProto | None, tensor: str) -> str | None:
        # the original graph's producer first (BN folding keeps the BN output's name)
        info = graph_tensors.get(tensor)
        if info is not None and info.producer:
            return info.producer
        if proto_node is not None and proto_node.name in graph_nodes:
            return proto_node.name
        if info is not None and info.consumers:
            return info.consumers[0]
        return None

    seen: set[str] = set()
    for inp in proto.graph.input:
        if inp.name in wanted and inp.name not in seen:
            consumer = next((n for n in proto.graph.node if inp.name in n.input), None)
            rows.append(TensorRow(inp.name, "activation", "input", node_id(consumer, inp.name)))
            seen.add(inp.name)
    initializers = view.initializers
    for node in proto.graph.node:
        op_type = node.op_type
        for name in node.input:
            if name in wanted and name not in seen and name in initializers:
                rows.append(TensorRow(name, view.kind_of(name), op_type, node_id(node, name)))
                seen.add(name)
        for name in node.output:
            if name in wanted and name not in seen:
                rows.append(TensorRow(name, "activation", op_type, node_id(node, name)))
                seen.add(name)
    for name in sorted(wanted - seen):  # imported names the model does not have
        enc = encoding_of(name) if encoding_of is not None else None
        rows.append(TensorRow(name, enc.kind if enc else "activation", "?", None))
    return rows
