"""The backend plan: a backend per node with its visible score parts and reason, as JSON.

Written by :mod:`studio.core.assignment.scoring`, read by the CLI (``--plan``), the Backends workspace and
:mod:`studio.core.assignment.partitioned_run`. Saved with a ``schema_version``; reading one that names nodes
the model lacks is a ConfigError naming them, so a plan made for another model never runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.core import jsonread
from studio.core.errors import ConfigError
from studio.core.project import BACKENDS, Constraints

SCHEMA_VERSION = 1
PLAN_KIND = "npu-studio.backend-plan"
BACKEND_ORDER = BACKENDS  # the backends a node can be assigned to (a project's pins name them)


@dataclass
class NodeSupport:
    """One node on one backend: accepted or not, the backend's own reason, and size warnings."""

    supported: bool
    reason: str = ""
    source: str = "probe"  # "probe" | "model" | "backend" | "reference"
    warnings: list[str] = field(default_factory=list)

    def tooltip(self, backend: str) -> str:
        """The one-line text the graph and the table show for this node."""
        if self.source == "backend":  # the backend itself is missing, not this node
            reason = self.reason.removeprefix(f"{backend.upper()} unavailable: ")
            return f"{backend.upper()}: unavailable ({reason})"
        head = f"{backend.upper()}: " + ("supported" if self.supported else "rejected")
        text = f"{head} ({self.reason})" if self.reason else head
        if self.warnings:
            text += "; " + "; ".join(self.warnings)
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "supported": self.supported,
            "reason": self.reason,
            "source": self.source,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeSupport:
        return cls(
            supported=bool(data["supported"]),
            reason=str(data.get("reason", "")),
            source=str(data.get("source", "probe")),
            warnings=[str(w) for w in data.get("warnings", [])],
        )


@dataclass
class BackendScore:
    """One node on one backend: the parts of the score, each visible in the table."""

    backend: str
    supported: bool
    reason: str
    precision: str
    precision_fit: float
    size_fit: float
    power_efficiency: float
    cost_ms: float | None
    cost_source: str  # "measured" | "estimated" | ""
    score: float  # 0-100, higher is better; 0 when unsupported

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BackendScore:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    @classmethod
    def from_field(cls, item: jsonread.Field) -> BackendScore:
        """A score read from a plan file: a missing part is an error naming its field."""
        item.object()
        return cls(**{k: item.key(k).value for k in cls.__dataclass_fields__})


@dataclass
class NodeDecision:
    node_id: str
    op_type: str
    backend: str
    reason: str
    scores: dict[str, BackendScore]
    pinned: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "op_type": self.op_type,
            "backend": self.backend,
            "pinned": self.pinned,
            "reason": self.reason,
            "scores": {b: s.to_json() for b, s in self.scores.items()},
        }


@dataclass
class Plan:
    """The assignment: a backend per node, why, and the totals. Saved as versioned JSON."""

    model_sha256: str
    backends: list[str]
    constraints: Constraints
    decisions: list[NodeDecision]
    summary: dict[str, Any]
    input_shapes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def assignment(self) -> dict[str, str]:
        return {d.node_id: d.backend for d in self.decisions}

    def decision(self, node_id: str) -> NodeDecision | None:
        return next((d for d in self.decisions if d.node_id == node_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": PLAN_KIND,
            "model_sha256": self.model_sha256,
            "backends": list(self.backends),
            "constraints": self.constraints.to_json(),
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "nodes": [d.to_json() for d in self.decisions],
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>", graph: Any = None) -> Plan:
        """Read a plan; with ``graph``, nodes the model lacks are a ConfigError naming them."""
        if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
            raise ConfigError(
                "not a backend plan (missing kind npu-studio.backend-plan)", path=source
            )
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"backend plan schema_version {version!r} is not supported "
                f"(this version reads {SCHEMA_VERSION})",
                path=source,
            )
        doc = jsonread.wrap(data, source, ConfigError)
        decisions = []
        for item in doc.key("nodes").elements():
            node_id = item.key("node_id").string()
            backend = item.key("backend").string()
            if backend not in BACKEND_ORDER:
                raise item.key("backend").fail(f"node '{node_id}' has unknown backend '{backend}'")
            decisions.append(
                NodeDecision(
                    node_id=node_id,
                    op_type=item.key("op_type", "").string(),
                    backend=backend,
                    reason=item.key("reason", "").string(),
                    scores={
                        b: BackendScore.from_field(s) for b, s in item.key("scores", {}).items()
                    },
                    pinned=item.key("pinned", False).boolean(),
                )
            )
        plan = cls(
            model_sha256=doc.key("model_sha256", "").string(),
            backends=doc.key("backends").strings(),
            constraints=Constraints.from_json(data.get("constraints", {}), source),
            decisions=decisions,
            summary=dict(doc.key("summary", {}).object()),
            input_shapes={
                str(k): [d.integer() for d in v.elements()]
                for k, v in doc.key("input_shapes", {}).items()
            },
        )
        if graph is not None:
            plan.check_against(graph, source)
        return plan

    def check_against(self, graph: Any, source: str = "<memory>") -> None:
        """ConfigError naming the nodes this plan assigns that ``graph`` does not have."""
        missing = [d.node_id for d in self.decisions if d.node_id not in graph.node_by_id]
        if missing:
            shown = ", ".join(f"'{m}'" for m in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise ConfigError(
                f"the plan names {len(missing)} node(s) the model lacks: {shown}{more} "
                "(was it made for another model?)",
                path=source,
            )
