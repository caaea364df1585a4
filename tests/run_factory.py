"""Runs trained without Ray, for tests and benches that need real checkpoints fast: each trial
is a real Keras model fitted on the fixture run's data, its checkpoints written where Ray Tune
would put them (`voxpop.data.rundir.add_checkpoint`)."""

from __future__ import annotations

from pathlib import Path


def train_trials(run: Path, data, trials: dict, *, seed: int = 0) -> None:
    """Fit each trial of `trials` ({trial_id: (family, config, epochs)}) on `data` (the TrialData
    of `write_fixture_run`) and write a checkpoint per epoch into `run`. `seed` is added to each
    config's own seed for the model's initial weights (a bench's repeated runs)."""
    from voxpop.data.rundir import add_checkpoint
    from voxpop.models import build
    from voxpop.models.training import fit

    for trial_id, (family, config, epochs) in trials.items():
        model = build(
            family,
            {**config, "seed": config["seed"] + seed} if seed else config,
            n_tokens=data.n_tokens,
            n_classes=len(data.labels),
            n_features=data.n_features,
            n_buckets=data.n_buckets,
        )

        def write_checkpoint(
            epoch, metrics, val_probs, trial_id=trial_id, family=family, config=config, model=model
        ):
            add_checkpoint(
                run,
                trial_id=trial_id,
                index=epoch - 1,
                model=model,
                val_probs=val_probs,
                metrics={"family": family, "config": config, "node_id": "local", **metrics},
            )

        fit(
            model,
            train=data.train,
            y_train=data.y_train,
            val=data.val,
            y_val=data.y_val,
            config=config,
            epochs=epochs,
            on_epoch=write_checkpoint,
        )
