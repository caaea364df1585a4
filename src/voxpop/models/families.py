"""One text-encoder function per model family, registered with `@family(name, ...)`.

An encoder maps the `tokens` input to one vector per row (or, for a family registered with
`reads="grams"`, the hashed TF-IDF n-grams `grams`/`gram_weights`); `build` adds the optional
dense-feature branch, the head and the softmax output `probs`. Adding a family means adding one
registration here (`@family(...)` on its encoder function): it carries the family's config
defaults, its inputs, its closed-form solver if any and its default search space (see
`voxpop.models.registry.Family`), and the other stages derive what they need from it.
"""

from __future__ import annotations

import numpy as np

from voxpop import deferred
from voxpop.models.registry import FAMILIES, GRAM_EMBEDDING, OUTPUT, READS, Family, family
from voxpop.models.training import TRAINING_DEFAULTS

# Keras (and with it TensorFlow) is imported when a model is built or loaded, not when the
# registry is read: `voxpop spaces` and the tune driver read the families without it.
keras = deferred("keras")
vl = deferred("voxpop.models.layers")  # voxpop's custom layers (registers them for loading)

# Keys every family accepts (the embedding, the head and the dense-feature branch of `fusion`).
COMMON_DEFAULTS = {
    "embed_dim": 64,
    "embed_dropout": 0.1,
    # Pretrained word vectors (a name or a file, matched to the vocabulary by the tune driver;
    # `build` gets the matrix): they set the token embedding's start and its width (embed_dim).
    "embeddings": None,
    "freeze_embeddings": False,  # keep the token embedding as it starts (pretrained vectors)
    "head_units": [64],
    "head_dropout": 0.3,
    "layer_norm": False,
}

# Keys `build` ignores so that one trial config serves it and `training.fit`: the family's name
# and the training keys.
TRAINING_KEYS = frozenset({"family", *TRAINING_DEFAULTS})

# ----------------------------------------------------------------------------- default spaces
# Each family's default search space in the space-file syntax (voxpop.tune_spaces.space_file;
# `voxpop spaces show NAME` prints it). Keys a space leaves out take the family's defaults.
_EMBEDDING_SPACE = {
    "embed_dim": {"choice": [32, 64, 128]},
    "embed_dropout": {"uniform": [0.0, 0.3]},
    "head_dropout": {"uniform": [0.1, 0.5]},
}
_TRAINING_SPACE = {
    "loss": {"choice": ["crossentropy", "focal"]},
    "focal_gamma": {"uniform": [1.0, 3.0]},
    "imbalance": {"choice": ["none", "balanced"]},
    "learning_rate": {"loguniform": [3e-4, 3e-3]},
    "batch_size": {"choice": [32, 64, 128]},
}
# Keys every family accepts, searched by the space `mixed`, which samples the family too.
COMMON_SPACE = {**_EMBEDDING_SPACE, **_TRAINING_SPACE}


def _token_space(**own) -> dict:
    """A token family's space: the embedding keys, the family's own, then the training keys."""
    return {**_EMBEDDING_SPACE, **own, **_TRAINING_SPACE}


_RECURRENT_SPACE = _token_space(units={"choice": [32, 64, 96]})
_TFIDF_SPACE = {"C": {"loguniform": [1.0, 16.0]}, "imbalance": {"choice": ["none", "balanced"]}}


# ----------------------------------------------------------------------------- recurrent families
# Recurrent layers keep Keras' defaults (tanh/sigmoid, no dropout inside the layer): that is the
# form tf2onnx fuses into one ONNX LSTM op; an LSTM with recurrent_dropout > 0 exports as a slow
# Loop (measured), so sequence dropout (`rnn_dropout`) is applied between layers instead.
# Pre-padding lets the final state see the real tokens last.
_CELLS = {"lstm": "LSTM", "gru": "GRU"}  # config `cell` -> the keras.layers class


def _recurrent(cell: str, units: int, *, return_sequences: bool = False):
    if cell not in _CELLS:
        raise ValueError(f"model config 'cell': {cell!r} is not valid (valid: {', '.join(_CELLS)})")
    return getattr(keras.layers, _CELLS[cell])(units, return_sequences=return_sequences)


