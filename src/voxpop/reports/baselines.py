"""Reference models for the report: the majority class, and TF-IDF + logistic regression.

Both are fitted on the bundle's own training split, so they show whether the deep ensemble earns
its cost on the external set.
"""

from __future__ import annotations

import numpy as np

from voxpop.reports.evaluation import ModelOutput


def majority_baseline(y_train: np.ndarray, *, n_rows: int, n_classes: int) -> ModelOutput:
    """Always predict the most frequent training class; probabilities are the training priors."""
    priors = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes) / len(y_train)
    return ModelOutput(probs=np.tile(priors, (n_rows, 1)))


def tfidf_pipeline():
    """Word 1-2 and char_wb 2-5 gram TF-IDF (sublinear tf) + balanced logistic regression, C=4."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    return make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        ),
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=1000),
    )


def fit_tfidf(train_texts: list[str], y_train: np.ndarray):
    """The TF-IDF pipeline fitted on the training texts and class ids."""
    return tfidf_pipeline().fit(train_texts, np.asarray(y_train, dtype=np.int64))


def tfidf_output(pipeline, texts: list[str], *, n_classes: int) -> ModelOutput:
    """A fitted TF-IDF pipeline's answers on `texts`; classes it never saw get probability 0."""
    probs = np.zeros((len(texts), n_classes))
    probs[:, pipeline.classes_] = pipeline.predict_proba(texts)
    return ModelOutput(probs=probs)
