"""`fit`: train a voxpop model epoch by epoch, scoring the whole validation set after each epoch.

Training keys (all optional, defaults in TRAINING_DEFAULTS):
  loss            crossentropy | focal          label_smoothing  0..1
  focal_gamma     focusing exponent             focal_alpha      None, a float, or one per class
  imbalance       none | balanced | boost | oversample
  boost           per-class factors on top of balanced weights (list by class id, or {id: f})
  oversample_to   target rows per class for `oversample`: "max" (largest class), an int, or a
                  fraction of the largest class; only training rows are repeated
  optimizer       adam | adamw                  learning_rate, weight_decay (adamw), clipnorm
  schedule        constant | warmup_cosine | plateau (the schedule alone owns the learning rate)
  warmup_epochs   warmup length of warmup_cosine
  plateau_patience, plateau_factor   plateau: multiply the rate by factor after `patience`
                  epochs without a better validation macro-F1
  batch_size, seed
  solver          auto | sgd | lbfgs | complement_nb. lbfgs fits a linear model on TF-IDF
                  n-grams (family tfidf without head units, or tfidf_fusion, with the features
                  beside the n-grams) as scikit-learn's LogisticRegression, complement_nb as
                  ComplementNB; either in one closed-form fit reported as epoch 1. auto picks
                  the solver the model's family registers (`Family.solver`: complement_nb for
                  tfidf_nb, lbfgs for tfidf and tfidf_fusion) when the model is linear, and sgd
                  (the epoch loop with `optimizer`) for every other model
  C               inverse L2 strength of lbfgs (scikit-learn's C)
  alpha           additive smoothing of complement_nb
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from voxpop import deferred
from voxpop.models.registry import FAMILIES, GRAM_EMBEDDING, OUTPUT

# Imported when a model trains, not when the training keys and their registries are read (the
# tune driver checks space files against them without TensorFlow).
keras = deferred("keras")

TRAINING_DEFAULTS = {
    "loss": "crossentropy",
    "label_smoothing": 0.0,
    "focal_gamma": 2.0,
    "focal_alpha": None,
    "imbalance": "none",
    "boost": None,
    "oversample_to": "max",
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "clipnorm": 1.0,
    "schedule": "constant",
    "warmup_epochs": 1,
    "plateau_patience": 1,
    "plateau_factor": 0.5,
    "batch_size": 64,
    "seed": 42,
    "solver": "auto",
    "C": 4.0,
    "alpha": 0.1,
}
SOLVERS = ("auto", "sgd", "lbfgs", "complement_nb")


@dataclass
class FitResult:
    """The best epoch (1-based), its validation metrics, and every epoch's metrics in order."""

    best_epoch: int
    best_metrics: dict
    history: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------- metrics
def validation_metrics(probs: np.ndarray, y_true: np.ndarray) -> dict:
    """val_loss (mean cross-entropy), val_accuracy, val_macro_f1, val_per_class_f1 (by class id)."""
    # scikit-learn's F1 (models may not import voxpop.ensemble's numpy one; both are tested
    # against it): a class neither true nor predicted scores 0, as in every voxpop macro-F1.
    from sklearn.metrics import f1_score

    y_true = np.asarray(y_true, dtype=np.int64)
    f1 = f1_score(
        y_true, probs.argmax(1), labels=np.arange(probs.shape[1]), average=None, zero_division=0
    )
    picked = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return {
        "val_loss": float(-np.log(picked).mean()),
        "val_accuracy": float(np.mean(probs.argmax(1) == y_true)),
        "val_macro_f1": float(f1.mean()),
        "val_per_class_f1": [float(v) for v in f1],
    }


# ----------------------------------------------------------------------------- class imbalance
def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """n_rows / (n_classes * rows_of_class), as scikit-learn's `class_weight="balanced"`."""
    counts = np.bincount(y, minlength=n_classes)
    return len(y) / (n_classes * np.maximum(counts, 1))


def _boost_factors(boost, n_classes: int) -> np.ndarray:
    if isinstance(boost, dict):
        factors = np.ones(n_classes)
        for class_id, factor in boost.items():
            factors[int(class_id)] = factor
        return factors
    factors = np.asarray(boost if boost is not None else np.ones(n_classes), dtype=float)
    if factors.shape != (n_classes,):
        raise ValueError(
            f"training config 'boost': needs {n_classes} factors (one per class), "
            f"got {factors.size}"
        )
    return factors


