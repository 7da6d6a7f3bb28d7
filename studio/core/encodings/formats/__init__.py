"""Encodings file formats: one module per tool (QNN, AIMET, ONNX Runtime)."""
