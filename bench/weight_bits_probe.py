"""Which weight widths QNN HTP runs, per op and activation width: the measurements behind
``HTP_WEIGHT_RULES`` in ``studio/core/quantize/editing.py``.

    python bench/weight_bits_probe.py [--arch 68 --arch 75] [--ops MatMul,Gemm] [--out FILE]

Each case is one weight-carrying op built by ``tests.builders.qdq_weight_case`` (opset 21 QDQ:
the activations asymmetric uint8/uint16, the weight at 4/8/16 bits, symmetric signed - what the
studio's build writes - and asymmetric unsigned), opened as a QNN HTP session with CPU fallback
disabled, once per catalogue architecture (one representative device each: its soc_model and
htp_arch). ``accepted``: the session opens and HTP's compiled graph runs the op on
fixed-point tensors; ``as_float``: it opens, but only because the EP split the QDQ unit and
HTP runs the op in float (see :func:`op_is_quantised`); ``refused``: QNN's reason.
Emulated: the QNN HTP backend of onnxruntime-qnn on x86-64, which compiles the graph with the
real QNN op validation for the named architecture. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure  # noqa: E402

# QNN_DATATYPE_SFIXED_POINT_* are 0x03xx, QNN_DATATYPE_UFIXED_POINT_* 0x04xx
# QNN_DATATYPE_FLOAT_* 0x02xx; integers (a Gather's indices) 0x00xx/0x01xx
_FIXED_POINT = (0x300, 0x400)
_FLOAT = 0x200


def op_is_quantised(dump: Path, op: str) -> bool:
    """Whether the QNN graph HTP compiled (``dump_json_qnn_graph``) runs the case's op on
    fixed-point tensors. A QDQ unit HTP cannot build as one quantised op may still open: the
    EP then gives HTP a Dequantize, the op in float and a Quantize (seen from HTP v69, which
    runs float ops in fp16), so the session offloads fully but the weight is not used at the
    width asked for. Such cases are reported as ``as_float``, not ``accepted``."""
    for file in dump.glob("*.json"):
        graph = json.loads(file.read_text()).get("graph")
        if not graph:
            continue
        tensors = graph["tensors"]
        for node in graph["nodes"].values():
            if node.get("type") in ("Quantize", "Dequantize", "Convert", "Cast"):
                continue
            names = [*node["input_names"], *node["output_names"]]
            kinds = {tensors[n]["data_type"] & 0xF00 for n in names if n in tensors}
            if kinds & set(_FIXED_POINT) and _FLOAT not in kinds:  # indices stay integers
                return True
    return False


def main() -> int:
    from importlib.metadata import version

    from studio.core.devices.catalogue import load_catalogue
    from studio.core.engine.sessions import make_session
    from tests.builders import WEIGHT_CASE_OPS, qdq_weight_case

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, action="append", help="default: every catalogue arch")
    parser.add_argument("--ops", default=",".join(WEIGHT_CASE_OPS))
    parser.add_argument("--out")
    args = parser.parse_args()
    devices = load_catalogue().devices
    archs = args.arch or sorted({d.htp_arch for d in devices})
    reps = {a: next(d for d in devices if d.htp_arch == a) for a in archs}
    rows = []
    with tempfile.TemporaryDirectory(prefix="wbits-probe-") as tmp:
        path = Path(tmp) / "m.onnx"
        for op in args.ops.split(","):
            for signed in (True, False):
                for w_bits in (4, 8, 16):
                    for a_bits in (8, 16):
                        onnx.save(qdq_weight_case(op, w_bits, a_bits, signed=signed), path)
                        row = {
                            "op": op,
                            "weights": f"{'int' if signed else 'uint'}{w_bits}",
                            "activations": a_bits,
                            "accepted": [],
                            "as_float": [],
                            "refused": {},
                        }
                        for arch in archs:
                            dump = Path(tmp) / f"json-{len(rows)}-{arch}"
                            dump.mkdir()
                            opts = reps[arch].provider_options()
                            opts.update(dump_json_qnn_graph="1", json_qnn_graph_dir=str(dump))
                            try:
                                make_session(
                                    path, "htp", disable_cpu_fallback=True, provider_options=opts
                                )
                            except Exception as exc:  # noqa: BLE001 - a probe records refusals
                                row["refused"][f"v{arch}"] = str(exc).split("failed: ")[-1][:160]
                                continue
                            if op_is_quantised(dump, op):
                                row["accepted"].append(arch)
                            else:
                                row["as_float"].append(arch)
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "bench": "weight_bits_probe",
        "what": "QNN HTP sessions (x86-64 emulator, CPU fallback disabled) per architecture",
        "onnxruntime_qnn": version("onnxruntime-qnn"),
        "onnxruntime": version("onnxruntime"),
        "architectures": archs,
        "devices": {f"v{a}": reps[a].label for a in archs},
        "rows": rows,
    }
    return _measure.emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
