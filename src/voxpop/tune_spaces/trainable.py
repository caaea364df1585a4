"""The Ray Tune function trainable: build (or restore) one model, train it, report every epoch.

A trial's config is `{"space": {SPACE_NAME: params}, "seed": S}` (params hold `family` and the
model and training keys), so one run can sample several spaces; a fold trial of a bagged run
(`--folds K`) has `{"bag": {"config_id": ID, "fold": F, "space": {SPACE_NAME: params}}, "seed": S}`
and trains on the out-of-fold rows outside fold F, scored on those inside it. Each epoch writes a
checkpoint directory (`voxpop.data.rundir.write_checkpoint`: the model, its metrics and its
validation probabilities) and reports it to Tune with `rows_seen`, the training rows seen so far
(the schedulers' time); a retried or PBT-exploited trial restores from `ray.tune.get_checkpoint()`
and continues the epoch count. A trial ends early after `patience` epochs without a better val
macro-F1 (the best epoch's checkpoint is kept: checkpoints are ranked by it), or when another
epoch would not fit its time (`deadline`, from --time-budget).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from voxpop.data.rundir import TrialData, read_checkpoint, write_checkpoint
from voxpop.data.vectors import is_source
from voxpop.tune_spaces.embeddings import KEY as EMBEDDINGS_KEY

# Test hook, set only by test space files: raise once, right after the first reported epoch of a
# trial that was not restored from a checkpoint, so a retry has a checkpoint to restore from.
FAULT_KEY = "fail_on_first_attempt"


class InjectedFailure(RuntimeError):
    """The deliberate failure asked for by `fail_on_first_attempt: true`."""


class NoGpuForTensorFlow(RuntimeError):
    """Ray gave the trial a GPU, but TensorFlow sees none: it would train on the CPU unnoticed."""


def check_tensorflow_sees_the_gpus() -> None:
    """NoGpuForTensorFlow where Ray assigned this trial GPUs (--gpus-per-trial) and TensorFlow
    lists none (a CPU-only TensorFlow, or no CUDA libraries on the node)."""
    import ray
    import tensorflow as tf

    assigned = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    if assigned and not tf.config.list_physical_devices("GPU"):
        raise NoGpuForTensorFlow(
            f"Ray gave this trial GPU {', '.join(map(str, assigned))} (--gpus-per-trial) but "
            "TensorFlow sees no GPU here; install voxpop[gpu] (tensorflow[and-cuda]) on the GPU "
            "nodes, or use --gpus-per-trial 0"
        )


def trial_params(config: dict) -> tuple[str, dict]:
    """`(space name, params)` from a trial config (see the module docstring)."""
    space = config["bag"]["space"] if "bag" in config else config["space"]
    ((space_name, params),) = space.items()
    return space_name, {**dict(params), "seed": params.get("seed", config.get("seed"))}


def trial_bag(config: dict) -> dict:
    """`{"config_id": ID, "fold": F}` of a bagged run's fold trial; `{}` for any other trial."""
    bag = config.get("bag")
    return {"config_id": bag["config_id"], "fold": int(bag["fold"])} if bag else {}


def trial_deadline(
    *, started: float, trial_seconds: float | None, job_deadline: float | None
) -> float | None:
    """When the trial must end: its share of --time-budget after it started, and never after
    the job's end; None without a budget."""
    ends = [end for end in (trial_seconds and started + trial_seconds, job_deadline) if end]
    return min(ends) if ends else None


class EpochReporter:
    """The `on_epoch` callback of `training.fit`: writes one checkpoint and reports it to Tune."""

    def __init__(
        self,
        *,
        model,
        space_name: str,
        params: dict,
        labels: list[str],
        first_epoch: int,
        fail_after_first: bool,
        trial_started: float,
        rows_per_epoch: int,
        bag: dict,
    ):
        import ray

        context = ray.get_runtime_context()
        self.model = model
        self.space_name = space_name
        self.params = params
        self.labels = labels
        self.first_epoch = first_epoch
        self.fail_after_first = fail_after_first
        self.trial_id = ray.tune.get_context().get_trial_id()
        self.node_id = context.get_node_id()
        self.gpu_ids = [str(gpu) for gpu in context.get_accelerator_ids().get("GPU", [])]
        self.trial_started = trial_started
        self.rows_per_epoch = rows_per_epoch
        self.bag = bag
        self.epoch_started = time.time()

    def __call__(self, epoch: int, metrics: dict, val_probs: np.ndarray) -> None:
        import ray

        record = self._record(epoch, metrics)
        with tempfile.TemporaryDirectory(prefix="voxpop-ckpt-") as tmp:
            write_checkpoint(Path(tmp), model=self.model, metrics=record, val_probs=val_probs)
            ray.tune.report(
                {
                    key: record[key]
                    for key in (
                        "space",
                        "family",
                        "epoch",
                        "rows_seen",
                        "loss",
                        "val_loss",
                        "val_accuracy",
                        "val_macro_f1",
                        "stop_reason",
                        "restored_from",
                        *self.bag,
                    )
                },
                checkpoint=ray.tune.Checkpoint.from_directory(str(tmp)),
            )
        self.epoch_started = time.time()
        if self.fail_after_first:
            raise InjectedFailure(f"{FAULT_KEY}: deliberate failure after epoch {record['epoch']}")

    def _record(self, epoch: int, metrics: dict) -> dict:
        per_class = metrics["val_per_class_f1"]
        if not isinstance(per_class, dict):
            per_class = dict(zip(self.labels, per_class, strict=True))
        epochs_done = self.first_epoch + int(epoch)
        return {
            "trial_id": self.trial_id,
            "space": self.space_name,
            "family": self.params["family"],
            "config": self.params,
            **self.bag,
            "epoch": epochs_done,
            "rows_seen": epochs_done * self.rows_per_epoch,
            **{
                key: float(metrics[key])
                for key in ("loss", "val_loss", "val_accuracy", "val_macro_f1")
            },
            "stop_reason": metrics.get("stop_reason"),
            "val_per_class_f1": {str(k): float(v) for k, v in per_class.items()},
            "node_id": self.node_id,
            "gpu_ids": self.gpu_ids,
            "restored_from": self.first_epoch,
            "trial_started": self.trial_started,
            "started": self.epoch_started,
            "ended": time.time(),
        }


