"""Helpers shared by subcommands: shape fixes, JSON output, progress on stderr."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext


def add_command(
    subparsers: Any, name: str, summary: str, doc: str | None
) -> argparse.ArgumentParser:
    """The parser of one subcommand.

    ``summary`` is its line in ``npu-studio --help``; ``doc`` (the command module's docstring) is
    its ``npu-studio NAME --help`` text, printed as written so that the usage block keeps its layout.
    """
    return subparsers.add_parser(
        name,
        help=summary,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_job_args(
    parser: argparse.ArgumentParser, json_help: str = "print the result as JSON"
) -> None:
    """``--timeout`` and ``--json`` of the commands that run their work in a worker (:func:`run_job`)."""
    parser.add_argument("--timeout", type=float, default=None, help="give up after N seconds")
    parser.add_argument("--json", action="store_true", help=json_help)


def run_job(kind: str, request: dict[str, Any], args: argparse.Namespace) -> Any:
    """Run the core job ``kind`` in a worker process, progress on stderr (none with ``--json``).

    A native crash then fails the job with a clear error instead of killing the command.
    """
    from studio.core.jobs.client import run_in_worker

    return run_in_worker(kind, request, stderr_context(quiet=args.json), timeout_s=args.timeout)


def add_input_shape_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="fix a dynamic input shape, e.g. input=1,3,224,224 (repeatable)",
    )


def add_assumption_args(parser: argparse.ArgumentParser, assume_help: str) -> None:
    """``--assume KEY=VALUE`` (repeatable) and ``--assumptions FILE.json``: the assumed constants
    (``studio.core.assignment.assumptions``) of the commands that use them, read by
    :func:`assumptions_from_args`."""
    parser.add_argument(
        "--assume", action="append", default=[], metavar="KEY=VALUE", help=assume_help
    )
    parser.add_argument(
        "--assumptions", metavar="FILE.json", help="assumed constants as a JSON object KEY: VALUE"
    )


def assumptions_from_args(args: argparse.Namespace) -> dict[str, float]:
    """The ``--assumptions`` file's values, each ``--assume`` overriding them."""
    from studio.core.assignment.assumptions import load_assumptions_file, parse_assume_items

    return {
        **(load_assumptions_file(args.assumptions) if args.assumptions else {}),
        **parse_assume_items(args.assume),
    }


def parse_input_shapes(items: list[str]) -> dict[str, list[int]]:
    """Parse repeated ``NAME=1,3,224,224`` arguments into ``{name: [dims]}``."""
    from studio.core.model.prepare import parse_dims  # onnx only when shapes are given

    shapes: dict[str, list[int]] = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise BadInputError(f"--input-shape '{item}': expected NAME=D0,D1,...")
        shapes[name] = parse_dims(dims, f"--input-shape {name}")
    return shapes


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace NaN/Inf by None: strict JSON readers reject them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def print_json(data: Any) -> None:
    text = json.dumps(data, default=_json_default)
    print(json.dumps(_finite(json.loads(text)), indent=2))


def stderr_context(quiet: bool = False) -> JobContext:
    """A JobContext that prints progress and log lines on stderr (stdout stays for results)."""

    def on_progress(fraction: float, text: str) -> None:
        if not quiet:
            print(f"[{fraction * 100:5.1f}%] {text}", file=sys.stderr, flush=True)

    def on_log(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    return JobContext(on_progress=on_progress, on_log=on_log, min_interval_s=0.5)


@contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 to stderr while native code runs.

    The QNN HTP library prints a banner ("# LIBNATIVE: ...") on fd 1 the first time a session
    loads it, which would corrupt ``--json`` output on stdout. Wrap the work (not the final
    ``print_json``) in this.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