def _bidirectional(layer):
    return keras.layers.Bidirectional(layer, merge_mode="concat")


def _plain_recurrent(cell: str, *, bidirectional: bool):
    """The encoder of a family that is one recurrent layer over the embedded tokens."""

    def encoder(tokens, mask, embedded, config):
        layer = _recurrent(cell, config["units"])
        return (_bidirectional(layer) if bidirectional else layer)(embedded)

    return encoder


family(
    "lstm",
    summary="One-way LSTM encoder: units, embedding size, dropouts, loss, learning rate.",
    space=_RECURRENT_SPACE,
    mixed=True,
    units=64,
)(_plain_recurrent("lstm", bidirectional=False))
family(
    "bilstm",
    summary="Bidirectional LSTM encoder: units, embedding size, dropouts, loss, learning rate.",
    space=_RECURRENT_SPACE,
    mixed=True,
    units=64,
)(_plain_recurrent("lstm", bidirectional=True))


@family(
    "stacked_bilstm",
    summary="Stacked bidirectional LSTMs: number of layers (2-3), units per layer.",
    space={**_RECURRENT_SPACE, "num_layers": {"randint": [2, 3]}},
    units=[64, 32],
    num_layers=2,
    rnn_dropout=0.1,
)
def stacked_bilstm(tokens, mask, embedded, config):
    """`units` is one size per layer, or one int used for `num_layers` layers; `rnn_dropout`
    drops between the layers."""
    units = config["units"]
    x = embedded
    *inner, last = [units] * config["num_layers"] if isinstance(units, int) else units
    for units in inner:
        x = _bidirectional(_recurrent("lstm", units, return_sequences=True))(x)
        x = keras.layers.Dropout(config["rnn_dropout"])(x)
    return _bidirectional(_recurrent("lstm", last))(x)


family(
    "gru",
    summary="One-way GRU encoder (exported as a fused ONNX GRU op by voxpop.export.gru).",
    space=_RECURRENT_SPACE,
    units=64,
)(_plain_recurrent("gru", bidirectional=False))
family(
    "bigru",
    summary="Bidirectional GRU encoder (exported as fused ONNX GRU ops by voxpop.export.gru).",
    space=_RECURRENT_SPACE,
    mixed=True,
    units=64,
)(_plain_recurrent("gru", bidirectional=True))


@family(
    "attention",
    summary="Recurrent encoder with masked attention pooling over its outputs.",
    space=_RECURRENT_SPACE,
    mixed=True,
    cell="lstm",
    units=64,
    bidirectional=True,
    attention_units=64,
    rnn_dropout=0.1,
)
def attention(tokens, mask, embedded, config):
    """`rnn_dropout` drops on the encoded sequence before the masked attention pooling."""
    layer = _recurrent(config["cell"], config["units"], return_sequences=True)
    sequence = (_bidirectional(layer) if config["bidirectional"] else layer)(embedded)
    sequence = keras.layers.Dropout(config["rnn_dropout"])(sequence)
    return vl.MaskedAttentionPooling(config["attention_units"])([sequence, mask])


# ----------------------------------------------------------------------------- convolutional
@family(
    "cnn",
    summary="Parallel Conv1D filters of several kernel sizes with global max pooling.",
    space=_token_space(filters={"choice": [32, 64, 128]}),
    mixed=True,
    padding_invariant=True,
    filters=64,
    kernel_sizes=[2, 3, 4],
)
def cnn(tokens, mask, embedded, config):
    # Padded steps are zeroed before the convolution, so with 'same' padding every window near the
    # text's edge sees the same zeros as it would without padding; pooling only over real steps
    # then makes the output independent of how much padding a row has.
    x = vl.ApplyMask()([embedded, mask])
    pooled = [
        vl.MaskedMaxPooling()(
            [
                keras.layers.Conv1D(config["filters"], size, padding="same", activation="relu")(x),
                mask,
            ]
        )
        for size in config["kernel_sizes"]
    ]
    return pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)


