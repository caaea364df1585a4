"""The defaults and choices of running a bundle that the command line shows, importing nothing
heavy (no numpy or ONNX Runtime): `predict`, `evaluate`, `bench` and `info` read them at start-up,
and `Ensemble.load` takes its default from here."""

DEFAULT_DEVICE = "auto"  # CUDA where ONNX Runtime really runs on it, else the CPU
DEVICES = ("auto", "cpu", "cuda")  # the keys of sessions.DEVICE_PROVIDERS
VOTINGS = (
    "soft",
    "hard",
    "weighted",
    "stack",
)  # the keys of voting.VOTERS, in the order lists show them
