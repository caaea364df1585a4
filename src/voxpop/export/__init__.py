"""export: member selection, Keras -> ONNX, parity and graph checks, fusing, quantizing, bundles."""

from voxpop.export.bundle import export_bundle

__all__ = ["export_bundle"]