# ----------------------------------------------------------------------------- bag of n-grams
@family(
    "bigram",
    summary="fastText-style mean of word and hashed-bigram embeddings: number of bigram buckets.",
    space=_token_space(buckets={"choice": [16384, 65536]}),
    mixed=True,
    padding_invariant=True,
    buckets=65536,
)
def bigram(tokens, mask, embedded, config):
    """fastText-style: the mean word embedding beside the mean embedding of hashed word bigrams.

    A bag-of-n-grams model errs differently from the sequence models, which is what an ensemble
    needs; it is also the fastest family to train and to serve.
    """
    bigram_ids = vl.HashedBigrams(config["buckets"])(tokens)
    bigram_mask = vl.PaddingMask(name="bigram_mask")(bigram_ids)
    bigrams = keras.layers.Embedding(
        config["buckets"], config["embed_dim"], name="bigram_embedding"
    )(bigram_ids)
    bigrams = keras.layers.Dropout(config["embed_dropout"])(bigrams)
    return keras.layers.Concatenate()(
        [
            vl.MaskedMeanPooling()([embedded, mask]),
            vl.MaskedMeanPooling()([bigrams, bigram_mask]),
        ]
    )


# A linear model of the weighted n-grams: no embedding dropout, no head.
_LINEAR_ON_GRAMS = {"embed_dim": None, "embed_dropout": 0.0, "head_units": [], "head_dropout": 0.0}


@family(
    "tfidf",
    summary="Logistic regression on hashed TF-IDF word and char n-grams (one lbfgs "
    "solve): C, imbalance.",
    space=_TFIDF_SPACE,
    reads="grams",
    solver="lbfgs",
    **_LINEAR_ON_GRAMS,
)
def tfidf(grams, gram_weights, config, n_buckets, n_classes):
    """Logistic regression on hashed TF-IDF word 1-2 and char_wb 2-5 grams of the raw text.

    The classical baseline as an ensemble member: an `embed_dim`-wide embedding row per n-gram
    (default: one per class), summed with the TF-IDF weights, is a linear map of the TF-IDF vector;
    with no head units the output layer makes it a logistic regression, which `fit` solves
    exactly with lbfgs (training key `solver`). It reads the raw text, not the cleaned tokens, so
    it errs differently from every token family.
    """
    dim = config["embed_dim"] or n_classes
    embedded = keras.layers.Embedding(n_buckets, dim, name=GRAM_EMBEDDING)(grams)
    embedded = keras.layers.Dropout(config["embed_dropout"])(embedded)
    return vl.WeightedSum()([embedded, gram_weights])


@family(
    "tfidf_fusion",
    summary="The tfidf regression with the engineered features (VADER scores, "
    "counts) beside the n-grams.",
    space=_TFIDF_SPACE,
    reads="grams",
    uses_features=True,
    solver="lbfgs",
    feature_units=0,
    feature_dropout=0.0,
    **_LINEAR_ON_GRAMS,
)
def tfidf_fusion(grams, gram_weights, config, n_buckets, n_classes):
    """The tfidf regression with the dense features beside the n-grams: with `feature_units` 0 the
    scaled features enter the output layer as they are, so it stays one logistic regression (over
    n-grams and features) that `fit` solves exactly. The features carry what a few thousand
    training rows cannot teach n-grams: VADER's sentiment lexicon and its negation rules.
    """
    return tfidf(grams, gram_weights, config, n_buckets, n_classes)


@family(
    "tfidf_nb",
    summary="Complement naive Bayes on the hashed TF-IDF n-grams (one counting "
    "pass): smoothing alpha.",
    space={"alpha": {"loguniform": [0.003, 1.0]}},
    reads="grams",
    solver="complement_nb",
    **_LINEAR_ON_GRAMS,
)
def tfidf_nb(grams, gram_weights, config, n_buckets, n_classes):
    """Complement naive Bayes on the tfidf n-grams (Rennie et al. 2003): its log-likelihood is
    linear in them too, so it is the tfidf model with other weights, which `fit` counts in one
    pass (training keys `solver` auto = complement_nb, `alpha`). Strong on topics with many
    classes, and it errs differently from the regression.
    """
    return tfidf(grams, gram_weights, config, n_buckets, n_classes)


