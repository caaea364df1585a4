"""The trial schedulers (`--scheduler`) and search algorithms (`--search`) by name.

Each factory imports Ray inside, so the command line reads the names without Ray; the runner
calls them with the run's `TuneOptions` (its --max-epochs resolved) and the training rows of one
epoch. Time is counted in training rows seen (`TIME_ATTR`), not epochs, so that a rung means the
same on 4k rows as on 100k: ASHA judges no trial before it has seen --grace-rows rows, and PBT
replaces none before then either.
"""

from __future__ import annotations

from collections.abc import Callable

from voxpop.data.errors import VoxpopError
from voxpop.tune_spaces.options import TuneOptions
from voxpop.tune_spaces.spaces import resolve_space

METRIC, MODE = "val_macro_f1", "max"
TIME_ATTR = "rows_seen"  # training rows seen so far: epochs x the rows of one epoch


# --------------------------------------------------------------------------- schedulers
def _asha(options: TuneOptions, *, rows_per_epoch: int):
    from ray.tune.schedulers import ASHAScheduler

    max_t = options.max_epochs * rows_per_epoch
    # A grace beyond the last epoch leaves no rung: every trial runs to its end (or patience).
    return ASHAScheduler(
        time_attr=TIME_ATTR,
        max_t=max_t,
        grace_period=min(options.grace_rows, max_t),
        reduction_factor=2,
    )


def _hyperband(options: TuneOptions, *, rows_per_epoch: int):
    from ray.tune.schedulers import HyperBandScheduler

    # Ray's HyperBand has no grace period: its brackets span max_t down to one unit, so its unit
    # is one epoch's rows and its first rung comes after an epoch (use asha to set a grace).
    return HyperBandScheduler(time_attr="training_iteration", max_t=options.max_epochs)


def _pbt(options: TuneOptions, *, rows_per_epoch: int):
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    # Mutate the learning rate of the (single) space; restored trials recompile with it.
    (space_name,) = options.spaces
    name = resolve_space(space_name)[0]
    return PopulationBasedTraining(
        time_attr=TIME_ATTR,
        perturbation_interval=options.grace_rows,
        hyperparam_mutations={"space": {name: {"learning_rate": tune.loguniform(1e-4, 1e-2)}}},
    )


def _fifo(options: TuneOptions, *, rows_per_epoch: int):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


SCHEDULERS: dict[str, Callable] = {
    "asha": _asha,
    "hyperband": _hyperband,
    "pbt": _pbt,
    "fifo": _fifo,
}


# --------------------------------------------------------------------------- searches
def _random(spaces: dict[str, dict], options: TuneOptions):
    """`(param_space, search_alg, num_samples)`: `samples` random trials of every space.

    The concurrency limit lives in the search algorithm: Tune ignores `max_concurrent_trials`
    for a BasicVariantGenerator."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    param_space = {
        "space": tune.grid_search([{name: space} for name, space in spaces.items()]),
        "seed": options.seed,
    }
    search = BasicVariantGenerator(
        random_state=options.seed, max_concurrent=options.max_concurrent or 0
    )
    return param_space, search, options.samples


def _optuna(spaces: dict[str, dict], options: TuneOptions):
    """`(param_space, search_alg, num_samples)`: Optuna's TPE also picks the space."""
    from ray.tune.search import ConcurrencyLimiter

    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise VoxpopError("--search optuna needs the optuna package (pip install optuna)") from None
    search = OptunaSearch(
        space=_define_by_run(spaces, seed=options.seed), metric=METRIC, mode=MODE, seed=options.seed
    )
    if options.max_concurrent:
        search = ConcurrencyLimiter(search, max_concurrent=options.max_concurrent)
    return None, search, options.samples * len(spaces)


def _define_by_run(spaces: dict[str, dict], *, seed: int) -> Callable:
    """An Optuna define-by-run space whose params unflatten to `{"space": {name: params}}`."""
    from ray.tune.search import sample

    suggest = {
        sample.Categorical: lambda trial, key, d: trial.suggest_categorical(key, d.categories),
        sample.Float: lambda trial, key, d: trial.suggest_float(
            key, d.lower, d.upper, log=isinstance(d.get_sampler(), sample.LogUniform)
        ),
        sample.Integer: lambda trial, key, d: trial.suggest_int(
            key,
            d.lower,
            d.upper - (0 if isinstance(d.get_sampler(), sample.Quantized) else 1),
            step=getattr(d.get_sampler(), "q", 1),
        ),
    }

    def space(trial) -> dict:
        name = trial.suggest_categorical("space_name", list(spaces))
        constants = {"seed": seed}
        for key, value in spaces[name].items():
            flat_key = f"space/{name}/{key}"
            if isinstance(value, sample.Domain):
                suggest[type(value)](trial, flat_key, value)
            else:
                constants[flat_key] = value
        return constants

    return space


SEARCHES: dict[str, Callable] = {"random": _random, "optuna": _optuna}


# --------------------------------------------------------------------------- k-fold bagging
def bagged_search(spaces: dict[str, dict], options: TuneOptions):
    """`(param_space, search_alg, num_samples)` of a bagged run (`--folds K`): `samples`
    configurations of every space, each drawn once here (seeded) and trained as K fold trials,
    listed side by side (a configuration's folds run together when the cluster has room).

    Drawn in the driver, not by Tune: a grid over the folds would make Tune draw every random
    key again for each fold, and the K fold models of one bag must share one configuration."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    grid = [
        {**config, "fold": fold}
        for config in bagged_configs(spaces, options)
        for fold in range(options.folds)
    ]
    search = BasicVariantGenerator(
        random_state=options.seed, max_concurrent=options.max_concurrent or 0
    )
    return {"bag": tune.grid_search(grid), "seed": options.seed}, search, 1


def bagged_configs(spaces: dict[str, dict], options: TuneOptions) -> list[dict]:
    """`[{"config_id": "c000", "space": {name: params}}, ...]`: `samples` draws of each space."""
    import numpy as np
    from ray.tune.search.sample import Domain

    random_state = np.random.RandomState(options.seed)
    drawn = [
        {
            name: {
                key: _plain(value.sample(random_state=random_state))
                if isinstance(value, Domain)
                else value
                for key, value in space.items()
            }
        }
        for name, space in spaces.items()
        for _ in range(options.samples)
    ]
    return [{"config_id": f"c{index:03d}", "space": space} for index, space in enumerate(drawn)]


def _plain(value):
    """A numpy scalar as its Python value (the config goes into metrics.json)."""
    return value.item() if hasattr(value, "item") else value
