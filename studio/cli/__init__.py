"""The `npu-studio` command line: every GUI action has a subcommand over the same core calls.

Subcommands live one per module in ``studio/cli/commands``; each module defines
``register(subparsers)`` that adds its parser and sets ``func=handler``. They are discovered
automatically, so adding a command never edits this file.

``npu-studio`` alone opens the studio; ``npu-studio PATH`` opens it on a model or project.
Exit codes: 0 ok, 2 bad input, 3 backend unavailable / job failed, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from studio import __version__
from studio.core.errors import StudioError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npu-studio",
        description="Take an ONNX model to a Qualcomm NPU and see why it is fast or slow, "
        "accurate or not. With no command, opens the studio (optionally on PATH).",
    )
    parser.add_argument("--version", action="version", version=f"npu-studio {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from studio.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


OPENABLE_SUFFIXES = (".onnx", ".npustudio", ".pt", ".pt2", ".tflite")


def _looks_like_a_file(word: str) -> bool:
    """A path the GUI can open (or report as missing): it exists, or it names a model/project."""
    from pathlib import Path

    return Path(word).exists() or word.lower().endswith(OPENABLE_SUFFIXES) or "/" in word


def _open_gui(paths: list[str]) -> int:
    try:
        from studio.app import run_app
    except ImportError as exc:
        print(f"npu-studio: the GUI cannot start: {exc}", file=sys.stderr)
        return 3
    return run_app(paths)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = set(parser._subparsers._group_actions[0].choices) if parser._subparsers else set()
    positional = [a for a in args_list if not a.startswith("-")]
    if not positional or positional[0] not in known:
        if any(a in ("-h", "--help", "--version") for a in args_list):
            parser.parse_args(args_list)
            return 0
        word = positional[0] if positional else None
        if word is not None and not _looks_like_a_file(word):
            # not a subcommand and not a file to open: an error, never a GUI that waits
            print(
                f"npu-studio: unknown subcommand or file '{word}' "
                f"(subcommands: {', '.join(sorted(known))}; `npu-studio --help`)",
                file=sys.stderr,
            )
            return 2
        return _open_gui([a for a in args_list if not a.startswith("-")])
    args = parser.parse_args(args_list)
    try:
        return int(args.func(args) or 0)
    except StudioError as exc:
        if args.debug:
            raise
        print(f"npu-studio {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"npu-studio {args.command}: interrupted", file=sys.stderr)
        return 130