def oversample_indices(y: np.ndarray, target, rng: np.random.Generator) -> np.ndarray:
    """Row indices of the training set with the rows of every class smaller than `target` repeated
    at random until it has `target` rows (classes already larger keep their rows); shuffled."""
    counts = np.bincount(y)
    if target == "max":
        target = counts.max()
    elif isinstance(target, float) and 0 < target <= 1:
        target = math.ceil(target * counts.max())
    elif not isinstance(target, numbers.Integral) or isinstance(target, bool) or target < 1:
        raise ValueError(
            f"training config 'oversample_to': {target!r} is not valid "
            "(valid: 'max', a row count, or a fraction of the largest class in (0, 1])"
        )
    extra = [
        rng.choice(np.flatnonzero(y == c), size=int(target) - n, replace=True)
        for c, n in enumerate(counts)
        if 0 < n < target
    ]
    return rng.permutation(np.concatenate([np.arange(len(y)), *extra]))


def _no_weights(y, n_classes, config):
    return None


def _balanced(y, n_classes, config):
    return balanced_class_weights(y, n_classes)


def _boosted(y, n_classes, config):
    return balanced_class_weights(y, n_classes) * _boost_factors(config["boost"], n_classes)


# imbalance policy -> (class weights from the training labels or None, whether to oversample)
IMBALANCE = {
    "none": (_no_weights, False),
    "balanced": (_balanced, False),
    "boost": (_boosted, False),
    "oversample": (_no_weights, True),
}


# ----------------------------------------------------------------------------- optimizer, schedule
def _constant(config, steps_per_epoch, epochs):
    return config["learning_rate"]


def _warmup_cosine(config, steps_per_epoch, epochs):
    warmup = min(config["warmup_epochs"], max(epochs - 1, 0)) * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        warmup_target=config["learning_rate"],
        warmup_steps=warmup,
        decay_steps=max(epochs * steps_per_epoch - warmup, 1),
    )


SCHEDULES = {"constant": _constant, "warmup_cosine": _warmup_cosine, "plateau": _constant}

OPTIMIZERS = {
    "adam": lambda rate, config: keras.optimizers.Adam(rate, clipnorm=config["clipnorm"] or None),
    "adamw": lambda rate, config: keras.optimizers.AdamW(
        rate, weight_decay=config["weight_decay"], clipnorm=config["clipnorm"] or None
    ),
}


# ----------------------------------------------------------------------------- losses
def _crossentropy(config: dict):
    return keras.losses.CategoricalCrossentropy(label_smoothing=config["label_smoothing"])


def _focal(config: dict):
    from voxpop.models.losses import FocalLoss

    return FocalLoss(
        gamma=config["focal_gamma"],
        alpha=config["focal_alpha"],
        label_smoothing=config["label_smoothing"],
    )


# loss -> the Keras loss made from the training config (label_smoothing, focal_gamma, focal_alpha)
LOSSES = {"crossentropy": _crossentropy, "focal": _focal}


class _Plateau:
    """Multiplies the optimizer's rate by `factor` after `patience` epochs without a better score."""

    def __init__(self, optimizer, *, patience: int, factor: float):
        self.optimizer, self.patience, self.factor = optimizer, patience, factor
        self.best, self.waited = -np.inf, 0

    def step(self, score: float) -> None:
        if score > self.best:
            self.best, self.waited = score, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.optimizer.learning_rate.assign(self.optimizer.learning_rate * self.factor)
            self.waited = 0


def training_config(config: dict) -> dict:
    """TRAINING_DEFAULTS overridden by the training keys of `config` (model keys are ignored),
    with every choice checked against its registry."""
    resolved = {**TRAINING_DEFAULTS, **{k: v for k, v in config.items() if k in TRAINING_DEFAULTS}}
    for key, registry in (
        ("loss", LOSSES),
        ("imbalance", IMBALANCE),
        ("schedule", SCHEDULES),
        ("optimizer", OPTIMIZERS),
        ("solver", SOLVERS),
    ):
        if resolved[key] not in registry:
            raise ValueError(
                f"training config {key!r}: {resolved[key]!r} is not valid "
                f"(valid: {', '.join(registry)})"
            )
    return resolved


