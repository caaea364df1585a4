"""What `voxpop tune` accepts (`TuneOptions`) and the default split, importing nothing heavy: the
command line reads its defaults from here, and so does the runner."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from voxpop.data.options import LABEL_COL, MAX_TOKENS, MIN_FREQ, TEXT_COL

# The default split when the user gives no --val/--test file (fractions of DATA's rows).
VAL_SIZE, TEST_SIZE = 0.15, 0.15


@dataclass(frozen=True)
class TuneOptions:
    """Everything `voxpop tune` accepts; see `voxpop tune --help` for each option."""

    data: Path
    text_col: str = TEXT_COL
    label_col: str = LABEL_COL
    feature_cols: tuple[str, ...] = ()
    val_file: Path | None = None
    test_file: Path | None = None
    format: str | None = None  # of DATA, --val and --test; None: by each file's extension
    spaces: tuple[str, ...] = ("bilstm",)
    samples: int = 4
    max_epochs: int = 5
    scheduler: str = "asha"
    search: str = "random"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    address: str | None = None
    storage: str | Path = "runs"  # a local folder or a pyarrow file-system URI (s3://bucket/runs)
    name: str = "tune"
    resume: bool = False
    max_failures: int = 0
    keep_checkpoints: int = 2
    seed: int = 42
    num_cpus: int | None = None  # embedded Ray only: CPUs to offer (default: all cores)
    num_gpus: float | None = None  # embedded Ray only: GPUs to offer (default: detected)
    # tokens per text; None: the Preprocessor's percentile of the training texts' lengths
    max_len: int | None = None
    max_tokens: int = MAX_TOKENS  # vocabulary size, PAD and OOV included
    min_freq: int = MIN_FREQ  # training occurrences a token needs
    # pretrained word vectors (a file or a name) for the spaces of token families that name none
    embeddings: str | None = None
    freeze_embeddings: bool = False  # those vectors stay fixed in training
    # a pretrained sentence encoder (voxpop.data.sentence): a folder, an ONNX file or a name
    sentence_encoder: str | None = None
    sentence_tokenizer: Path | None = None  # its tokenizer.json, when not beside the ONNX file

    def to_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v
                for k, v in dataclasses.asdict(self).items()}


DEFAULTS = TuneOptions(data=None)  # what every option is when not given