# ----------------------------------------------------------------------------- transformer
# config `activation` -> the feed-forward activation (looked up when a model is built)
_FF_ACTIVATIONS = {"gelu": lambda: vl.gelu_tanh, "relu": lambda: "relu"}


def _transformer_block(x, key_mask, config):
    dim = x.shape[-1]
    heads = config["num_heads"]
    attended = keras.layers.MultiHeadAttention(
        heads, key_dim=max(dim // heads, 1), dropout=config["attention_dropout"]
    )(x, x, attention_mask=key_mask)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attended]))
    activation = _FF_ACTIVATIONS[config["activation"]]()
    hidden = keras.layers.Dense(config["ff_dim"], activation=activation)(x)
    hidden = keras.layers.Dropout(config["ff_dropout"])(keras.layers.Dense(dim)(hidden))
    return keras.layers.LayerNormalization()(keras.layers.Add()([x, hidden]))


@family(
    "transformer",
    summary="Small transformer encoder: blocks (1-2), heads, feed-forward width.",
    space=_token_space(
        num_blocks={"randint": [1, 2]}, num_heads={"choice": [2, 4]}, ff_dim={"choice": [64, 128]}
    ),
    mixed=True,
    num_blocks=1,
    num_heads=2,
    ff_dim=128,
    activation="gelu",
    attention_dropout=0.1,
    ff_dropout=0.1,
    max_positions=512,
)
def transformer(tokens, mask, embedded, config):
    if config["activation"] not in _FF_ACTIVATIONS:
        raise ValueError(
            f"model config 'activation': {config['activation']!r} is not valid "
            f"(valid: {', '.join(_FF_ACTIVATIONS)})"
        )
    x = vl.PositionEmbedding(config["max_positions"])(embedded)
    key_mask = vl.KeyMask()(mask)
    for _ in range(config["num_blocks"]):
        x = _transformer_block(x, key_mask, config)
    return vl.MaskedMeanPooling()([x, mask])


# ----------------------------------------------------------------------------- sentence encoder
@family(
    "sentence",
    summary="A small head on a frozen pretrained sentence encoder's embeddings "
    "(needs `voxpop tune --sentence-encoder`): head units, dropout, learning rate.",
    space={
        "head_units": {"choice": [[], [128]]},
        "head_dropout": {"uniform": [0.0, 0.3]},
        "learning_rate": {"loguniform": [1e-3, 1e-2]},
        "imbalance": {"choice": ["none", "balanced"]},
        "batch_size": {"choice": [32, 64]},
    },
    reads="sentence",
    head_units=[],
    head_dropout=0.1,
    embed_dim=None,
    embed_dropout=0.0,
)
def sentence(embedding, config):
    """The encoder ran once per run (its embeddings are the input); with no head units the head
    is a logistic regression on them, as the model card's probes use it."""
    return embedding


# ----------------------------------------------------------------------------- fusion
@family(
    "fusion",
    summary="A CNN or BiLSTM text branch beside the dense engineered-feature branch, "
    "joined before the head.",
    space={**_RECURRENT_SPACE, "encoder": {"choice": ["cnn", "bilstm"]}},
    mixed=True,
    uses_features=True,
    encoder="bilstm",
    feature_units=32,
    feature_dropout=0.1,
)
def fusion(tokens, mask, embedded, config):
    """The text encoder of family `encoder` (its keys apply too); `build` adds the feature branch."""
    return FAMILIES[config["encoder"]].encoder(tokens, mask, embedded, config)


# ----------------------------------------------------------------------------- public API
def default_config(family_name: str, *, encoder: str | None = None) -> dict:
    """The complete model config of a family (common keys + the family's own), as a fresh dict.

    For `fusion` it includes the keys of its text encoder (`encoder`, default bilstm).
    """
    spec = _family(family_name)
    defaults = {**COMMON_DEFAULTS, **spec.defaults}
    if "encoder" in spec.defaults:
        defaults["encoder"] = encoder or defaults["encoder"]
        defaults = {**_text_encoder(defaults["encoder"]).defaults, **defaults}
    return {key: list(v) if isinstance(v, list) else v for key, v in defaults.items()}