# ----------------------------------------------------------------------------- fit
def fit(
    model,
    *,
    train: dict,
    y_train,
    val: dict,
    y_val,
    config: dict,
    epochs: int,
    on_epoch: Callable | None = None,
    patience: int = 0,
    deadline: float | None = None,
) -> FitResult:
    """Train `model` for up to `epochs` epochs; return the best epoch by validation macro-F1.

    `train`/`val` are dicts of encoded inputs (`tokens`, `features`; keys the model does not take
    are ignored); `y_*` are class ids. After each epoch the whole validation set is predicted and
    `on_epoch(epoch, metrics, val_probs)` is called with metrics = {epoch, loss, val_loss,
    val_accuracy, val_macro_f1, val_per_class_f1, stop_reason}.
    Training ends early (early stopping) after `patience` epochs (0: never) without a better
    validation macro-F1, or when the next epoch, as long as the last, would end after `deadline`
    (a `time.time()`); `stop_reason` of the last epoch says why (`STOP_REASONS`), None before it.
    On return the model holds the best epoch's weights. Oversampling and class weights touch the
    training rows only.
    """
    config = training_config(config)
    linear = _linear_gram_layers(model)
    solver = config["solver"]
    if solver in LINEAR_SOLVERS and linear is None:
        families = [name for name, spec in FAMILIES.items() if spec.solver]
        raise ValueError(
            f"solver {solver!r} fits a linear model on n-grams only (family "
            f"{', '.join(families[:-1])} or {families[-1]}, with head_units [] and "
            f"feature_units 0); model {model.name!r} is not one"
        )
    if solver == "auto" and linear is not None:
        solver = FAMILIES[model.name].solver
    if solver in LINEAR_SOLVERS:
        return _fit_linear(
            model,
            linear,
            LINEAR_SOLVERS[solver],
            train=train,
            y_train=y_train,
            val=val,
            y_val=y_val,
            config=config,
            on_epoch=on_epoch,
        )
    keras.utils.set_random_seed(config["seed"])  # shuffling and dropout
    n_classes = model.output_shape[-1]
    y_train = np.asarray(y_train, dtype=np.int64)
    y_val = np.asarray(y_val, dtype=np.int64)
    x_train, x_val = _model_inputs(model, train), _model_inputs(model, val)

    class_weights, oversample = IMBALANCE[config["imbalance"]]
    rows = (
        oversample_indices(y_train, config["oversample_to"], np.random.default_rng(config["seed"]))
        if oversample
        else np.arange(len(y_train))
    )
    x_train = {name: array[rows] for name, array in x_train.items()}
    y_train = y_train[rows]
    weights = class_weights(y_train, n_classes, config)
    sample_weight = None if weights is None else weights[y_train].astype("float32")

    steps_per_epoch = math.ceil(len(y_train) / config["batch_size"])
    rate = SCHEDULES[config["schedule"]](config, steps_per_epoch, epochs)
    optimizer = OPTIMIZERS[config["optimizer"]](rate, config)
    loss = LOSSES[config["loss"]](config)
    model.compile(optimizer=optimizer, loss=loss)
    plateau = (
        _Plateau(optimizer, patience=config["plateau_patience"], factor=config["plateau_factor"])
        if config["schedule"] == "plateau"
        else None
    )

    one_hot = np.eye(n_classes, dtype="float32")[y_train]
    history, best, best_weights = [], None, None
    for epoch in range(1, epochs + 1):
        started = time.time()
        trained = model.fit(
            x_train,
            one_hot,
            sample_weight=sample_weight,
            batch_size=config["batch_size"],
            epochs=epoch,
            initial_epoch=epoch - 1,
            shuffle=True,
            verbose=0,
        )
        val_probs = np.asarray(model.predict(x_val, batch_size=512, verbose=0))
        metrics = {
            "epoch": epoch,
            "loss": float(trained.history["loss"][-1]),
            **validation_metrics(val_probs, y_val),
        }
        history.append(metrics)
        if best is None or metrics["val_macro_f1"] > best["val_macro_f1"]:
            best, best_weights = metrics, model.get_weights()
        if plateau:
            plateau.step(metrics["val_macro_f1"])
        metrics["stop_reason"] = _stop_reason(
            epoch=epoch,
            epochs=epochs,
            epochs_since_best=epoch - best["epoch"],
            patience=patience,
            deadline=deadline,
            epoch_seconds=time.time() - started,
        )
        if on_epoch:
            on_epoch(epoch, metrics, val_probs)
        if metrics["stop_reason"]:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    return FitResult(
        best_epoch=best["epoch"] if best else 0, best_metrics=best or {}, history=history
    )


