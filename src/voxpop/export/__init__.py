"""export: member selection, Keras -> ONNX, parity and graph checks, fusing, quantizing, bundles.

`export_bundle` is imported at first use, so the light `options` (what the command line reads)
loads no ONNX or TensorFlow."""

from voxpop import lazy_exports

__getattr__ = lazy_exports(__name__, {"export_bundle": "voxpop.export.bundle"})
__all__ = ["export_bundle"]