def _text_encoder(name: str) -> Family:
    def usable(spec: Family) -> bool:
        return spec.inputs == READS["tokens"]

    if name not in FAMILIES or not usable(FAMILIES[name]):
        valid = ", ".join(n for n, f in FAMILIES.items() if usable(f))
        raise ValueError(f"model config 'encoder': {name!r} is not valid (valid: {valid})")
    return FAMILIES[name]


def padding_invariant(family_name: str, config: dict | None = None) -> bool:
    """Whether a model of the family gives the same output whatever padding its rows have
    (`Family.padding_invariant`; `fusion` as its text encoder). tests/test_models_export.py
    checks the claim of every family on real rows."""
    spec = _family(family_name)
    if "encoder" in spec.defaults:
        return _text_encoder(
            (config or {}).get("encoder", spec.defaults["encoder"])
        ).padding_invariant
    return spec.padding_invariant


def uses_features(family_name: str, config: dict | None = None) -> bool:
    """Whether the family takes the dense `features` input beside its text input."""
    return _family(family_name).uses_features


def build(
    family_name: str,
    config: dict | None = None,
    *,
    n_tokens: int,
    n_classes: int,
    n_features: int = 0,
    n_buckets: int = 0,
    embeddings: np.ndarray | None = None,
    sentence_dim: int = 0,
) -> keras.Model:
    """A fresh (untrained) Keras model of `family_name`.

    Inputs: `tokens` int32 [batch, seq] (PAD=0), or for a family that reads n-grams `grams` int32
    [batch, width] (ids < n_buckets, 0 = padding) and `gram_weights` float32 [batch, width], or
    for a family that reads a sentence encoder's output `sentence_embedding` float32 [batch,
    sentence_dim]; and, when `uses_features`, `features` float32 [batch, n_features]. Output
    `probs` (softmax [batch, n_classes]); batch and sequence axes dynamic. `config` overrides
    `default_config(family_name)`; training keys and other families' keys are ignored, a key no
    family knows is refused (ValueError naming it).

    `embeddings` (float32 [n_tokens, embed_dim]) starts the token embedding from pretrained
    vectors (the config key `embeddings` names their source; a family that reads n-grams has
    no token embedding and ignores them); `freeze_embeddings` keeps it fixed in training.
    """
    config = _resolve(family_name, config or {})
    spec = FAMILIES[family_name]
    if spec.reads == "tokens":
        _check_vectors(config, embeddings, n_tokens=n_tokens)
    inputs, x, embedding = _READERS[spec.reads](
        spec,
        config,
        n_tokens=n_tokens,
        n_classes=n_classes,
        n_buckets=n_buckets,
        sentence_dim=sentence_dim,
    )
    if uses_features(family_name, config):
        if n_features < 1:
            raise ValueError(f"family {family_name!r} needs dense features, but n_features=0")
        features = keras.Input(shape=(n_features,), dtype="float32", name="features")
        inputs.append(features)
        x = keras.layers.Concatenate()([x, _feature_branch(features, config)])
    x = _head(x, config)
    probs = keras.layers.Dense(n_classes, activation="softmax", name=OUTPUT)(x)
    model = keras.Model(inputs, probs, name=family_name)
    if embeddings is not None and embedding is not None:
        # set after building, not as a Constant initializer, which would copy the whole matrix
        # into the saved model's config
        embedding.set_weights([np.asarray(embeddings, dtype="float32")])
    return model


def _check_vectors(config: dict, embeddings: np.ndarray | None, *, n_tokens: int) -> None:
    named = config["embeddings"] not in (None, "none")  # "none": a space's way to say None
    if named != (embeddings is not None):
        raise ValueError(
            f"model config 'embeddings' is {config['embeddings']!r}, but build got "
            f"{'no' if named else 'a'} matrix of vectors"
        )
    if embeddings is not None and embeddings.shape != (n_tokens, config["embed_dim"]):
        raise ValueError(
            f"the pretrained vectors are {embeddings.shape[0]} x "
            f"{embeddings.shape[1]}, but the embedding is n_tokens={n_tokens} x "
            f"embed_dim={config['embed_dim']} (embed_dim follows the vectors)"
        )


