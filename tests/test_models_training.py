"""Training pieces: numpy metrics, imbalance policies, losses, schedules and `fit` on real tweets."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss
from sklearn.utils.class_weight import compute_class_weight

import voxpop.models as vm
from voxpop.models import training
from voxpop.models.losses import FocalLoss
from voxpop.models.runtime import configure


def test_validation_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=300)
    y = rng.integers(0, 4, 300)
    metrics = training.validation_metrics(probs, y)
    expected = f1_score(y, probs.argmax(1), labels=range(4), average=None, zero_division=0)
    np.testing.assert_allclose(metrics["val_per_class_f1"], expected)
    assert metrics["val_macro_f1"] == pytest.approx(expected.mean())
    assert metrics["val_loss"] == pytest.approx(log_loss(y, probs, labels=range(4)), rel=1e-6)
    assert metrics["val_accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))


def test_balanced_weights_equal_scikit_learn_and_boost_multiplies_them():
    y = np.array([0] * 50 + [1] * 30 + [2] * 5)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(training.balanced_class_weights(y, 3), expected)
    weights, _ = training.IMBALANCE["boost"]
    np.testing.assert_allclose(weights(y, 3, {"boost": {"2": 2.0}}), expected * [1, 1, 2])
    with pytest.raises(ValueError, match="needs 3 factors"):
        weights(y, 3, {"boost": [1.0, 2.0]})


@pytest.mark.parametrize(
    "target, expected", [("max", [50, 50, 50]), (np.int64(40), [50, 40, 40]), (0.5, [50, 30, 25])]
)
def test_oversampling_repeats_minority_rows_up_to_the_target(target, expected):
    y = np.array([0] * 50 + [1] * 30 + [2] * 5)
    rows = training.oversample_indices(y, target, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(y[rows]), expected)
    assert set(range(len(y))) <= set(rows.tolist())  # every original row kept
    assert rows.max() < len(y)


def test_oversampling_target_is_checked():
    with pytest.raises(ValueError, match="'oversample_to': 'all' is not valid"):
        training.oversample_indices(np.array([0, 1, 1]), "all", np.random.default_rng(0))


def test_focal_loss_reduces_to_crossentropy_and_weights_classes():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=20).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 20)]
    plain = training.LOSSES["crossentropy"](training.training_config({}))(y, probs)
    assert float(FocalLoss(gamma=0.0)(y, probs)) == pytest.approx(float(plain), rel=1e-5)
    alpha, gamma = [0.2, 0.3, 0.5], 2.0
    expected = np.mean(np.sum(-y * np.power(1 - probs, gamma) * np.log(probs) * alpha, axis=1))
    assert float(FocalLoss(gamma=gamma, alpha=alpha)(y, probs)) == pytest.approx(expected, rel=1e-5)
    restored = FocalLoss.from_config(FocalLoss(gamma=gamma, alpha=alpha).get_config())
    assert float(restored(y, probs)) == pytest.approx(expected, rel=1e-5)


def test_warmup_cosine_rises_to_the_rate_then_decays():
    schedule = training.SCHEDULES["warmup_cosine"](
        {"learning_rate": 0.01, "warmup_epochs": 1}, steps_per_epoch=10, epochs=3
    )
    rates = [float(schedule(step)) for step in (0, 5, 10, 20, 30)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(0.005)
    assert rates[2] == pytest.approx(0.01)
    assert rates[2] > rates[3] > rates[4] and rates[4] == pytest.approx(0.0, abs=1e-9)


def test_plateau_halves_the_rate_after_patience_epochs_without_improvement():
    optimizer = keras.optimizers.Adam(0.01)
    plateau = training._Plateau(optimizer, patience=2, factor=0.5)
    for score in (0.5, 0.6, 0.55, 0.6):
        plateau.step(score)
    assert float(optimizer.learning_rate) == pytest.approx(0.005)


def test_unknown_training_choices_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"'schedule': 'cosine' is not valid \(valid: constant, "):
        training.training_config({"schedule": "cosine"})
    with pytest.raises(
        ValueError, match=r"'loss': 'hinge' is not valid \(valid: crossentropy, focal"
    ):
        training.training_config({"loss": "hinge"})


# ----------------------------------------------------------------------------- fit on real tweets
@pytest.fixture(scope="module")
def tweets(tweets_df):
    """600 training and 300 validation real tweets (stratified), encoded by the Preprocessor."""
    from voxpop.data import Preprocessor

    sample = tweets_df.groupby("label", group_keys=False).sample(n=300, random_state=0)
    sample = sample.sample(frac=1.0, random_state=0)
    train, val = sample.iloc[:600], sample.iloc[600:900]
    pre = Preprocessor(max_len=30).fit(train.text.tolist(), train.label.tolist())
    return (
        pre.encode(train.text.tolist()),
        pre.encode_labels(train.label.tolist()),
        pre.encode(val.text.tolist()),
        pre.encode_labels(val.label.tolist()),
        pre,
    )


def _fit(tweets, config, epochs=2, on_epoch=None):
    train, y_train, val, y_val, pre = tweets
    configure(seed=3)
    model = vm.build(
        "cnn",
        {"embed_dim": 16, "filters": 16, "head_units": [16]},
        n_tokens=pre.n_tokens,
        n_classes=3,
    )
    result = training.fit(
        model,
        train=train,
        y_train=y_train,
        val=val,
        y_val=y_val,
        config=config,
        epochs=epochs,
        on_epoch=on_epoch,
    )
    return model, result


def test_fit_scores_the_whole_validation_set_and_keeps_the_best_epoch(tweets):
    seen = []
    config = {
        "imbalance": "oversample",
        "loss": "focal",
        "focal_alpha": [1.0, 1.0, 2.0],
        "optimizer": "adamw",
        "schedule": "plateau",
        "batch_size": 32,
        "seed": 5,
    }
    model, result = _fit(
        tweets, config, epochs=3, on_epoch=lambda e, m, p: seen.append((e, m, p.copy()))
    )
    _, _, val, y_val, _ = tweets
    assert [e for e, _, _ in seen] == [1, 2, 3]
    for _, metrics, probs in seen:
        assert probs.shape == (300, 3)  # every validation row, none oversampled
        assert metrics["val_macro_f1"] == pytest.approx(
            f1_score(y_val, probs.argmax(1), average="macro")
        )
    assert result.history == [m for _, m, _ in seen]
    best = max(range(3), key=lambda i: seen[i][1]["val_macro_f1"])
    assert result.best_epoch == best + 1 and result.best_metrics == seen[best][1]
    np.testing.assert_allclose(model.predict(val, verbose=0), seen[best][2], atol=1e-6)


def test_fit_is_reproducible_with_the_same_seed(tweets):
    config = {
        "imbalance": "balanced",
        "label_smoothing": 0.1,
        "schedule": "warmup_cosine",
        "seed": 11,
    }
    _, first = _fit(tweets, config, epochs=1)
    _, second = _fit(tweets, config, epochs=1)
    assert first.history == second.history


@pytest.mark.parametrize(
    "family,n_classes",
    [
        ("tfidf", 2),
        ("tfidf", 3),
        ("tfidf_fusion", 3),
        ("tfidf_nb", 2),
        ("tfidf_nb", 3),
        ("tfidf", 20),
    ],
)
def test_closed_form_fit_makes_the_tfidf_member_scikit_learns_estimator(
    family, n_classes, tweets_df, newsgroups_df
):
    """solver auto on a tfidf model is one closed-form fit: the Keras model's probabilities are
    those of LogisticRegression(C, balanced) fitted on the same sparse TF-IDF rows (tfidf_fusion:
    with the scaled features beside them), or for tfidf_nb of ComplementNB(alpha), to float32.
    20 classes: the long newsgroup posts, whose n-grams are cut to the heaviest per row."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB

    from voxpop.data import Preprocessor

    rows = (newsgroups_df if n_classes == 20 else tweets_df).sample(
        800 if n_classes == 20 else 1500, random_state=2
    )
    if n_classes == 2:
        rows = rows[rows.label != "neutral"]
    train, val = rows.iloc[:-300], rows.iloc[-300:]
    assert train.label.nunique() == n_classes
    pre = Preprocessor(ngram_buckets=2**16).fit(train.text.tolist(), train.label.tolist())
    x_train, x_val = pre.encode(train.text.tolist()), pre.encode(val.text.tolist())
    y_train, y_val = pre.encode_labels(train.label), pre.encode_labels(val.label)
    model = vm.build(
        family,
        {},
        n_tokens=pre.n_tokens,
        n_classes=n_classes,
        n_features=pre.n_features,
        n_buckets=pre.n_buckets,
    )
    config = {"C": 2.0, "imbalance": "balanced", "alpha": 0.05}
    seen = []
    result = training.fit(
        model,
        train=x_train,
        y_train=y_train,
        val=x_val,
        y_val=y_val,
        config=config,
        epochs=5,
        on_epoch=lambda e, m, p: seen.append(e),
    )
    assert seen == [1] and result.best_epoch == 1

    def csr(x):
        rows, cols = np.nonzero(x["gram_weights"])
        grams = sparse.csr_matrix(
            (x["gram_weights"][rows, cols], (rows, x["grams"][rows, cols])),
            shape=(len(x["grams"]), pre.n_buckets),
        )
        if family == "tfidf_fusion":  # float64: lbfgs stops early on float32 rows
            return sparse.hstack([grams, x["features"].astype(np.float64)]).tocsr()
        return grams

    reference = (
        ComplementNB(alpha=0.05)
        if family == "tfidf_nb"
        else LogisticRegression(C=2.0, class_weight="balanced", max_iter=1000)
    ).fit(csr(x_train), y_train)
    probs = model.predict({t.name: x_val[t.name] for t in model.inputs}, verbose=0)
    np.testing.assert_allclose(probs, reference.predict_proba(csr(x_val)), atol=1e-5)
    assert result.best_metrics["val_macro_f1"] == pytest.approx(
        f1_score(y_val, probs.argmax(1), average="macro")
    )


