"""Ensemble inference with ONNX Runtime: load a verified bundle, run its members, vote.

onnxruntime/numpy/pandas only (never TensorFlow, Ray or scikit-learn); onnxruntime is imported
only when a session opens, so importing this package is cheap.
"""

from voxpop.ensemble.ensemble import Ensemble, Prediction

__all__ = ["Ensemble", "Prediction"]
