"""What `voxpop export` accepts (`ExportOptions`, with its defaults) and the limits it checks,
importing nothing heavy: the command line reads them from here, and so does `export_bundle`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIN_OPSET, MAX_OPSET = 7, 18  # tf2onnx 1.17 refuses opset 19 and above
DEFAULT_OPSET = 17
QUANTIZATIONS = ("none", "int8")
# vote: the weighted vote only; stack: also a stacker (logistic regression over the members'
# log-probabilities), the default voting when it scores higher in cross-validation.
COMBINES = ("vote", "stack")
PARITY_ROWS = 2000  # validation rows on which each member's ONNX graph must match Keras
# int8 is kept only when the validation macro-F1 of the vote drops by at most this much.
MAX_F1_DROP = 0.005
# `voxpop distill`'s student families, fastest first (voxpop.export.distill): tfidf reads the
# n-grams only; tfidf_fusion also the engineered features, which cost more to encode.
STUDENT_FAMILIES = ("tfidf", "tfidf_fusion")


@dataclass(frozen=True)
class ExportOptions:
    """The knobs of one export (the CLI options of `voxpop export`) and their defaults."""

    size: int = 5
    select: str = "greedy"
    metric: str = "val_macro_f1"
    opset: int = DEFAULT_OPSET
    fuse: bool = True
    quantize: str = "none"
    parity_tol: float = 1e-5
    sign: Path | None = None  # Ed25519 private key (PEM) to sign the manifest with
    combine: str = "vote"
    max_ms_per_row: float | None = None  # keep the best ensemble whose measured cost fits


DEFAULTS = ExportOptions()