# Why `fit` ended after an epoch: its last epoch, no better score for `patience` epochs, or no
# time left before the deadline for another epoch as long as the last.
STOP_REASONS = ("max_epochs", "patience", "deadline")


def _stop_reason(
    *,
    epoch: int,
    epochs: int,
    epochs_since_best: int,
    patience: int,
    deadline: float | None,
    epoch_seconds: float,
) -> str | None:
    if epoch >= epochs:
        return "max_epochs"
    if patience and epochs_since_best >= patience:
        return "patience"
    if deadline is not None and time.time() + epoch_seconds > deadline:
        return "deadline"
    return None


# ----------------------------------------------------------------------------- closed-form fit
def _linear_gram_layers(model):
    """(n-gram embedding, output layer) when `model` is of a family with a closed-form solver and
    computes softmax(W2 [sum_i w_i E[g_i], features] + b) (the features only if it takes them),
    with nothing else that trains (no head units, no feature layer); else None."""
    spec = FAMILIES.get(model.name)
    if spec is None or spec.solver is None:
        return None
    layers = model.get_layer(GRAM_EMBEDDING), model.get_layer(OUTPUT)
    linear = {id(weight) for layer in layers for weight in layer.trainable_weights}
    if {id(weight) for weight in model.trainable_weights} != linear:
        return None
    return layers


def fit_distilled(
    model, *, train: dict, soft_targets: np.ndarray, val: dict, y_val, config: dict
) -> FitResult:
    """Fit a linear n-gram model (a family with the lbfgs solver: tfidf, tfidf_fusion, no head) to
    a teacher's probabilities `soft_targets` [n, classes] on the rows `train`, in closed form:
    scikit-learn's LogisticRegression on every row repeated once per class, weighted by the
    teacher's probability of that class, which minimises the cross-entropy to the soft targets
    exactly. Validation is scored against the true labels `y_val`, as `fit` does."""
    config = training_config(config)
    linear = _linear_gram_layers(model)
    if linear is None or FAMILIES[model.name].solver != "lbfgs":
        families = [name for name, spec in FAMILIES.items() if spec.solver == "lbfgs"]
        raise ValueError(
            f"a distilled student is a linear n-gram model (family "
            f"{' or '.join(families)}, no head); model {model.name!r} is not one"
        )
    soft = np.asarray(soft_targets, dtype=np.float64)
    return _fit_linear(
        model,
        linear,
        lambda x, _, cfg: _soft_logistic_regression(x, soft, cfg),
        train=train,
        y_train=soft.argmax(axis=1),
        val=val,
        y_val=y_val,
        config=config,
        on_epoch=None,
        every_class=False,
    )