def test_complement_nb_refuses_scaled_features():
    model = vm.build("tfidf_fusion", {}, n_tokens=2, n_classes=2, n_features=1, n_buckets=16)
    x = {
        "grams": np.ones((4, 3), dtype="int32"),
        "gram_weights": np.ones((4, 3), "float32"),
        "features": np.array([[-1.0], [1.0], [-1.0], [1.0]], "float32"),
    }
    with pytest.raises(ValueError, match="'complement_nb' needs non-negative inputs"):
        training.fit(
            model,
            train=x,
            y_train=[0, 1, 0, 1],
            val=x,
            y_val=[0, 1, 0, 1],
            config={"solver": "complement_nb"},
            epochs=1,
        )


def test_lbfgs_refuses_a_model_that_is_not_linear_on_grams():
    model = vm.build("cnn", {"embed_dim": 4, "filters": 4}, n_tokens=20, n_classes=2)
    x = {"tokens": np.ones((4, 5), dtype="int32")}
    with pytest.raises(ValueError, match="fits a linear model on n-grams only"):
        training.fit(
            model,
            train=x,
            y_train=[0, 1, 0, 1],
            val=x,
            y_val=[0, 1, 0, 1],
            config={"solver": "lbfgs"},
            epochs=1,
        )
    hidden = vm.build("tfidf", {"head_units": [4]}, n_tokens=2, n_classes=2, n_buckets=16)
    grams = {"grams": np.ones((4, 3), dtype="int32"), "gram_weights": np.ones((4, 3), "float32")}
    with pytest.raises(ValueError, match="fits a linear model on n-grams only"):
        training.fit(
            hidden,
            train=grams,
            y_train=[0, 1, 0, 1],
            val=grams,
            y_val=[0, 1, 0, 1],
            config={"solver": "lbfgs"},
            epochs=1,
        )
