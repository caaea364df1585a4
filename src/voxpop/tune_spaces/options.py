"""What `voxpop tune` accepts (`TuneOptions`) and the default split, importing nothing heavy: the
command line reads its defaults from here, and so does the runner."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from voxpop.data.options import LABEL_COL, MAX_TOKENS, MIN_FREQ, TEXT_COL

# The default split when the user gives no --val/--test file (fractions of DATA's rows).
VAL_SIZE, TEST_SIZE = 0.15, 0.15

# Training budgets that follow the data. Without --max-epochs a trial may train for as many epochs
# as it takes to see ROWS_PER_TRIAL training rows, within [MIN_EPOCHS, MAX_EPOCHS]: small data
# needs many more epochs than large (measured: on 4k rows ASHA at one epoch judged BiLSTMs at 0.2
# macro-F1 that reach 0.7 later); early stopping (--patience) ends most trials well before.
ROWS_PER_TRIAL = 200_000
MIN_EPOCHS, MAX_EPOCHS = 5, 50
PATIENCE = 3  # epochs without a better val macro-F1 before a trial stops; 0: never
GRACE_ROWS = 50_000  # training rows a trial sees before ASHA may stop it or PBT replace it


def epochs_for(train_rows: int) -> int:
    """The default --max-epochs for `train_rows` rows per epoch (see ROWS_PER_TRIAL)."""
    return min(MAX_EPOCHS, max(MIN_EPOCHS, -(-ROWS_PER_TRIAL // max(train_rows, 1))))


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
    max_epochs: int | None = None  # None: follows the training rows (`epochs_for`)
    patience: int = PATIENCE
    grace_rows: int = GRACE_ROWS
    time_budget: float | None = None  # seconds for the whole job; None: no limit
    folds: int = 0  # k-fold bagging: K trials per sampled configuration; 0: one trial, no bag
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
        return {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()
        }


DEFAULTS = TuneOptions(data=None)  # what every option is when not given
