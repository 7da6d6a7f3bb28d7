"""AIMET's post-training recipe on one model, for ``bench/quant_quality.py`` (run it with the
Python of a separate venv that has aimet-onnx; the studio never depends on aimet).

    python bench/aimet_ptq.py MODEL.onnx CALIB.npz EVAL.npz OUT.npz --method seqmse|adaround|plain

Recipe (aimet-onnx 2.42): cross-layer equalisation (with BatchNorm folding), QuantizationSimModel
W8A8 with the HTP v73 config (``--config``), then sequential MSE or AdaRound on the calibration samples, then compute_encodings; the
sim's outputs on the evaluation samples are written to OUT.npz (one array per output, samples
stacked), for the caller to score against the float model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx


def _samples(path: str) -> list[dict[str, np.ndarray]]:
    data = np.load(path)
    count = len(data[data.files[0]])
    return [{k: data[k][i] for k in data.files} for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("calib")
    parser.add_argument("eval")
    parser.add_argument("out")
    parser.add_argument("--method", default="seqmse", choices=("seqmse", "adaround", "plain"))
    parser.add_argument("--adaround-iterations", type=int, default=1000)
    parser.add_argument(
        "--config",
        default="htp_quantsim_config_v73.json",
        help="QuantSim config: a file, or a name in aimet_onnx's quantsim_config folder (default "
        "HTP v73: per-channel Conv/Gemm weights, as the studio's default; aimet's own default "
        "config is per-tensor, which would handicap AIMET)",
    )
    args = parser.parse_args()

    from aimet_onnx.cross_layer_equalization import equalize_model
    from aimet_onnx.quantsim import QuantizationSimModel

    start = time.perf_counter()
    model = onnx.load(args.model)
    calib = _samples(args.calib)
    evals = _samples(args.eval)
    equalize_model(model)
    config = Path(args.config)
    if not config.is_file():
        import aimet_onnx

        config = Path(aimet_onnx.__file__).parent / "common" / "quantsim_config" / args.config
    sim = QuantizationSimModel(
        model, param_type="int8", activation_type="int8", config_file=str(config)
    )
    if args.method == "seqmse":
        from aimet_onnx.sequential_mse.seq_mse import apply_seq_mse

        apply_seq_mse(sim, calib)
    elif args.method == "adaround":
        from aimet_onnx.adaround.adaround_weight import Adaround

        Adaround.apply_adaround(sim, calib, num_iterations=args.adaround_iterations)
    sim.compute_encodings(calib)
    names = [o.name for o in sim.session.get_outputs()]
    outs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in evals:
        for name, value in zip(names, sim.session.run(names, feed), strict=True):
            outs[name].append(np.asarray(value))
    np.savez(args.out, **{n: np.stack(v) for n, v in outs.items()})
    print(
        json.dumps(
            {"method": args.method, "config": config.name, "elapsed_s": time.perf_counter() - start}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
