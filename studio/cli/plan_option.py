"""``--plan PLAN.json`` for ``npu-studio run`` and ``npu-studio profile``: execute a backend plan.

The run and profile commands belong to their own modules; they call :func:`add_plan_arg` in
``register`` and hand over to :func:`run_with_plan` when ``--plan`` is given. The plan (from
``npu-studio assign``) splits the model into per-backend segments that run chained in the worker
process (:mod:`studio.core.assignment.partitioned_run`); a backend that refuses or fails its segment is exit 3.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli.common import parse_input_shapes, print_json, stderr_context
from studio.core.errors import BadInputError, ConfigError


def add_plan_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan",
        metavar="PLAN.json",
        help="execute a backend plan from `npu-studio assign` (per-backend segments, chained)",
    )


def _load_plan(path: str) -> Any:
    from studio.core.assignment.scoring import Plan
    from studio.core.atomic import read_json_strict

    return Plan.from_json(read_json_strict(path, error_type=ConfigError), source=path)


def run_with_plan(args: argparse.Namespace, mode: str) -> int:
    """``mode`` 'run': one partitioned inference; 'profile': timed runs per segment/boundary."""
    from studio.core.assignment.partitioned_run import profile_plan, run_plan

    if getattr(args, "config", None):
        raise BadInputError("--config cannot be combined with --plan (the plan fixes backends)")
    if getattr(args, "backend", None):
        raise BadInputError("--backend cannot be combined with --plan (the plan fixes backends)")
    plan = _load_plan(args.plan)
    shapes = parse_input_shapes(getattr(args, "input_shape", []) or []) or None
    feeds = None
    if getattr(args, "inputs", None):
        from studio.core.engine.feeds import load_arrays

        feeds = load_arrays(args.inputs)
    ctx = stderr_context(quiet=getattr(args, "json", False))
    timeout = getattr(args, "timeout", None) or 600
    if mode == "profile":
        data = profile_plan(
            args.model,
            plan,
            feeds,
            ctx,
            runs=max(1, int(getattr(args, "runs", 10) or 10)),
            warmup=int(getattr(args, "warmup", 2) or 0),
            input_shapes=shapes,
            timeout_s=timeout,
        )
        return _report_chain_profile(args, data)
    result = run_plan(args.model, plan, feeds, ctx, input_shapes=shapes, timeout_s=timeout)
    return _report_chain_run(args, result)


def _print_timings(data: dict[str, Any]) -> None:
    runs = data.get("runs", 1)
    print(f"{len(data['timings'])} segment(s), median of {runs} run(s), {data['total_ms']:.3f} ms")
    for t in data["timings"]:
        hand = (
            f"; boundary in {t['boundary_in_bytes']:,} B {t['boundary_ms']:.3f} ms"
            if t["index"]
            else ""
        )
        where = ", ".join(t["providers"])
        if t.get("cpu_fallback_disabled"):
            where = f"{t['providers'][0]} (CPU fallback disabled: every node on it)"
        print(
            f"  segment {t['index']} {t['backend'].upper():4s} {t['nodes']:4d} nodes  "
            f"{t['run_ms']:.3f} ms on {where}{hand}"
        )
    if data.get("note"):
        print(f"  note: {data['note']}")


def is_chain_bundle(path: str) -> bool:
    """True for a bundle compiled with ``compile --plan`` (its manifest lists segments)."""
    import json
    from pathlib import Path

    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return isinstance(json.loads(manifest.read_text()).get("segments"), list)
    except (OSError, ValueError):
        return False  # load_bundle names the broken manifest when the command reads it


def run_chain_bundle(args: argparse.Namespace, mode: str) -> int:
    """``run BUNDLE`` / ``profile BUNDLE`` for a heterogeneous bundle: its chain, timed per segment."""
    from studio.core.workflows.plan_bundle import profile_bundle_chain, run_bundle_chain

    for flag in ("config", "backend", "plan"):
        if getattr(args, flag, None):
            raise BadInputError(
                f"--{flag} cannot be used with a bundle compiled from a plan (it fixes backends)"
            )
    feeds = None
    if getattr(args, "inputs", None):
        from studio.core.engine.feeds import load_arrays

        feeds = load_arrays(args.inputs)
    ctx = stderr_context(quiet=getattr(args, "json", False))
    timeout = getattr(args, "timeout", None) or 600
    seed = int(getattr(args, "seed", 0) or 0)
    if mode == "profile":
        data = profile_bundle_chain(
            args.model,
            ctx,
            runs=max(1, int(getattr(args, "runs", 10) or 10)),
            warmup=int(getattr(args, "warmup", 2) or 0),
            seed=seed,
            timeout_s=timeout,
        )
        return _report_chain_profile(args, data)
    result = run_bundle_chain(args.model, feeds, ctx, seed=seed, timeout_s=timeout)
    return _report_chain_run(args, result)


def _report_chain_profile(args: argparse.Namespace, data: dict[str, Any]) -> int:
    """Save (``--save``) and print a chained profile: the same for a plan and a bundle."""
    if getattr(args, "save", None):
        from studio.core.atomic import atomic_write_json

        atomic_write_json(args.save, data)
    if args.json:
        print_json(data)
    else:
        _print_timings(data)
    return 0


def _report_chain_run(args: argparse.Namespace, result: Any) -> int:
    """Save (``-o``) and print a chained run's outputs: the same for a plan and a bundle."""
    if getattr(args, "output", None):
        from studio.core.engine.feeds import save_outputs

        names = list(result.outputs)
        save_outputs(args.output, names, [result.outputs[n] for n in names])
    data = result.to_json()
    if args.json:
        print_json(data)
        return 0
    _print_timings(data)
    for name, info in data["outputs"].items():
        print(f"  output {name}: {info['dtype']} {info['shape']}")
    if getattr(args, "output", None):
        print(f"  wrote {args.output}")
    return 0
