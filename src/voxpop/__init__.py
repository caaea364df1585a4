"""voxpop: tune many Keras text classifiers with Ray Tune, export the best to ONNX, and serve
soft/hard/weighted voting ensembles of them with ONNX Runtime."""

__version__ = "0.1.0"
