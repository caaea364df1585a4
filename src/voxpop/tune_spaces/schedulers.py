"""The trial schedulers (`--scheduler`) and search algorithms (`--search`) by name.

Each factory imports Ray inside, so the command line reads the names without Ray; the runner
calls them with the run's `TuneOptions`.
"""

from __future__ import annotations

from collections.abc import Callable

from voxpop.data.errors import VoxpopError
from voxpop.tune_spaces.options import TuneOptions
from voxpop.tune_spaces.spaces import resolve_space

METRIC, MODE = "val_macro_f1", "max"
TIME_ATTR = "training_iteration"  # one report per epoch


# --------------------------------------------------------------------------- schedulers
def _asha(options: TuneOptions):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr=TIME_ATTR, max_t=options.max_epochs, grace_period=1,
                         reduction_factor=2)


def _hyperband(options: TuneOptions):
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(time_attr=TIME_ATTR, max_t=options.max_epochs)


def _pbt(options: TuneOptions):
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    # Mutate the learning rate of the (single) space; restored trials recompile with it.
    (space_name,) = options.spaces
    name = resolve_space(space_name)[0]
    return PopulationBasedTraining(
        time_attr=TIME_ATTR, perturbation_interval=1,
        hyperparam_mutations={"space": {name: {"learning_rate": tune.loguniform(1e-4, 1e-2)}}},
    )


def _fifo(options: TuneOptions):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


SCHEDULERS: dict[str, Callable] = {"asha": _asha, "hyperband": _hyperband, "pbt": _pbt,
                                   "fifo": _fifo}


# --------------------------------------------------------------------------- searches
def _random(spaces: dict[str, dict], options: TuneOptions):
    """`(param_space, search_alg, num_samples)`: `samples` random trials of every space.

    The concurrency limit lives in the search algorithm: Tune ignores `max_concurrent_trials`
    for a BasicVariantGenerator."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    param_space = {"space": tune.grid_search([{name: space} for name, space in spaces.items()]),
                   "seed": options.seed}
    search = BasicVariantGenerator(random_state=options.seed,
                                   max_concurrent=options.max_concurrent or 0)
    return param_space, search, options.samples


def _optuna(spaces: dict[str, dict], options: TuneOptions):
    """`(param_space, search_alg, num_samples)`: Optuna's TPE also picks the space."""
    from ray.tune.search import ConcurrencyLimiter

    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise VoxpopError("--search optuna needs the optuna package (pip install optuna)") from None
    search = OptunaSearch(space=_define_by_run(spaces, seed=options.seed), metric=METRIC,
                          mode=MODE, seed=options.seed)
    if options.max_concurrent:
        search = ConcurrencyLimiter(search, max_concurrent=options.max_concurrent)
    return None, search, options.samples * len(spaces)


def _define_by_run(spaces: dict[str, dict], *, seed: int) -> Callable:
    """An Optuna define-by-run space whose params unflatten to `{"space": {name: params}}`."""
    from ray.tune.search import sample

    suggest = {
        sample.Categorical: lambda trial, key, d: trial.suggest_categorical(key, d.categories),
        sample.Float: lambda trial, key, d: trial.suggest_float(
            key, d.lower, d.upper, log=isinstance(d.get_sampler(), sample.LogUniform)),
        sample.Integer: lambda trial, key, d: trial.suggest_int(
            key, d.lower, d.upper - (0 if isinstance(d.get_sampler(), sample.Quantized) else 1),
            step=getattr(d.get_sampler(), "q", 1)),
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
