"""Engine jobs run in the worker process: the offload report (the backend probe job is
:func:`studio.core.engine.registry.probe_job`, beside the registry it reads).

Each is a plain ``@job`` function of a JSON request. They run native QNN code, so callers use
``run_in_worker(job_kind(fn), request)`` (the CLI and the GUI's JobManager do): a crash of the
backend fails the job, not the studio. Running and compiling a model or a bundle need the
toolchain (bundles, the SDK), one layer up: :mod:`studio.core.toolchain.jobs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext, job


@job
def offload(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Which nodes of ``request['model']`` go to the QNN backend, which stay on CPU, and why."""
    from studio.core.engine.config import is_quantized_model, load_backend_config
    from studio.core.engine.offload import offload_report

    model = existing_path(request.get("model"), "model")
    backend = str(request.get("backend") or "htp")
    args = load_backend_config(request.get("config")).session_args(
        backend, quantized=is_quantized_model(model)
    )
    report = offload_report(
        model,
        backend,
        provider_options=args.provider_options,
        session_config=args.session_config,
        reasons=bool(request.get("reasons", True)),
    )
    ctx.log(report.summary())
    return {"report": report.to_json(), "summary": report.summary(), "warnings": args.warnings}


def existing_path(value: Any, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise BadInputError(f"request has no '{what}' path")
    path = Path(value)
    if not path.exists():
        raise BadInputError(f"{what} not found", path=value)
    if what == "model" and path.is_file():
        from studio.core.model.graph import check_model_file

        check_model_file(path)  # name a broken file before ORT/QNN fail on it obscurely
    return path
