"""Running (or resuming) a tuning job with Ray Tune, and its leaderboard.

`run_tuning(TuneOptions(...))` prepares the data once in the driver, writes `STORAGE/NAME/voxpop/`,
starts or joins Ray, runs the trials with the chosen search algorithm and scheduler, and returns
a `TuneOutcome` whose leaderboard is sorted by best validation macro-F1.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from voxpop.data import Preprocessor, rundir
from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import TrialData
from voxpop.data.storage import Location, check_writable, locate
from voxpop.tune_spaces.prepare import TableSource, prepare_run_data
from voxpop.tune_spaces.space_check import check_space
from voxpop.tune_spaces.spaces import resolve_space

METRIC, MODE = "val_macro_f1", "max"
TIME_ATTR = "training_iteration"  # one report per epoch
_PREPROCESSOR = inspect.signature(Preprocessor).parameters  # its defaults are the tuner's


@dataclass(frozen=True)
class TuneOptions:
    """Everything `voxpop tune` accepts; see `voxpop tune --help` for each option."""

    data: Path
    text_col: str = "text"
    label_col: str = "label"
    feature_cols: tuple[str, ...] = ()
    val_file: Path | None = None
    test_file: Path | None = None
    spaces: tuple[str, ...] = ("bilstm",)
    samples: int = 4
    max_epochs: int = 5
    scheduler: str = "asha"
    search: str = "random"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    address: str | None = None
    storage: str | Path = "runs"  # a local folder or a pyarrow file-system URI (s3://bucket/runs)
    name: str = "tune"
    resume: bool = False
    max_failures: int = 0
    keep_checkpoints: int = 2
    seed: int = 42
    num_cpus: int | None = None  # embedded Ray only: CPUs to offer (default: all cores)
    num_gpus: float | None = None  # embedded Ray only: GPUs to offer (default: detected)
    # tokens per text; None: the Preprocessor's percentile of the training texts' lengths
    max_len: int | None = _PREPROCESSOR["max_len"].default
    max_tokens: int = _PREPROCESSOR["max_tokens"].default  # vocabulary size, PAD and OOV included
    min_freq: int = _PREPROCESSOR["min_freq"].default  # training occurrences a token needs

    def to_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class TuneOutcome:
    """What a run produced: its directory, the leaderboard (best first), and the trial errors."""

    run_dir: Location  # prints as the local path or the URI
    leaderboard: list[dict]
    errors: list[str] = field(default_factory=list)

    @property
    def all_failed(self) -> bool:
        return bool(self.leaderboard) and all(row["error"] for row in self.leaderboard)

    @property
    def incomplete(self) -> bool:
        """Some trials never started (the run was interrupted): `--resume` continues it."""
        return any(row["state"] == "not started" for row in self.leaderboard)

    @property
    def export_command(self) -> str:
        return f"voxpop export {self.run_dir} --out {self.run_dir.name}-bundle"


# --------------------------------------------------------------------------- schedulers, searches
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


# --------------------------------------------------------------------------- validation
def validate(options: TuneOptions) -> dict[str, dict]:
    """Check the options without touching Ray; return the resolved spaces by name."""
    choices = {"--scheduler": (options.scheduler, SCHEDULERS),
               "--search": (options.search, SEARCHES)}
    for flag, (value, registry) in choices.items():
        if value not in registry:
            raise VoxpopError(f"{flag} {value!r} is not valid (valid: {', '.join(registry)})")
    positive = {"--samples": options.samples, "--max-epochs": options.max_epochs,
                "--cpus-per-trial": options.cpus_per_trial,
                "--keep-checkpoints": options.keep_checkpoints}
    for flag, value in positive.items():
        if not value > 0:
            raise VoxpopError(f"{flag} must be positive (got {value})")
    if options.gpus_per_trial < 0 or options.max_failures < 0:
        raise VoxpopError("--gpus-per-trial and --max-failures must not be negative")
    if options.num_cpus is not None and options.num_cpus < 1:
        raise VoxpopError(f"--num-cpus must be at least 1 (got {options.num_cpus})")
    if options.num_gpus is not None and options.num_gpus < 0:
        raise VoxpopError(f"--num-gpus must not be negative (got {options.num_gpus})")
    if options.max_concurrent is not None and options.max_concurrent < 1:
        raise VoxpopError(f"--max-concurrent must be at least 1 (got {options.max_concurrent})")
    if not options.spaces:
        raise VoxpopError("--space: give at least one space (see `voxpop spaces`)")
    if options.scheduler == "pbt" and (len(options.spaces) != 1 or options.search != "random"):
        raise VoxpopError("--scheduler pbt needs exactly one --space and --search random")
    spaces = dict(resolve_space(ref) for ref in options.spaces)
    if len(spaces) != len(options.spaces):
        raise VoxpopError(f"--space: a space is named twice ({', '.join(options.spaces)})")
    for ref, space in zip(options.spaces, spaces.values()):
        check_space(ref, space)
    return spaces


# --------------------------------------------------------------------------- running
def run_tuning(options: TuneOptions, *,
               on_ready: Callable[[str], None] | None = None) -> TuneOutcome:
    """Prepare the data (or reload it with `resume`), run the trials, return the outcome.

    `on_ready(message)` is called with a status line before the trials start.
    """
    check_run_name(options.name)
    run_dir = locate(options.storage).child(options.name)
    _check_run_dir(options, run_dir)
    if options.resume:
        options = _with_stored_trial_options(options, run_dir)
    spaces = validate(options)

    from voxpop.tune_spaces.cluster import check_resources, start_ray, stop_ray

    started = start_ray(address=options.address, num_cpus=options.num_cpus,
                        num_gpus=options.num_gpus)
    try:
        resources = check_resources(cpus_per_trial=options.cpus_per_trial,
                                    gpus_per_trial=options.gpus_per_trial)
        data = _data_for(options, run_dir)
        if on_ready:
            on_ready(f"Ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
                     f"run directory {run_dir}")
        try:
            grid = _tuner(options, spaces, data, run_dir).fit()
        except BaseException:
            _remove_if_untouched(options, run_dir)
            raise
    finally:
        if started:
            stop_ray()
    outcome = TuneOutcome(run_dir=run_dir,
                          leaderboard=leaderboard(grid, max_epochs=options.max_epochs),
                          errors=[_first_line(e) for e in grid.errors])
    if outcome.all_failed:  # nothing to export or resume: free the --name for the fixed command
        _remove_if_untouched(options, run_dir)
    return outcome


# A run name is one plain folder name inside --storage: never a path that leaves it.
_RUN_NAME = re.compile(r"\w[\w.+=-]*")


def check_run_name(name: str) -> None:
    """Refuse a --name that is not one plain folder name (`../x`, `/etc`, `a/b`, `.`)."""
    if not _RUN_NAME.fullmatch(name) or len(name.encode()) > 200:
        raise VoxpopError(f"--name {name!r}: a run name is one plain folder name of letters, "
                          "digits and _ . - + = (at most 200 bytes), not a path: the run "
                          "directory is STORAGE/NAME")


def _check_run_dir(options: TuneOptions, run_dir: Location) -> None:
    if options.resume and not run_dir.is_dir():
        raise VoxpopError(f"--resume: {run_dir} does not exist (check --storage and --name)")
    if not options.resume and run_dir.exists():
        raise VoxpopError(f"{run_dir} already exists: use --resume to continue it, or another "
                          "--name")
    check_writable(run_dir.parent, what=f"--storage {options.storage}")


def _remove_if_untouched(options: TuneOptions, run_dir: Location) -> None:
    """After Tune failed to start or run, or every trial failed, remove the run directory this
    call made if no trial left a checkpoint in it, so the same --name works again. A run with
    checkpoints is kept for --resume."""
    if not options.resume and run_dir.is_dir():
        rundir.remove_if_no_checkpoints(run_dir)


# What each trial was started with; a resumed run keeps these whatever the command line says.
STORED_ON_RESUME = ("max_epochs", "cpus_per_trial", "gpus_per_trial")


def _with_stored_trial_options(options: TuneOptions, run_dir: Location) -> TuneOptions:
    try:
        stored = rundir.read_job(run_dir)["options"]
    except VoxpopError as err:
        raise VoxpopError(f"--resume: {err}") from None
    return dataclasses.replace(options, **{key: stored[key] for key in STORED_ON_RESUME})


def _data_for(options: TuneOptions, run_dir: Location) -> TrialData:
    if options.resume:
        return rundir.read_trial_data(run_dir)
    source = TableSource(data=Path(options.data), val=options.val_file, test=options.test_file,
                         text_col=options.text_col, label_col=options.label_col,
                         feature_cols=tuple(options.feature_cols))
    # The prepared data appears atomically, so a failure leaves no run that --resume cannot
    # continue and that blocks the same --name.
    with rundir.new_run_dir(run_dir):
        return prepare_run_data(source, seed=options.seed, run_dir=run_dir,
                                job={"command": "voxpop tune", "options": options.to_json()},
                                preprocessor_options={"max_len": options.max_len,
                                                      "max_tokens": options.max_tokens,
                                                      "min_freq": options.min_freq})


def _tuner(options: TuneOptions, spaces: dict[str, dict], data: TrialData, run_dir: Location):
    from ray import tune

    from voxpop.tune_spaces.trainable import train_trial

    threads = max(1, math.floor(options.cpus_per_trial))
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, max_epochs=options.max_epochs,
                             threads=threads),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    # A remote run's file system goes to Ray as it is, so the trials reach the same endpoint.
    filesystem = None if run_dir.local else run_dir.filesystem
    if options.resume:
        if not tune.Tuner.can_restore(run_dir.path, storage_filesystem=filesystem):
            raise VoxpopError(f"--resume: {run_dir} holds no Ray Tune experiment state to resume")
        return tune.Tuner.restore(run_dir.path, trainable=trainable, resume_errored=True,
                                  storage_filesystem=filesystem)
    param_space, search_alg, num_samples = SEARCHES[options.search](spaces, options)
    # CLIReporter (the classic table) needs Ray's new console output switched off.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=MODE, search_alg=search_alg,
            scheduler=SCHEDULERS[options.scheduler](options), num_samples=num_samples,
            # A new trial in a finished trial's worker skips the ~10-30 s TensorFlow start-up.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=options.name,
            storage_path=run_dir.parent.path, storage_filesystem=filesystem,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=options.keep_checkpoints, checkpoint_score_attribute=METRIC,
                checkpoint_score_order=MODE),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            progress_reporter=tune.CLIReporter(
                metric_columns={"space": "space", "family": "family", "epoch": "epoch",
                                METRIC: "val macro-F1", "val_loss": "val loss"},
                parameter_columns={"seed": "seed"}, max_report_frequency=15,
                sort_by_metric=True),
            verbose=1,
        ),
    )


# --------------------------------------------------------------------------- leaderboard
def leaderboard(grid, *, max_epochs: int) -> list[dict]:
    """One row per trial, best val macro-F1 first; failed trials (no score) last."""
    rows = [_row(result, max_epochs=max_epochs) for result in grid]
    return sorted(rows, key=lambda r: (r["val_macro_f1"] is None, -(r["val_macro_f1"] or 0)))


def _row(result, *, max_epochs: int) -> dict:
    from voxpop.tune_spaces.trainable import FAULT_KEY, trial_params

    space_name, params = trial_params(result.config)
    history = result.metrics_dataframe
    scored = history is not None and METRIC in history and history[METRIC].notna().any()
    best = history.loc[history[METRIC].idxmax()] if scored else None
    epochs_run = int(history["epoch"].max()) if scored else 0
    restarts = 0
    if history is not None and "restored_from" in history:
        restarts = int(history["restored_from"].loc[lambda s: s > 0].nunique())
    return {
        "trial_id": (result.metrics or {}).get("trial_id") or Path(result.path).name,
        "trial_dir": str(result.path),
        "space": space_name,
        "family": params.get("family"),
        "params": {k: v for k, v in params.items() if k not in ("family", "seed", FAULT_KEY)},
        "epoch": int(best["epoch"]) if best is not None else None,
        "epochs_run": epochs_run,
        "val_macro_f1": float(best[METRIC]) if best is not None else None,
        "restarts": restarts,
        "error": _first_line(result.error) if result.error else None,
        "state": _state(result, epochs_run=epochs_run, max_epochs=max_epochs),
    }


def _state(result, *, epochs_run: int, max_epochs: int) -> str:
    """finished | failed | stopped (by the scheduler, or an interrupt) | not started."""
    if result.error:
        return "failed"
    if not epochs_run:
        return "not started"
    return "finished" if epochs_run >= max_epochs else "stopped"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}".strip()
