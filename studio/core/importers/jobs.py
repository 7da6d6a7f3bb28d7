"""Import jobs for the worker process: conversion runs exporters and native interpreters.

Request::

    {"source": "m.pt2", "output": "m.onnx", "python": null | "/path/to/python",
     "input_shapes": {"x": [1, 3, 224, 224]}, "seed": 0}
"""

from __future__ import annotations

from typing import Any

from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext, job


def _shapes(request: dict[str, Any]) -> dict[str, list[int]] | None:
    shapes = request.get("input_shapes") or None
    if shapes is not None and not isinstance(shapes, dict):
        raise BadInputError("input_shapes must map input names to dims")
    return shapes


@job
def convert(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Convert ``request['source']`` to ONNX at ``request['output']`` and check it."""
    from studio.core.importers.convert import import_model

    if not request.get("source") or not request.get("output"):
        raise BadInputError("an import request needs 'source' and 'output'")
    return import_model(
        request["source"],
        request["output"],
        python=request.get("python") or None,
        input_shapes=_shapes(request),
        seed=int(request.get("seed", 0)),
        ctx=ctx,
    )


@job
def inspect(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The source's inputs, with example shapes, to prefill the input-shape dialog."""
    from studio.core.importers.convert import inspect_source

    if not request.get("source"):
        raise BadInputError("an inspect request needs 'source'")
    return inspect_source(request["source"], request.get("python") or None, ctx)