def load_model(path) -> keras.Model:
    """A model `build` made and Keras saved (`model.save(path)`), loaded in safe mode: voxpop's
    custom layers and losses are registered, so it needs no custom objects and runs no code."""
    from voxpop.models import layers, losses  # noqa: F401  (registers the custom objects)

    return keras.models.load_model(path, safe_mode=True)


def _read_tokens(
    spec: Family, config: dict, *, n_tokens: int, n_classes: int, n_buckets: int, sentence_dim: int
):
    """(inputs, encoded rows, token embedding) of a family that reads `tokens`."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    mask = vl.PaddingMask(name="padding_mask")(tokens)
    embedding = keras.layers.Embedding(
        n_tokens, config["embed_dim"], name="embedding", trainable=not config["freeze_embeddings"]
    )
    embedded = keras.layers.Dropout(config["embed_dropout"])(embedding(tokens))
    return [tokens], spec.encoder(tokens, mask, embedded, config), embedding


def _read_grams(
    spec: Family, config: dict, *, n_tokens: int, n_classes: int, n_buckets: int, sentence_dim: int
):
    """(inputs, encoded rows, None) of a family that reads the hashed n-grams."""
    if n_buckets < 2:
        raise ValueError(
            f"this family reads hashed n-grams, but n_buckets={n_buckets} (the "
            "preprocessor was fitted without n-grams)"
        )
    grams = keras.Input(shape=(None,), dtype="int32", name="grams")
    gram_weights = keras.Input(shape=(None,), dtype="float32", name="gram_weights")
    return (
        [grams, gram_weights],
        spec.encoder(grams, gram_weights, config, n_buckets, n_classes),
        None,
    )


def _read_sentence(
    spec: Family, config: dict, *, n_tokens: int, n_classes: int, n_buckets: int, sentence_dim: int
):
    """(inputs, encoded rows, None) of a family on a sentence encoder's pooled embeddings."""
    if sentence_dim < 1:
        raise ValueError(
            "this family reads a pretrained sentence encoder's embeddings, but the "
            "run has none (tune with --sentence-encoder)"
        )
    embedding = keras.Input(shape=(sentence_dim,), dtype="float32", name=READS["sentence"][0])
    return [embedding], spec.encoder(embedding, config), None


_READERS = {"tokens": _read_tokens, "grams": _read_grams, "sentence": _read_sentence}


def _feature_branch(features, config):
    """A relu layer of `feature_units` over the scaled features; with 0 units the features join
    the head as they are."""
    if config["feature_units"]:
        features = keras.layers.Dense(config["feature_units"], activation="relu")(features)
    return keras.layers.Dropout(config["feature_dropout"])(features)


def _head(x, config):
    if config["layer_norm"]:
        x = keras.layers.LayerNormalization()(x)
    for units in config["head_units"]:
        x = keras.layers.Dropout(config["head_dropout"])(x)
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.layers.Dropout(config["head_dropout"])(x)


def _family(family_name: str) -> Family:
    if family_name not in FAMILIES:
        raise ValueError(
            f"model family {family_name!r} is not valid (valid: {', '.join(FAMILIES)})"
        )
    return FAMILIES[family_name]


def _resolve(family_name: str, config: dict) -> dict:
    # Keys of other families are ignored (one Ray Tune space may cover several families);
    # a key no family knows is a typo and refused.
    defaults = default_config(family_name, encoder=config.get("encoder"))
    known = set(COMMON_DEFAULTS).union(TRAINING_KEYS, *(f.defaults for f in FAMILIES.values()))
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"model config for {family_name!r}: unknown key(s) {', '.join(unknown)} "
            f"(valid: {', '.join(sorted(defaults))})"
        )
    return {**defaults, **{k: v for k, v in config.items() if k in defaults}}