def _soft_logistic_regression(x_train, soft: np.ndarray, config: dict):
    """(coef, intercept, training probabilities) of LogisticRegression (lbfgs, L2 with `C`) fitted
    to soft targets: row i appears once per class c, weighted soft[i, c] (weights of a row sum to
    1, so C means what it means for hard labels)."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    n_rows, n_classes = soft.shape
    rows = sparse.vstack([x_train] * n_classes, format="csr")
    classes = np.repeat(np.arange(n_classes), n_rows)
    weights = soft.T.reshape(-1)
    used = weights > 0
    regression = LogisticRegression(C=float(config["C"]), max_iter=1000).fit(
        rows[used], classes[used], sample_weight=weights[used]
    )
    return regression.coef_, regression.intercept_, regression.predict_proba(x_train)


def _fit_linear(
    model,
    layers,
    solve: Callable,
    *,
    train,
    y_train,
    val,
    y_val,
    config,
    on_epoch,
    every_class: bool = True,
) -> FitResult:
    """Fit a linear classifier in closed form on the sparse TF-IDF rows (and the scaled features
    beside them, if the model takes them) and write it into the model: E[:, :C] = n-gram coef.T,
    W2 = [I; 0; feature coef.T], b = intercept, so the model's probabilities are the solver's."""
    embedding, output = layers
    n_buckets, dim = embedding.input_dim, embedding.output_dim
    n_classes = model.output_shape[-1]
    if dim < n_classes:
        raise ValueError(f"a closed-form solver needs embed_dim >= {n_classes} classes (got {dim})")
    y_train = np.asarray(y_train, dtype=np.int64)
    present = np.unique(y_train)
    if every_class and len(present) != n_classes:
        raise ValueError(f"the training rows hold {len(present)} of the {n_classes} classes")
    x_train = _regression_rows(model, train, n_buckets)
    coef, intercept, train_probs = solve(x_train, y_train, config)
    if coef.shape[0] == 1:  # scikit-learn keeps one row for two classes: logits (0, x.w + b)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    # The same shift of every class's logit leaves the softmax as it is; centring each weight on
    # its mean over the classes keeps the float32 logits small (naive Bayes' are large and close).
    coef, intercept = coef - coef.mean(axis=0), intercept - intercept.mean()
    table = np.zeros((n_buckets, dim), dtype="float32")
    table[:, :n_classes] = coef[:, :n_buckets].T
    kernel = np.zeros((dim + coef.shape[1] - n_buckets, n_classes), dtype="float32")
    kernel[:n_classes] = np.eye(n_classes)
    kernel[dim:] = coef[:, n_buckets:].T
    embedding.set_weights([table])
    output.set_weights([kernel, intercept.astype("float32")])

    val_probs = np.asarray(model.predict(_model_inputs(model, val), batch_size=512, verbose=0))
    loss = float(-np.mean(np.log(np.clip(train_probs[np.arange(len(y_train)), y_train], 1e-12, 1))))
    metrics = {
        "epoch": 1,
        "loss": loss,
        **validation_metrics(val_probs, y_val),
        "stop_reason": "max_epochs",
    }  # the solve is complete: nothing more to train
    if on_epoch:
        on_epoch(1, metrics, val_probs)
    return FitResult(best_epoch=1, best_metrics=metrics, history=[metrics])


def _logistic_regression(x_train, y_train, config: dict):
    """(coef, intercept, training probabilities) of scikit-learn's LogisticRegression (lbfgs, L2
    with `C`)."""
    from sklearn.linear_model import LogisticRegression

    if config["imbalance"] not in ("none", "balanced"):
        raise ValueError(
            f"solver 'lbfgs' supports imbalance none or balanced, not {config['imbalance']!r}"
        )
    regression = LogisticRegression(
        C=float(config["C"]),
        max_iter=1000,
        class_weight="balanced" if config["imbalance"] == "balanced" else None,
    ).fit(x_train, y_train)
    return regression.coef_, regression.intercept_, regression.predict_proba(x_train)


def _complement_nb(x_train, y_train, config: dict):
    """(coef, intercept, training probabilities) of scikit-learn's ComplementNB with `alpha`
    (Rennie et al. 2003): its joint log-likelihood is x . feature_log_prob, linear in the n-grams.
    It weighs each class by the counts of all the others, so imbalance needs no class weights."""
    from sklearn.naive_bayes import ComplementNB

    if x_train.min() < 0:
        raise ValueError(
            "solver 'complement_nb' needs non-negative inputs: n-grams only, no "
            "scaled features (family tfidf_nb)"
        )
    bayes = ComplementNB(alpha=float(config["alpha"])).fit(x_train, y_train)
    return bayes.feature_log_prob_, np.zeros(len(bayes.classes_)), bayes.predict_proba(x_train)


LINEAR_SOLVERS = {"lbfgs": _logistic_regression, "complement_nb": _complement_nb}


def _regression_rows(model, arrays: dict, n_buckets: int):
    """The regression's rows: the sparse TF-IDF n-grams, then the features if the model takes them."""
    grams = _sparse_grams(arrays, n_buckets)
    if "features" not in [t.name for t in model.inputs]:
        return grams
    from scipy import sparse

    features = np.asarray(arrays["features"], dtype=np.float64)
    return sparse.hstack([grams, sparse.csr_matrix(features)], format="csr")


def _sparse_grams(arrays: dict, n_buckets: int):
    """The TF-IDF rows as a scipy CSR matrix [n, n_buckets] from `grams`/`gram_weights`."""
    from scipy import sparse

    grams, weights = np.asarray(arrays["grams"]), np.asarray(arrays["gram_weights"])
    rows, cols = np.nonzero(weights)
    return sparse.csr_matrix(
        (weights[rows, cols], (rows, grams[rows, cols])), shape=(len(grams), n_buckets)
    )


def _model_inputs(model, arrays: dict) -> dict:
    missing = [t.name for t in model.inputs if t.name not in arrays]
    if missing:
        raise ValueError(
            f"model {model.name!r} needs input(s) {', '.join(missing)}; "
            f"got {', '.join(arrays) or 'none'}"
        )
    return {t.name: np.asarray(arrays[t.name]) for t in model.inputs}
