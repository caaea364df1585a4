"""Runs trained without Ray, for tests and benches that need real checkpoints fast: each trial
is a real Keras model fitted on the fixture run's data, its checkpoints written where Ray Tune
would put them (`voxpop.data.rundir.add_checkpoint`)."""

from __future__ import annotations

from pathlib import Path


def _fit_trial(run: Path, data, *, trial_id, family, config, epochs, seed, split, metrics):
    """Build one trial's model, fit it on `split` ((train, y_train, val, y_val)) and write a
    checkpoint per epoch under `trial_id`, its metrics carrying `metrics` beside the epoch's."""
    from voxpop.data.rundir import add_checkpoint
    from voxpop.models import build
    from voxpop.models.training import fit

    model = build(
        family,
        {**config, "seed": config["seed"] + seed} if seed else config,
        n_tokens=data.n_tokens,
        n_classes=len(data.labels),
        n_features=data.n_features,
        n_buckets=data.n_buckets,
    )

    def write_checkpoint(epoch, epoch_metrics, val_probs):
        add_checkpoint(
            run,
            trial_id=trial_id,
            index=epoch - 1,
            model=model,
            val_probs=val_probs,
            metrics={**metrics, "family": family, "config": config, "node_id": "local"}
            | epoch_metrics,
        )

    train, y_train, val, y_val = split
    fit(
        model,
        train=train,
        y_train=y_train,
        val=val,
        y_val=y_val,
        config=config,
        epochs=epochs,
        on_epoch=write_checkpoint,
    )


def train_trials(run: Path, data, trials: dict, *, seed: int = 0) -> None:
    """Fit each trial of `trials` ({trial_id: (family, config, epochs)}) on `data` (the TrialData
    of `write_fixture_run`) and write a checkpoint per epoch into `run`. `seed` is added to each
    config's own seed for the model's initial weights (a bench's repeated runs)."""
    for trial_id, (family, config, epochs) in trials.items():
        _fit_trial(
            run,
            data,
            trial_id=trial_id,
            family=family,
            config=config,
            epochs=epochs,
            seed=seed,
            split=(data.train, data.y_train, data.val, data.y_val),
            metrics={},
        )


def train_bags(run: Path, data, configs: dict, *, seed: int = 0) -> list[str]:
    """A bagged run's trials as `voxpop tune --folds K` makes them: each configuration of
    `configs` ({config_id: (family, config, epochs)}) fitted once per fold of `data` (the
    TrialData of `write_fixture_run(..., folds=K)`) on the out-of-fold rows outside the fold,
    scored on those inside it, a checkpoint per epoch; then the run's bags written
    (`write_bags`). Returns the complete bags' config ids."""
    from voxpop.data.rundir import write_bags

    for config_id, (family, config, epochs) in configs.items():
        for fold in range(data.n_folds):
            _fit_trial(
                run,
                data,
                trial_id=f"{config_id}_f{fold}",
                family=family,
                config=config,
                epochs=epochs,
                seed=seed,
                split=data.for_fold(fold),
                metrics={
                    "config_id": config_id,
                    "fold": fold,
                    "folds": data.n_folds,
                    "space": family,
                },
            )
    return write_bags(run)
