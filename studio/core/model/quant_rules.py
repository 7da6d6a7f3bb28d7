"""Which inputs of each op onnxruntime's QDQ quantiser quantises: one table for every caller.

The build (``quantize.scope``), the editor's tensor list and the encodings coverage report must
agree on what "quantisable" means, or an imported file is reported as missing encodings for a
Clip's min/max that no build would ever quantise. The table mirrors
``onnxruntime.quantization.registry.QDQRegistry`` (onnxruntime 1.2x-1.3x): an op not named here
goes through ``QDQOperatorBase``, which quantises all of its float inputs.
"""

from __future__ import annotations

_DATA_ONLY = (0,)
# op -> input slots the QDQ quantiser quantises (others are left float or derived)
QUANTISED_INPUTS: dict[str, tuple[int, ...]] = {
    "Clip": _DATA_ONLY,
    "Relu": _DATA_ONLY,
    "Reshape": _DATA_ONLY,
    "Transpose": _DATA_ONLY,
    "Squeeze": _DATA_ONLY,
    "Unsqueeze": _DATA_ONLY,
    "Flatten": _DATA_ONLY,
    "Resize": _DATA_ONLY,
    "MaxPool": _DATA_ONLY,
    "AveragePool": _DATA_ONLY,
    "Slice": _DATA_ONLY,
    "Pad": _DATA_ONLY,  # the pad constant is re-expressed on the input's grid
    "Split": _DATA_ONLY,
    "Gather": _DATA_ONLY,
    "GatherElements": _DATA_ONLY,
    "TopK": _DATA_ONLY,
    "Where": (1, 2),
    "Conv": (0, 1, 2),
    "ConvTranspose": (0, 1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "InstanceNormalization": (0, 1, 2),
    "LayerNormalization": (0, 1, 2),
    "BatchNormalization": (0, 1, 2),
}


def is_quantised_input(op_type: str, index: int) -> bool:
    """True when the QDQ quantiser puts a Q/DQ pair on input ``index`` of an ``op_type`` node."""
    slots = QUANTISED_INPUTS.get(op_type)
    return slots is None or index in slots
