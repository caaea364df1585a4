"""Preparing a tuning run's data once, in the driver: read, split, fit, encode, write `RUN/voxpop/`.

The layout of what is written (preprocess.json fitted on the training rows only, the split, every
row, the encoded train and val arrays, the job record) belongs to `voxpop.data.rundir`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from voxpop.data import Preprocessor, read_table, split_rows
from voxpop.data.errors import VoxpopError
from voxpop.data.options import LABEL_COL, TEXT_COL
from voxpop.data.rundir import SPLITS, TrialData, data_rows, row_features, write_prepared
from voxpop.data.sentence import TOKEN_INPUTS, SentenceModel, SentenceTokenizer
from voxpop.data.storage import Location
from voxpop.data.vectors import match_vectors
from voxpop.tune_spaces.options import TEST_SIZE, VAL_SIZE

VERSIONED_PACKAGES = ("voxpop", "ray", "tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas")


@dataclass(frozen=True)
class TableSource:
    """Where the rows come from: DATA, and optional separate validation and test files."""

    data: Path
    val: Path | None = None
    test: Path | None = None
    text_col: str = TEXT_COL
    label_col: str = LABEL_COL
    feature_cols: tuple[str, ...] = ()
    format: str | None = None  # of every file; None: by each file's extension


def prepare_run_data(
    source: TableSource,
    *,
    seed: int,
    run_dir: Location,
    job: dict,
    preprocessor_options: dict | None = None,
    vector_sources: list[str] = (),
    folds: int = 0,
    sentence_model: SentenceModel | None = None,
    threads: int | None = None,
) -> TrialData:
    """Read, split, fit the Preprocessor on train, encode (with `folds` folds of train+val for a
    bagged run), match the pretrained word vectors `vector_sources` (resolved names or files) to
    the vocabulary, and write the run's prepared data.

    `preprocessor_options` are `Preprocessor` keywords (max_len, max_tokens, min_freq, ...);
    `folds` (k-fold bagging) assigns the train and val rows to that many stratified folds.
    With `sentence_model`, its tokenizer joins the Preprocessor and its pooled encoder embeds
    every training and validation text once here (ONNX Runtime, `threads`), for the heads of
    the `sentence` family. Returns the trial data (see `trainable.train_trial`).
    """
    rows = _labelled_rows(source, seed=seed)
    features = row_features(rows)
    train = (rows["split"] == "train").to_numpy()
    tokenizer, pooled = sentence_encoder(sentence_model) if sentence_model else (None, None)
    preprocessor = Preprocessor(**(preprocessor_options or {}), sentence_tokenizer=tokenizer).fit(
        rows["text"][train].tolist(),
        rows["label"][train].to_numpy(),
        features=None if features is None else features[train],
        feature_names=source.feature_cols,
    )
    data = TrialData.encode(
        preprocessor,
        rows,
        folds=folds,
        seed=seed,
        embed=_embedding(pooled, preprocessor, threads) if pooled else None,
    )
    if vector_sources:
        # training occurrences per token id, for the coverage the run records
        counts = np.bincount(data.train["tokens"].ravel(), minlength=preprocessor.n_tokens)
        data = dataclasses.replace(
            data,
            vectors={
                vector_source: match_vectors(
                    vector_source, preprocessor.vocabulary.tokens, counts=counts, seed=seed
                )
                for vector_source in vector_sources
            },
        )
    write_prepared(
        run_dir,
        preprocessor=preprocessor,
        rows=rows,
        data=data,
        job={
            **job,
            "versions": _versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        sentence_encoder=pooled.SerializeToString() if pooled else None,
    )
    return data


def _embedding(pooled, preprocessor: Preprocessor, threads: int | None):
    """texts -> their pooled embeddings, the word pieces made by the run's preprocessor."""
    from voxpop.models.sentence import Embedder

    embedder = Embedder(pooled, threads=threads)

    def word_pieces(texts: list[str]) -> dict:
        return preprocessor.encode(texts, inputs=list(TOKEN_INPUTS))

    return lambda texts: embedder.embed(texts, word_pieces)


def sentence_encoder(model: SentenceModel):
    """(tokenizer, pooled ONNX encoder) of `model`, checked: a VoxpopError names the file that
    is not what a sentence encoder needs."""
    import onnx

    from voxpop.models.sentence import pooled_encoder

    tokenizer = SentenceTokenizer.from_file(model.tokenizer)
    try:
        graph = onnx.load_model(model.onnx)
    except Exception as err:  # protobuf's and onnx's own errors: one line naming the file
        raise VoxpopError(f"{model.onnx}: not an ONNX model ({str(err).splitlines()[0]})") from None
    try:
        return tokenizer, pooled_encoder(graph)
    except (ValueError, onnx.checker.ValidationError) as err:
        raise VoxpopError(f"{model.onnx}: {str(err).splitlines()[0]}") from None


def _labelled_rows(source: TableSource, *, seed: int) -> pd.DataFrame:
    """Every row in the run's form (`id, text, label, split` + features), in file order."""

    def read(path: Path, **checks):
        return read_table(
            path,
            text_col=source.text_col,
            label_col=source.label_col,
            feature_cols=source.feature_cols,
            format=source.format,
            **checks,
        )

    main = read(source.data, require_classes=2)
    split = split_rows(
        main.labels,
        ids=main.ids,
        seed=seed,
        val_size=0 if source.val else VAL_SIZE,
        test_size=0 if source.test else TEST_SIZE,
    )
    names = np.empty(len(main), dtype=object)
    for name in SPLITS:
        names[getattr(split, name)] = name
    frames = [_rows(main, names, source.feature_cols)]
    for name in ("val", "test"):
        path = getattr(source, name)
        if path:
            table = read(path)
            frames.append(
                _rows(table, np.full(len(table), name, dtype=object), source.feature_cols)
            )
    return pd.concat(frames, ignore_index=True)


def _rows(table, split_names: np.ndarray, feature_cols: tuple[str, ...]) -> pd.DataFrame:
    return data_rows(
        ids=table.ids,
        texts=table.texts,
        labels=table.labels,
        splits=split_names,
        features=table.features,
        feature_cols=feature_cols,
    )


def _versions() -> dict:
    versions = {"python": platform.python_version(), "platform": sys.platform}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
