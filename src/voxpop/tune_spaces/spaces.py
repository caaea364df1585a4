"""Named search spaces: one function per model family, plus `mixed` (the family is sampled too).

Each function returns a Ray Tune param space: a dict of `ray.tune` samplers (and constants) that
always holds `family`. Keys other than `family` are the model's and the training's config keys
(`voxpop.models.build` / `voxpop.models.training.fit`); anything a space leaves out takes
`voxpop.models.default_config(family)`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from voxpop.data.errors import VoxpopError


def _training() -> dict:
    """Training keys shared by every space: loss, imbalance policy, optimizer settings."""
    from ray import tune

    return {
        "loss": tune.choice(["crossentropy", "focal"]),
        "focal_gamma": tune.uniform(1.0, 3.0),
        "imbalance": tune.choice(["none", "balanced"]),
        "learning_rate": tune.loguniform(3e-4, 3e-3),
        "batch_size": tune.choice([32, 64, 128]),
    }


def _embedding() -> dict:
    from ray import tune

    return {
        "embed_dim": tune.choice([32, 64, 128]),
        "embed_dropout": tune.uniform(0.0, 0.3),
        "head_dropout": tune.uniform(0.1, 0.5),
    }


def _recurrent(family: str) -> dict:
    from ray import tune

    return {"family": family, **_embedding(), "units": tune.choice([32, 64, 96]), **_training()}


def lstm() -> dict:
    """One-way LSTM encoder: units, embedding size, dropouts, loss, learning rate."""
    return _recurrent("lstm")


def bilstm() -> dict:
    """Bidirectional LSTM encoder: units, embedding size, dropouts, loss, learning rate."""
    return _recurrent("bilstm")


def stacked_bilstm() -> dict:
    """Stacked bidirectional LSTMs: number of layers (2-3), units per layer."""
    from ray import tune

    return {**_recurrent("stacked_bilstm"), "num_layers": tune.randint(2, 4)}


def gru() -> dict:
    """One-way GRU encoder (exported as a fused ONNX GRU op by voxpop.export.gru)."""
    return _recurrent("gru")


def bigru() -> dict:
    """Bidirectional GRU encoder (exported as fused ONNX GRU ops by voxpop.export.gru)."""
    return _recurrent("bigru")


def attention() -> dict:
    """Recurrent encoder with masked attention pooling over its outputs."""
    return _recurrent("attention")


def cnn() -> dict:
    """Parallel Conv1D filters of several kernel sizes with global max pooling."""
    from ray import tune

    return {"family": "cnn", **_embedding(), "filters": tune.choice([32, 64, 128]), **_training()}


def bigram() -> dict:
    """fastText-style mean of word and hashed-bigram embeddings: number of bigram buckets."""
    from ray import tune

    return {"family": "bigram", **_embedding(), "buckets": tune.choice([16384, 65536]),
            **_training()}


def tfidf() -> dict:
    """Logistic regression on hashed TF-IDF word and char n-grams (one lbfgs solve): C, imbalance."""
    from ray import tune

    return {"family": "tfidf", "C": tune.loguniform(1.0, 16.0),
            "imbalance": tune.choice(["none", "balanced"])}


def tfidf_fusion() -> dict:
    """The tfidf regression with the engineered features (VADER scores, counts) beside the n-grams."""
    return {**tfidf(), "family": "tfidf_fusion"}


def tfidf_nb() -> dict:
    """Complement naive Bayes on the hashed TF-IDF n-grams (one counting pass): smoothing alpha."""
    from ray import tune

    return {"family": "tfidf_nb", "alpha": tune.loguniform(0.003, 1.0)}


def transformer() -> dict:
    """Small transformer encoder: blocks (1-2), heads, feed-forward width."""
    from ray import tune

    return {
        "family": "transformer",
        **_embedding(),
        "num_blocks": tune.randint(1, 3),
        "num_heads": tune.choice([2, 4]),
        "ff_dim": tune.choice([64, 128]),
        **_training(),
    }


def fusion() -> dict:
    """A CNN or BiLSTM text branch beside the dense engineered-feature branch, joined before the head."""
    from ray import tune

    return {**_recurrent("fusion"), "encoder": tune.choice(["cnn", "bilstm"])}


def mixed() -> dict:
    """The family itself is sampled (LSTM, BiLSTM, BiGRU, attention, CNN, bigram, transformer, fusion)."""
    from ray import tune

    # Only keys every family accepts; the family-specific ones keep their defaults. The tfidf
    # families are not sampled here: they are fitted in closed form, none of these keys apply.
    return {
        "family": tune.choice(["lstm", "bilstm", "bigru", "attention", "cnn", "bigram",
                               "transformer", "fusion"]),
        **_embedding(),
        **_training(),
    }


SPACES: dict[str, Callable[[], dict]] = {
    space.__name__: space
    for space in (lstm, bilstm, stacked_bilstm, gru, bigru, attention, cnn, bigram, tfidf,
                  tfidf_fusion, tfidf_nb, transformer, fusion, mixed)
}


def describe(name: str) -> str:
    """The one-line description of a named space (its function's docstring)."""
    return SPACES[name].__doc__.strip().splitlines()[0]


def get_space(name: str) -> dict:
    """The param space called `name`; an unknown name is a VoxpopError listing the valid ones."""
    if name not in SPACES:
        raise VoxpopError(
            f"unknown search space {name!r} (valid: {', '.join(SPACES)}, "
            "or a path to a .yaml/.yml/.json space file)"
        )
    return SPACES[name]()


def resolve_space(ref: str) -> tuple[str, dict]:
    """`(name, param space)` for a registry name or a YAML/JSON space file (named by its stem)."""
    from voxpop.tune_spaces.space_file import SPACE_FILE_SUFFIXES, load_space_file

    if ref.lower().endswith(SPACE_FILE_SUFFIXES):
        path = Path(ref).expanduser().resolve()
        return path.stem, load_space_file(path)
    return ref, get_space(ref)
