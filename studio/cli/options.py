"""Shared CLI arguments whose choices come from the core's registries, never from a typed list.

Why: ``quantize --format`` once listed the encodings formats by hand, so a new format was
silently refused there until someone edited it. Each helper reads the one registry (encodings
formats, calibration methods, backends), so the parser offers whatever the core knows.
"""

from __future__ import annotations

import argparse

from studio.core.calibration.methods import METHODS
from studio.core.calibration.methods import REGISTRY as METHOD_REGISTRY
from studio.core.encodings.formats import FORMATS
from studio.core.encodings.formats import REGISTRY as FORMAT_REGISTRY
from studio.core.engine.registry import REGISTRY as BACKEND_REGISTRY

__all__ = [
    "BACKENDS",
    "FORMATS",
    "METHODS",
    "add_cpu_fallback_arg",
    "add_format_arg",
    "add_method_arg",
    "backend_help",
]

BACKENDS: tuple[str, ...] = tuple(BACKEND_REGISTRY)


def add_method_arg(parser: argparse.ArgumentParser, default: str = "minmax") -> None:
    """``--method``: how a calibrated range is picked (every registered method)."""
    parser.add_argument(
        "--method",
        default=default,
        choices=METHODS,
        help="range-setting method: "
        + "; ".join(f"{m.name}: {m.label}" for m in METHOD_REGISTRY.values()),
    )


def add_format_arg(
    parser: argparse.ArgumentParser,
    flag: str = "--format",
    *,
    default: str | None = None,
    required: bool = False,
    help: str = "encodings format",
) -> None:
    """An encodings-format option offering every registered format."""
    names = ", ".join(f"{f.name} ({f.label})" for f in FORMAT_REGISTRY.values())
    parser.add_argument(
        flag, default=default, required=required, choices=FORMATS, help=f"{help}: {names}"
    )


def backend_help(text: str) -> str:
    """``text`` followed by the registered backends, for a ``--backend`` help line."""
    return f"{text} (one of {', '.join(BACKENDS)})"


CPU_FALLBACK = ("allow", "forbid")


def add_cpu_fallback_arg(parser: argparse.ArgumentParser, *, default: str) -> None:
    """``--cpu-fallback allow|forbid``: may nodes the QNN backend refuses run on ORT's CPU EP?

    One spelling on every command; each command keeps its own default (``run`` forbids, so a
    partial offload is an error naming the nodes; ``profile`` allows, so the CPU-placed rows are
    measured and shown). ``--allow-cpu-fallback`` and ``--disable-cpu-fallback``, the old
    spellings, still work on every command and are hidden from the help.
    """
    parser.add_argument(
        "--cpu-fallback",
        choices=CPU_FALLBACK,
        default=default,
        help=f"may nodes the QNN backend refuses run on ORT's CPU EP (default {default})",
    )
    for flag, value in (("--allow-cpu-fallback", "allow"), ("--disable-cpu-fallback", "forbid")):
        parser.add_argument(
            flag, dest="cpu_fallback", action="store_const", const=value, help=argparse.SUPPRESS
        )
