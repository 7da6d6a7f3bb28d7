"""Heterogeneous bundles: a backend plan compiled into a chain that ships, and run as planned.

``compile_plan_bundle`` splits the model along the plan (:mod:`studio.core.assignment.partition`)
and writes, per segment in order, a QNN context binary for an HTP segment (EPContext, verified like
a plain compile) or the plain ONNX sub-model for a CPU segment::

    BUNDLE/
      manifest.json            ``segments: [...]`` in order: backend, file, inputs, outputs, sha256
      plan.json                the plan the chain came from
      context_binaries/segment0_htp.bin   segment0_htp.onnx (the EPContext wrapper of the .bin)
      segments/segment1_cpu.onnx
      quantization_config.json input_specs.json   as in a plain bundle

``run_bundle_chain`` executes that chain in the worker with the same job as ``run --plan``
(:func:`studio.core.assignment.partitioned_run.run_segments_job`), so the outputs are those of the
planned run on the same inputs. Loading verifies every checksum (the plain bundle rules), then
that the segments are still the plan's and the plan still fits the model it was compiled from: a
bundle that fails is refused with the file named, never run half-right.

It lives in ``workflows`` because it needs both the assignment (split, chain runner) and the
toolchain (embedded compile, bundle files), which sit side by side one layer down.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from studio.core.assignment.partitioned_run import chain_profile_json
from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import BackendUnavailableError, BadInputError
from studio.core.hashing import file_sha256
from studio.core.jobs.protocol import JobContext, job
from studio.core.toolchain.bundle import (
    CONTEXT_DIR,
    INPUT_SPECS,
    QUANT_CONFIG,
    Bundle,
    input_specs,
    load_bundle,
    qdq_encodings,
    write_manifest,
)

PLAN_FILE = "plan.json"
SEGMENTS_DIR = "segments"
CHAIN_KIND = "plan"  # manifest "backend" of a heterogeneous bundle
COMPILABLE = ("htp", "cpu")


def is_chain(bundle: Bundle) -> bool:
    """True for a bundle compiled from a plan (its manifest lists segments)."""
    return isinstance(bundle.manifest.get("segments"), list)


# ----- compile ----------------------------------------------------------------------------------
def compile_plan_bundle(
    model_path: str | Path,
    plan_data: Any,
    out_dir: str | Path,
    *,
    plan_source: str = "plan.json",
    provider_options: dict[str, dict[str, str]] | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    ctx: JobContext | None = None,
) -> dict[str, Any]:
    """Compile ``model_path`` along ``plan_data`` (a Plan or its JSON) into the bundle ``out_dir``.

    ``provider_options`` maps a backend to its QNN EP options (default none, as ``run --plan``
    uses, so that the bundle computes exactly what the planned run computes).
    """
    from studio.core.assignment.scoring import Plan
    from studio.core.model.graph import ModelGraph
    from studio.core.toolchain.compile import build_staged

    ctx = ctx or JobContext()
    src = Path(model_path)
    if not src.is_file():
        raise BadInputError("model file not found", path=str(src))
    plan = plan_data if isinstance(plan_data, Plan) else Plan.from_json(plan_data, plan_source)
    graph = ModelGraph.load(src, input_shapes=input_shapes or plan.input_shapes or None)
    plan.check_against(graph, plan_source)
    unknown = sorted({d.backend for d in plan.decisions} - set(COMPILABLE))
    if unknown:
        raise BackendUnavailableError(
            f"{plan_source}: the plan puts nodes on {', '.join(unknown)}; a bundle can hold HTP "
            "context binaries and CPU segments only (QNN GPU needs an Adreno device)"
        )
    options = {k: dict(v) for k, v in (provider_options or {}).items()}

    def build(out: Path) -> dict[str, Any]:
        return _build_chain(src, graph, plan, out, options, ctx, plan_source)

    return build_staged(Path(out_dir), build)


def _build_chain(
    src: Path,
    graph: Any,
    plan: Any,
    out: Path,
    options: dict[str, dict[str, str]],
    ctx: JobContext,
    plan_source: str,
) -> dict[str, Any]:
    from studio.core.assignment.partition import split_segments, write_segment_models
    from studio.core.engine.registry import versions
    from studio.core.toolchain.embedded import compile_embedded, context_nodes, rewrite_context_refs

    segments = split_segments(graph, plan.assignment)
    ctx.log(
        f"{len(segments)} segment(s): "
        + ", ".join(f"{s.index} {s.backend.upper()} ({len(s.node_ids)} nodes)" for s in segments)
    )
    warnings: list[str] = []
    if plan.model_sha256 and plan.model_sha256 != graph.sha256():
        warnings.append(f"{plan_source} was made for a different file with the same node ids")
    described: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="studio-chain-") as tmp:
        scratch = Path(tmp)
        write_segment_models(graph, segments, scratch / "models")
        (out / CONTEXT_DIR).mkdir(parents=True, exist_ok=True)
        (out / SEGMENTS_DIR).mkdir(parents=True, exist_ok=True)
        for seg in segments:
            ctx.check_cancelled()
            ctx.stage = f"segment {seg.index}"
            ctx.progress(
                0.05 + 0.85 * seg.index / len(segments), f"segment {seg.index} {seg.backend}"
            )
            stem = f"segment{seg.index}_{seg.backend}"
            entry: dict[str, Any] = {
                "index": seg.index,
                "backend": seg.backend,
                "nodes": len(seg.node_ids),
                "node_ids": list(seg.node_ids),
                "inputs": [_tensor(graph, t) for t in seg.inputs],
                "outputs": [_tensor(graph, t) for t in seg.outputs],
                "provider_options": options.get(seg.backend, {}),
            }
            if seg.backend == "htp":
                work = scratch / stem
                result = compile_embedded(
                    seg.model_path,
                    work,
                    backend="htp",
                    provider_options=options.get("htp"),
                    ctx=ctx,
                )
                bins = [Path(p) for p in result["context_binaries"]]
                if len(bins) != 1:
                    raise BackendUnavailableError(
                        f"segment {seg.index} compiled into {len(bins)} context binaries; a chain "
                        "segment must be one (split the plan further)"
                    )
                shutil.move(str(bins[0]), out / CONTEXT_DIR / f"{stem}.bin")
                wrapper = out / CONTEXT_DIR / f"{stem}.onnx"
                shutil.move(result["context_model"], wrapper)
                rewrite_context_refs(wrapper, {bins[0].name: f"{stem}.bin"})
                entry["file"] = f"{CONTEXT_DIR}/{stem}.bin"
                entry["context_model"] = f"{CONTEXT_DIR}/{stem}.onnx"
                entry["context_nodes"] = context_nodes(wrapper)
                entry["verify"] = result.get("verify")
                entry["full_offload"] = result["offload"]["full_offload"]
            else:
                shutil.copy2(seg.model_path, out / SEGMENTS_DIR / f"{stem}.onnx")
                entry["file"] = f"{SEGMENTS_DIR}/{stem}.onnx"
            entry["sha256"] = file_sha256(out / entry["file"])
            described.append(entry)
    atomic_write_json(out / PLAN_FILE, plan.to_json())
    enc = qdq_encodings(src)
    if enc is not None:
        atomic_write_json(out / QUANT_CONFIG, enc)
    atomic_write_json(out / INPUT_SPECS, input_specs(src))
    info = {
        "backend": CHAIN_KIND,
        "path": "embedded",
        "source_model": {"path": str(src.resolve()), "sha256": graph.sha256()},
        "input_shapes": plan.input_shapes or None,
        "tools": versions(),
        "plan": {
            "file": PLAN_FILE,
            "sha256": file_sha256(out / PLAN_FILE),
            "model_sha256": plan.model_sha256,
            "source": str(plan_source),
        },
        "segments": described,
        "output_names": [t.name for t in graph.outputs],
        "warnings": warnings,
    }
    manifest = write_manifest(out, info)
    ctx.progress(1.0, f"compiled {len(described)} segment(s)")
    return {
        "bundle": str(out),
        "segments": [
            {k: e[k] for k in ("index", "backend", "file", "sha256", "nodes")} for e in described
        ],
        "warnings": manifest["warnings"],
    }


def _tensor(graph: Any, name: str) -> dict[str, Any]:
    info = graph.tensors.get(name)
    return {
        "name": name,
        "shape": list(info.shape) if info is not None and info.shape is not None else None,
        "dtype": getattr(info, "dtype", None),
    }


# ----- load and verify --------------------------------------------------------------------------
def load_chain(path: str | Path) -> Bundle:
    """A verified heterogeneous bundle: checksums, segments against the plan, plan against model."""
    from studio.core.assignment.scoring import Plan

    bundle = load_bundle(path)  # every file's checksum, or a BadInputError naming it
    if not is_chain(bundle):
        raise BadInputError(
            "this bundle was not compiled from a plan (no segments)", path=str(path)
        )
    root = bundle.root
    plan_path = root / PLAN_FILE
    if PLAN_FILE not in bundle.manifest["files"]:
        raise BadInputError(f"bundle has no {PLAN_FILE}: recompile it with --plan", path=str(root))
    plan = Plan.from_json(
        read_json_strict(plan_path, error_type=BadInputError), source=str(plan_path)
    )
    assignment = plan.assignment
    seen: set[str] = set()
    for seg in bundle.manifest["segments"]:
        rel = seg.get("file")
        if rel not in bundle.manifest["files"]:
            raise BadInputError(
                f"segment {seg.get('index')} names '{rel}', not in the bundle", path=str(root)
            )
        if file_sha256(root / rel) != seg.get("sha256"):
            raise BadInputError(
                f"bundle file '{rel}' does not match segment {seg['index']}'s checksum; recompile",
                path=str(root),
            )
        for node in seg.get("node_ids", []):
            seen.add(node)
            if assignment.get(node) != seg["backend"]:
                raise BadInputError(
                    f"the plan no longer matches the bundle: node '{node}' is on "
                    f"{assignment.get(node) or 'no backend'} in the plan but segment {seg['index']} "
                    f"runs it on {seg['backend']}; recompile the bundle from this plan",
                    path=str(plan_path),
                )
    extra = sorted(set(assignment) - seen)
    if extra:
        raise BadInputError(
            f"the plan assigns {len(extra)} node(s) no segment runs ('{extra[0]}'...); recompile",
            path=str(plan_path),
        )
    _check_source_model(bundle, plan)
    return bundle


def _check_source_model(bundle: Bundle, plan: Any) -> None:
    """Refuse when the model the bundle came from changed so that the plan no longer fits it."""
    from studio.core.model.graph import ModelGraph

    source = bundle.manifest.get("source_model") or {}
    path = Path(str(source.get("path", "")))
    if not source.get("path") or not path.is_file() or file_sha256(path) == source.get("sha256"):
        return  # unchanged, or not on this machine (a copied bundle runs on its own files)
    graph = ModelGraph.load(path, input_shapes=plan.input_shapes or None)
    missing = [d.node_id for d in plan.decisions if d.node_id not in graph.node_by_id]
    if missing:
        raise BadInputError(
            f"the model changed since this bundle was compiled and its plan no longer matches it "
            f"({len(missing)} planned node(s) are gone, e.g. '{missing[0]}'); re-plan and recompile",
            path=str(path),
        )


# ----- run --------------------------------------------------------------------------------------
def chain_feeds(bundle: Bundle, seed: int = 0) -> dict[str, np.ndarray]:
    """The same seeded random inputs ``run --plan`` makes for the source model."""
    from studio.core.assignment.partitioned_run import random_feeds

    specs = bundle.specs.get("inputs", [])
    shapes = bundle.manifest.get("input_shapes") or {}
    inputs = [
        SimpleNamespace(
            name=s["name"], shape=shapes.get(s["name"]) or s.get("shape"), dtype=s.get("dtype")
        )
        for s in specs
    ]
    return random_feeds(SimpleNamespace(inputs=inputs), seed=seed)


def _worker_segments(bundle: Bundle) -> list[dict[str, Any]]:
    out = []
    for seg in bundle.manifest["segments"]:
        model = seg.get("context_model") or seg["file"]
        out.append(
            {
                "index": seg["index"],
                "backend": seg["backend"],
                "node_ids": seg["node_ids"],
                "inputs": [t["name"] for t in seg["inputs"]],
                "outputs": [t["name"] for t in seg["outputs"]],
                "model_path": str(bundle.root / model),
                # The EPContext wrapper keeps graph-I/O (de)quantize nodes outside the binary, so
                # ORT places those on the CPU EP; "every node on HTP" was checked at compile time.
                "disable_cpu_fallback": False,
            }
        )
    return out


def run_bundle_chain(
    path: str | Path,
    feeds: dict[str, np.ndarray] | None = None,
    ctx: JobContext | None = None,
    *,
    runs: int = 1,
    warmup: int = 0,
    seed: int = 0,
    timeout_s: float = 600,
) -> Any:
    """Run a heterogeneous bundle's chain in the worker; a ``PartitionedResult``."""
    from studio.core.assignment.partitioned_run import PartitionedResult, run_chain_in_worker

    ctx = ctx or JobContext()
    bundle = load_chain(path)
    feeds = dict(feeds) if feeds is not None else chain_feeds(bundle, seed)
    segments = _worker_segments(bundle)
    options = {s["backend"]: s.get("provider_options") or {} for s in bundle.manifest["segments"]}
    with tempfile.TemporaryDirectory(prefix="studio-chain-run-") as tmp:
        outputs, timings = run_chain_in_worker(
            segments,
            feeds,
            Path(tmp),
            list(bundle.manifest.get("output_names") or []),
            options,
            ctx,
            runs=runs,
            warmup=warmup,
            timeout_s=timeout_s,
            what=f" of {bundle.root.name}",
        )
    layout = [
        {k: s[k] for k in ("index", "backend", "file", "nodes")}
        for s in bundle.manifest["segments"]
    ]
    notes = [f"bundle {bundle.root}: every file verified against its manifest checksum"]
    return PartitionedResult(outputs, timings, layout, runs=int(runs), notes=notes)


