"""Ensemble inference with ONNX Runtime: load a verified bundle, run its members, vote.

onnxruntime/numpy/pandas only (never TensorFlow, Ray or scikit-learn); onnxruntime is imported
only when a session opens, and the names below at first use, so importing this package (or its
light `options`, which the command line reads) is cheap.
"""

from voxpop import lazy_exports

_EXPORTS = {"Ensemble": "voxpop.ensemble.ensemble", "Prediction": "voxpop.ensemble.ensemble"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
