"""Time op-support probing on the demo CNN: every node compiled alone vs whole-model-first.

Prints JSON: wall seconds of each strategy (cache off, same machine, same run), the number of
compiles each needed, and the ratio. Usage: ``.venv/bin/python bench/opsupport_probe.py [MODEL]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import os

    from studio.core.assignment.support import backend_availability, probe_op_support
    from studio.core.model.graph import ModelGraph

    model = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "resources/models/demo_cnn.onnx"
    graph = ModelGraph.load(model)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NPU_STUDIO_CACHE_DIR"] = tmp
        availability = backend_availability(["htp", "cpu"])
        figures = {}
        for isolate in ("all", "unconfirmed"):
            start = time.perf_counter()
            report = probe_op_support(
                graph, ("htp",), use_cache=False, availability=availability, isolate=isolate
            )
            figures[isolate] = {
                "seconds": round(time.perf_counter() - start, 3),
                "compiles": report.probes,
                "signatures": report.signatures,
                "rejected": len(report.rejected("htp")),
            }
    print(
        json.dumps(
            {
                "model": str(model),
                "nodes": len(graph.nodes),
                "isolate_all": figures["all"],
                "whole_model_first": figures["unconfirmed"],
                "speedup": round(figures["all"]["seconds"] / figures["unconfirmed"]["seconds"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