def profile_bundle_chain(path: str | Path, ctx: JobContext | None = None, **kwargs: Any) -> dict:
    """Timed runs of the chain: per-segment and boundary medians, like ``profile --plan``."""
    kwargs.setdefault("runs", 10)
    kwargs.setdefault("warmup", 2)
    result = run_bundle_chain(path, ctx=ctx, **kwargs)
    data = chain_profile_json(result)
    data["bundle"] = str(path)
    return data


# ----- jobs (the GUI runs these through the JobManager; the CLI calls the functions) ---------
@job
def compile_plan_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"model", "plan" (path or JSON), "output", "provider_options"?}`` -> compile summary."""
    plan = request.get("plan")
    source = "plan"
    if isinstance(plan, str):
        source = plan
        plan = read_json_strict(plan, error_type=BadInputError)
    return compile_plan_bundle(
        request["model"],
        plan,
        request["output"],
        plan_source=source,
        provider_options=request.get("provider_options"),
        input_shapes=request.get("input_shapes"),
        ctx=ctx,
    )


@job
def run_chain_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"bundle", "runs"?, "warmup"?, "seed"?, "output"?}``: run or profile the chain."""
    runs = int(request.get("runs", 1))
    if runs > 1:
        data = profile_bundle_chain(
            request["bundle"],
            ctx,
            runs=runs,
            warmup=int(request.get("warmup", 2)),
            seed=int(request.get("seed", 0)),
        )
        if request.get("as_profile_run"):  # for the Profiling workspace's history
            return chain_profile_run(data, request["bundle"])
        return data
    result = run_bundle_chain(request["bundle"], ctx=ctx, seed=int(request.get("seed", 0)))
    if request.get("output"):
        from studio.core.engine.feeds import save_outputs

        names = list(result.outputs)
        save_outputs(request["output"], names, [result.outputs[n] for n in names])
    return result.to_json()


