"""What the QNN EP really builds from a model: op types of its QNN graph(s) and the partitions.

The device estimate's features mirror the graph the QNN EP hands the HTP (features.py): erf-GELU
as one Gelu, NCHW<->NHWC Transposes cancelled, ... This prints that graph for a model, from the
EP's own JSON dump (provider option ``dump_json_qnn_graph``) of an HTP session created on this
host (the emulator compiles; nothing runs), so each mirrored fusion can be checked::

    python bench/qnn_graph_ops.py MODEL.onnx [--device NAME] [--json]

One QNN graph per HTP partition: more than one means ORT left nodes between them on its CPU EP
(on a phone: CPU work plus a hand-over at each boundary).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core.devices.catalogue import resolve_device  # noqa: E402
from studio.core.engine.sessions import make_session, set_htp_target  # noqa: E402


def qnn_graph_ops(model: Path, device: str | None = None) -> dict:
    """Op-type counts per QNN graph the EP built for ``model`` (fp16 for a float model)."""
    dev = resolve_device(device)
    set_htp_target(dev.name, dev.soc_model, dev.htp_arch)
    with tempfile.TemporaryDirectory() as out:
        t = time.time()
        _, info = make_session(
            model,
            "htp",
            provider_options={
                "dump_json_qnn_graph": "1",
                "json_qnn_graph_dir": out,
                "enable_htp_fp16_precision": "1",
            },
        )
        seconds = time.time() - t
        graphs = []
        for f in sorted(Path(out).glob("*.json")):
            if f.name.endswith("_tensor_log.json"):
                continue
            nodes = json.loads(f.read_text()).get("graph", {}).get("nodes", {})
            graphs.append(dict(collections.Counter(v.get("type") for v in nodes.values())))
    total: collections.Counter = collections.Counter()
    for g in graphs:
        total.update(g)
    return {
        "model": str(model),
        "onnx_nodes_on_qnn": info.qnn_nodes,
        "partitions": len(graphs),
        "qnn_ops": sum(total.values()),
        "op_types": dict(total.most_common()),
        "create_s": round(seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--device", default=None, help="target device (default: the default target)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = qnn_graph_ops(args.model, args.device)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(
        f"{res['model']}: {res['qnn_ops']} QNN ops in {res['partitions']} HTP partition(s) "
        f"({res['onnx_nodes_on_qnn']} ONNX nodes taken; session created in {res['create_s']} s)"
    )
    for op, n in res["op_types"].items():
        print(f"  {op:<24} {n}")


if __name__ == "__main__":
    main()
