"""The `voxpop` command line (Typer). Each sub-command lives in its own module and imports its heavy
dependencies (TensorFlow, Ray, ONNX Runtime) inside the function, so `voxpop --help` starts fast and
`voxpop predict` / `voxpop evaluate` never import TensorFlow or Ray."""

from voxpop.serving_cli.app import app, main

__all__ = ["app", "main"]