def chain_profile_run(data: dict[str, Any], bundle: str | Path) -> dict[str, Any]:
    """A timed chain as a ``ProfileRun`` record, so the Profiling workspace shows and keeps it.

    Each timed run's latency is the sum of its segments' ``session.run`` times plus the medians
    of the boundary hand-overs; the per-segment medians stay in the notes and ``backend_stats``.
    """
    from studio.core.profiling.records import ProfileRun
    from studio.core.profiling.stats import latency_stats

    manifest = load_bundle(bundle).manifest
    timings = data["timings"]
    runs = len(timings[0]["run_ms_all"]) if timings else 0
    boundary = sum(t["boundary_ms"] for t in timings)
    latencies = [sum(t["run_ms_all"][i] for t in timings) + boundary for i in range(runs)]
    source = manifest.get("source_model") or {}
    backends = "+".join(dict.fromkeys(t["backend"].upper() for t in timings))
    notes = [
        f"segment {t['index']} {t['backend'].upper()} ({t['nodes']} nodes): {t['run_ms']:.3f} ms "
        f"median on {', '.join(t['providers'])}"
        for t in timings
    ]
    notes.append(data.get("note", ""))
    run = ProfileRun(
        model_path=str(source.get("path", bundle)),
        model_sha256=str(source.get("sha256", "")),
        backend=backends.lower(),
        stats=latency_stats(latencies),
        latencies_ms=latencies,
        label=f"{Path(bundle).name} · {backends} chain · {runs} runs",
        providers=sorted({p for t in timings for p in t["providers"]}),
        options={"bundle": str(bundle), "kind": "heterogeneous bundle"},
        backend_stats={"segments": timings},
        notes=[n for n in notes if n],
    )
    return run.to_json()