def _restore(checkpoint):
    """`(model, epochs done)` from a reported checkpoint."""
    from voxpop.models import load_model

    with checkpoint.as_directory() as directory:
        stored = read_checkpoint(directory)
        return load_model(stored.model_path), stored.metrics["epoch"]


def _pretrained(params: dict, data: TrialData) -> np.ndarray | None:
    """The vectors the trial's `embeddings` names, as the driver matched them (None: none). The
    params are made to say what the model is: its embed_dim is the vectors' width, and a family
    that reads n-grams has no token embedding to start from them."""
    from voxpop.models import FAMILIES

    source = params.get(EMBEDDINGS_KEY)
    if not is_source(source):
        return None
    if FAMILIES[params["family"]].reads != "tokens":
        params[EMBEDDINGS_KEY] = None
        return None
    if source not in data.vectors:
        raise ValueError(
            f"embeddings {source!r} were not matched to the vocabulary by the "
            f"driver (matched: {', '.join(data.vectors) or 'none'})"
        )
    matched = data.vectors[source]
    params["embed_dim"] = matched.dim
    return matched.matrix


def train_trial(
    config: dict,
    *,
    data: TrialData,
    max_epochs: int,
    threads: int,
    log_file: str | None = None,
    patience: int = 0,
    trial_seconds: float | None = None,
    job_deadline: float | None = None,
) -> None:
    """Train one trial on the driver's prepared arrays (`data`, from Ray's object store; never
    test rows). Its process's own output (TensorFlow, Keras, Ray) goes to `log_file`. It stops
    after `patience` epochs without a better val macro-F1 (0: never), and before an epoch that
    would end after `trial_seconds` from its start or after `job_deadline` (see
    `trial_deadline`)."""
    trial_started = time.time()
    import ray

    from voxpop.models import runtime
    from voxpop.tune_spaces.logs import send_output_to

    send_output_to(log_file)  # before TensorFlow starts and writes to stderr
    print(
        f"--- trial {ray.tune.get_context().get_trial_id()} (process {os.getpid()}) ---", flush=True
    )

    space_name, params = trial_params(config)
    # TF threads follow the trial's CPUs, so concurrent trials do not oversubscribe the cores.
    runtime.configure(threads=threads, seed=params.get("seed"))
    check_tensorflow_sees_the_gpus()

    import keras

    from voxpop.models import build, training

    keras.backend.clear_session()  # a reused worker still holds the previous trial's graph

    fail_once = bool(params.pop(FAULT_KEY, False))
    vectors = _pretrained(params, data)  # also on restore: it settles the recorded params
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        model, done = _restore(checkpoint)
    else:
        model, done = (
            build(
                params["family"],
                params,
                n_tokens=data.n_tokens,
                n_classes=len(data.labels),
                n_features=data.n_features,
                n_buckets=data.n_buckets,
                embeddings=vectors,
                sentence_dim=data.sentence_dim,
            ),
            0,
        )
    if done >= max_epochs:
        return
    bag = trial_bag(config)
    train, y_train, val, y_val = data.for_fold(bag.get("fold"))
    reporter = EpochReporter(
        model=model,
        space_name=space_name,
        params=params,
        labels=data.labels,
        first_epoch=done,
        fail_after_first=fail_once and checkpoint is None,
        trial_started=trial_started,
        rows_per_epoch=len(y_train),
        bag={**bag, "folds": data.n_folds} if bag else {},
    )
    training.fit(
        model,
        train=train,
        y_train=y_train,
        val=val,
        y_val=y_val,
        config=params,
        epochs=max_epochs - done,
        on_epoch=reporter,
        patience=patience,
        deadline=trial_deadline(
            started=trial_started, trial_seconds=trial_seconds, job_deadline=job_deadline
        ),
    )