@job
def describe_bundle_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Open a bundle for the browser: verify every checksum (and the plan), then describe it."""
    from studio.core.toolchain.bundle import MANIFEST

    root = Path(request["bundle"])
    ctx.progress(0.1, f"verifying {root.name}")
    bundle = load_bundle(root)
    chain = is_chain(bundle)
    if chain:
        load_chain(root)
    manifest = bundle.manifest
    enc_path = root / QUANT_CONFIG
    encodings: dict[str, Any] = {"present": enc_path.is_file()}
    if enc_path.is_file():
        enc = read_json_strict(enc_path, error_type=BadInputError)
        acts, params = enc.get("activation_encodings", {}), enc.get("param_encodings", {})
        encodings.update(
            {
                "activations": len(acts),
                "params": len(params),
                "bitwidths": sorted(
                    {int(e[0].get("bitwidth", 0)) for e in [*acts.values(), *params.values()] if e}
                ),
            }
        )
    plan = None
    if (root / PLAN_FILE).is_file():
        data = read_json_strict(root / PLAN_FILE, error_type=BadInputError)
        plan = {"summary": data.get("summary", {}), "nodes": len(data.get("nodes", []))}
    ctx.progress(1.0, "verified")
    return {
        "bundle": str(root),
        "verified": True,
        "kind": "heterogeneous" if chain else "single",
        "backend": bundle.backend,
        "files": manifest["files"],
        "segments": manifest.get("segments", []),
        "specs": bundle.specs,
        "encodings": encodings,
        "plan": plan,
        "manifest_file": str(root / MANIFEST),
        "created": manifest.get("created"),
        "source_model": manifest.get("source_model"),
        "session": manifest.get("session"),
        "warnings": manifest.get("warnings", []),
    }
