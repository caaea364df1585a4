"""Running (or resuming) a tuning job with Ray Tune, and its leaderboard.

`run_tuning(TuneOptions(...))` prepares the data once in the driver, writes `STORAGE/NAME/voxpop/`,
starts or joins Ray, runs the trials with the chosen search algorithm and scheduler, and returns
a `TuneOutcome` whose leaderboard is sorted by best validation macro-F1.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voxpop.data import rundir
from voxpop.data.errors import VoxpopError
from voxpop.data.options import FORMATS
from voxpop.data.rundir import TrialData
from voxpop.data.storage import Location, check_writable, locate
from voxpop.tune_spaces.embeddings import sources, with_embeddings
from voxpop.tune_spaces.logs import RunLog
from voxpop.tune_spaces.options import TuneOptions, epochs_for
from voxpop.tune_spaces.prepare import TableSource, prepare_run_data, sentence_encoder
from voxpop.tune_spaces.schedulers import METRIC, MODE, SCHEDULERS, SEARCHES, bagged_search
from voxpop.tune_spaces.space_check import check_space
from voxpop.tune_spaces.spaces import resolve_space

if TYPE_CHECKING:
    from voxpop.tune_spaces.progress import Progress  # imports Ray


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


# --------------------------------------------------------------------------- validation
def validate(options: TuneOptions) -> dict[str, dict]:
    """Check the options without touching Ray; return the resolved spaces by name."""
    choices = {
        "--scheduler": (options.scheduler, SCHEDULERS),
        "--search": (options.search, SEARCHES),
    }
    for flag, (value, registry) in choices.items():
        if value not in registry:
            raise VoxpopError(f"{flag} {value!r} is not valid (valid: {', '.join(registry)})")
    positive = {
        "--samples": options.samples,
        "--max-epochs": 1 if options.max_epochs is None else options.max_epochs,
        "--cpus-per-trial": options.cpus_per_trial,
        "--keep-checkpoints": options.keep_checkpoints,
        "--grace-rows": options.grace_rows,
        "--time-budget": 1 if options.time_budget is None else options.time_budget,
    }
    for flag, value in positive.items():
        if not value > 0:
            raise VoxpopError(f"{flag} must be positive (got {value})")
    if options.gpus_per_trial < 0 or options.max_failures < 0 or options.patience < 0:
        raise VoxpopError("--gpus-per-trial, --max-failures and --patience must not be negative")
    if options.folds == 1 or options.folds < 0:
        raise VoxpopError(f"--folds must be 0 (no bagging) or at least 2 (got {options.folds})")
    if options.folds and (options.scheduler == "pbt" or options.search != "random"):
        # PBT would copy one fold's weights into another's trial (trained on its held-out
        # rows); Optuna draws each trial's configuration, where a bag's folds must share one.
        raise VoxpopError("--folds needs --search random and a scheduler other than pbt")
    if options.num_cpus is not None and options.num_cpus < 1:
        raise VoxpopError(f"--num-cpus must be at least 1 (got {options.num_cpus})")
    if options.num_gpus is not None and options.num_gpus < 0:
        raise VoxpopError(f"--num-gpus must not be negative (got {options.num_gpus})")
    if options.max_concurrent is not None and options.max_concurrent < 1:
        raise VoxpopError(f"--max-concurrent must be at least 1 (got {options.max_concurrent})")
    if options.format is not None and options.format.lower() not in FORMATS:
        raise VoxpopError(
            f"--format {options.format!r} is not a table format (choose from {', '.join(FORMATS)})"
        )
    if not options.spaces:
        raise VoxpopError("--space: give at least one space (see `voxpop spaces`)")
    if options.scheduler == "pbt" and (len(options.spaces) != 1 or options.search != "random"):
        raise VoxpopError("--scheduler pbt needs exactly one --space and --search random")
    spaces = dict(resolve_space(ref) for ref in options.spaces)
    if len(spaces) != len(options.spaces):
        raise VoxpopError(f"--space: a space is named twice ({', '.join(options.spaces)})")
    for ref, space in zip(options.spaces, spaces.values()):
        check_space(ref, space)
    _check_sentence_encoder(options, spaces)
    if options.resume:  # the restored trials keep their spaces; their vectors are in the run
        return spaces
    return with_embeddings(spaces, default=options.embeddings, freeze=options.freeze_embeddings)


def _check_sentence_encoder(options: TuneOptions, spaces: dict[str, dict]) -> None:
    """A space that samples the `sentence` family needs --sentence-encoder; the model it names
    is found and its graph checked now, before Ray starts."""
    if options.resume:  # the run holds its embeddings and encoder already
        return
    from voxpop.models import FAMILIES
    from voxpop.tune_spaces.space_check import families_of

    readers = sorted(
        name
        for name, space in spaces.items()
        if any(FAMILIES[f].reads == "sentence" for f in families_of(space))
    )
    if readers and options.sentence_encoder is None:
        raise VoxpopError(
            f"--space {', '.join(readers)}: the sentence family needs "
            "--sentence-encoder (a Hugging Face model folder with an ONNX export, "
            "an ONNX file with its tokenizer.json, or all-MiniLM-L6-v2)"
        )
    if options.sentence_tokenizer is not None and options.sentence_encoder is None:
        raise VoxpopError("--sentence-tokenizer is the tokenizer of --sentence-encoder; give both")
    if options.sentence_encoder is not None:
        sentence_encoder(sentence_model(options))


def sentence_model(options: TuneOptions):
    """The files of --sentence-encoder (None without it)."""
    if options.sentence_encoder is None:
        return None
    from voxpop.data.sentence import find_sentence_model

    return find_sentence_model(options.sentence_encoder, options.sentence_tokenizer)


# --------------------------------------------------------------------------- running
def run_tuning(
    options: TuneOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> TuneOutcome:
    """Prepare the data (or reload it with `resume`), run the trials, return the outcome.

    `on_ready(message)` is called with status lines before the trials start (Ray's resources,
    the run directory and its log file, which receives Ray's and the trials' own output);
    `on_progress(progress)` with the trials' progress as it changes (`progress.Progress`; a
    module-level function, stored with the run for --resume).
    """
    check_run_name(options.name)
    run_dir = locate(options.storage).child(options.name)
    if options.folds and run_dir.local is None:  # the bags are assembled in the run's folder
        raise VoxpopError(
            "--folds: a bagged run needs a local --storage (or a mounted shared "
            f"folder), not {run_dir.uri}"
        )
    _check_run_dir(options, run_dir)
    if options.resume:
        options = _with_stored_trial_options(options, run_dir)
    spaces = validate(options)

    from voxpop.tune_spaces.cluster import check_resources, start_ray, stop_ray

    log = RunLog()
    with log.capturing():
        started = start_ray(
            address=options.address, num_cpus=options.num_cpus, num_gpus=options.num_gpus
        )
        try:
            resources = check_resources(
                cpus_per_trial=options.cpus_per_trial, gpus_per_trial=options.gpus_per_trial
            )
            # Embedding every text through a transformer takes a while (minutes on 2 cores for
            # the full demo): say so before, and how long it took after.
            embedding = bool(options.sentence_encoder) and not options.resume
            if on_ready and embedding:
                on_ready(
                    f"sentence encoder {options.sentence_encoder}: embedding every training and "
                    "validation text once (kept in the run) ..."
                )
            preparing = time.monotonic()
            data = _data_for(options, run_dir, vector_sources=sources(spaces))
            if on_ready and embedding:
                on_ready(
                    f"sentence encoder: {len(data.y_train) + len(data.y_val):,} texts embedded in "
                    f"{time.monotonic() - preparing:.0f} s"
                )
            rows_per_epoch = data.rows_per_epoch(bagged=bool(options.folds))
            options = dataclasses.replace(
                options, max_epochs=options.max_epochs or epochs_for(rows_per_epoch)
            )
            log.open(rundir.log_path(run_dir))
            if on_ready:
                on_ready(
                    f"Ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} "
                    f"GPUs; run directory {run_dir}\nRay's and TensorFlow's own output: "
                    f"{log.path}"
                )
                for matched in data.vectors.values():
                    on_ready(matched.summary())
            try:
                grid = _tuner(
                    options,
                    spaces,
                    data,
                    run_dir,
                    log_file=log.path,
                    on_progress=on_progress,
                    slots=_slots(options, resources),
                ).fit()
            except BaseException:
                _remove_if_untouched(options, run_dir)
                raise
        finally:
            if started:
                stop_ray()
    if options.folds and rundir.checkpoint_paths(run_dir.local):
        rundir.write_bags(run_dir.local)
    rundir.upload_log(run_dir)
    outcome = TuneOutcome(
        run_dir=run_dir,
        leaderboard=leaderboard(grid, max_epochs=options.max_epochs),
        errors=[_first_line(e) for e in grid.errors],
    )
    if outcome.all_failed:  # nothing to export or resume: free the --name for the fixed command
        _remove_if_untouched(options, run_dir)
    return outcome


# A run name is one plain folder name inside --storage: never a path that leaves it.
_RUN_NAME = re.compile(r"\w[\w.+=-]*")


def check_run_name(name: str) -> None:
    """Refuse a --name that is not one plain folder name (`../x`, `/etc`, `a/b`, `.`)."""
    if not _RUN_NAME.fullmatch(name) or len(name.encode()) > 200:
        raise VoxpopError(
            f"--name {name!r}: a run name is one plain folder name of letters, "
            "digits and _ . - + = (at most 200 bytes), not a path: the run "
            "directory is STORAGE/NAME"
        )


def _check_run_dir(options: TuneOptions, run_dir: Location) -> None:
    if options.resume and not run_dir.is_dir():
        raise VoxpopError(f"--resume: {run_dir} does not exist (check --storage and --name)")
    if not options.resume and run_dir.exists():
        raise VoxpopError(
            f"{run_dir} already exists: use --resume to continue it, or another --name"
        )
    check_writable(run_dir.parent, what=f"--storage {options.storage}")


def _remove_if_untouched(options: TuneOptions, run_dir: Location) -> None:
    """After Tune failed to start or run, or every trial failed, remove the run directory this
    call made if no trial left a checkpoint in it, so the same --name works again. A run with
    checkpoints is kept for --resume."""
    if not options.resume and run_dir.is_dir():
        rundir.remove_if_no_checkpoints(run_dir)


# What each trial was started with; a resumed run keeps these whatever the command line says
# (a run from before an option existed keeps the option's default).
STORED_ON_RESUME = (
    "max_epochs",
    "cpus_per_trial",
    "gpus_per_trial",
    "patience",
    "grace_rows",
    "folds",
)


def _with_stored_trial_options(options: TuneOptions, run_dir: Location) -> TuneOptions:
    try:
        stored = rundir.read_job(run_dir)["options"]
    except VoxpopError as err:
        raise VoxpopError(f"--resume: {err}") from None
    return dataclasses.replace(
        options, **{key: stored[key] for key in STORED_ON_RESUME if key in stored}
    )


def _slots(options: TuneOptions, resources: dict) -> int:
    """How many trials can run at once on the cluster's resources (and --max-concurrent)."""
    slots = resources.get("CPU", 1) // options.cpus_per_trial
    if options.gpus_per_trial:
        slots = min(slots, resources.get("GPU", 0) // options.gpus_per_trial)
    return max(1, min(int(slots), options.max_concurrent or int(slots)))


def trial_seconds(options: TuneOptions, *, slots: int, trials: int) -> float | None:
    """A trial's share of --time-budget: the budget times the slots over the trials, so that the
    trials fit in the budget side by side (the whole budget when they all run at once)."""
    if not options.time_budget:
        return None
    return options.time_budget * min(1.0, slots / max(trials, 1))


def planned_trials(options: TuneOptions) -> int:
    return options.samples * len(options.spaces) * max(options.folds, 1)


def _data_for(options: TuneOptions, run_dir: Location, *, vector_sources: list[str]) -> TrialData:
    if options.resume:
        return rundir.read_trial_data(run_dir)
    source = TableSource(
        data=Path(options.data),
        val=options.val_file,
        test=options.test_file,
        text_col=options.text_col,
        label_col=options.label_col,
        feature_cols=tuple(options.feature_cols),
        format=options.format,
    )
    # The prepared data appears atomically, so a failure leaves no run that --resume cannot
    # continue and that blocks the same --name.
    with rundir.new_run_dir(run_dir):
        return prepare_run_data(
            source,
            seed=options.seed,
            run_dir=run_dir,
            vector_sources=vector_sources,
            folds=options.folds,
            job={"command": "voxpop tune", "options": options.to_json()},
            preprocessor_options={
                "max_len": options.max_len,
                "max_tokens": options.max_tokens,
                "min_freq": options.min_freq,
            },
            sentence_model=sentence_model(options),
            threads=options.num_cpus,
        )


def _tuner(
    options: TuneOptions,
    spaces: dict[str, dict],
    data: TrialData,
    run_dir: Location,
    *,
    log_file: Path,
    on_progress: Callable[[Progress], None] | None,
    slots: int,
):
    from ray import tune

    from voxpop.tune_spaces.progress import ProgressLines
    from voxpop.tune_spaces.trainable import train_trial

    threads = max(1, math.floor(options.cpus_per_trial))
    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial,
            data=data,
            max_epochs=options.max_epochs,
            threads=threads,
            log_file=str(log_file),
            patience=options.patience,
            trial_seconds=trial_seconds(options, slots=slots, trials=planned_trials(options)),
            job_deadline=time.time() + options.time_budget if options.time_budget else None,
        ),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    # Ray's new console output ignores the run's progress reporter: switch it off.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # A remote run's file system goes to Ray as it is, so the trials reach the same endpoint.
    filesystem = None if run_dir.local else run_dir.filesystem
    if options.resume:
        if not tune.Tuner.can_restore(run_dir.path, storage_filesystem=filesystem):
            raise VoxpopError(f"--resume: {run_dir} holds no Ray Tune experiment state to resume")
        return tune.Tuner.restore(
            run_dir.path, trainable=trainable, resume_errored=True, storage_filesystem=filesystem
        )
    search = bagged_search if options.folds else SEARCHES[options.search]
    param_space, search_alg, num_samples = search(spaces, options)
    rows_per_epoch = data.rows_per_epoch(bagged=bool(options.folds))
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=search_alg,
            scheduler=SCHEDULERS[options.scheduler](options, rows_per_epoch=rows_per_epoch),
            num_samples=num_samples,
            time_budget_s=options.time_budget,
            # A new trial in a finished trial's worker skips the ~10-30 s TensorFlow start-up.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=options.name,
            storage_path=run_dir.parent.path,
            storage_filesystem=filesystem,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=options.keep_checkpoints,
                checkpoint_score_attribute=METRIC,
                checkpoint_score_order=MODE,
            ),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            progress_reporter=ProgressLines(
                metric=METRIC,
                max_epochs=options.max_epochs,
                time_budget=options.time_budget,
                on_progress=on_progress or _no_progress,
            ),
            verbose=1,
        ),
    )


def _no_progress(progress: Progress) -> None:
    """The `on_progress` of a caller that shows none."""


# --------------------------------------------------------------------------- leaderboard
def leaderboard(grid, *, max_epochs: int) -> list[dict]:
    """One row per trial, best val macro-F1 first; failed trials (no score) last."""
    rows = [_row(result, max_epochs=max_epochs) for result in grid]
    return sorted(rows, key=lambda r: (r["val_macro_f1"] is None, -(r["val_macro_f1"] or 0)))


def _row(result, *, max_epochs: int) -> dict:
    from voxpop.tune_spaces.trainable import FAULT_KEY, trial_bag, trial_params

    # Tune gives no config for a trial it never started (--time-budget ended the job first).
    space_name, params = trial_params(result.config) if result.config else (None, {})
    history = _history(result)
    scored = history is not None and METRIC in history and history[METRIC].notna().any()
    best = history.loc[history[METRIC].idxmax()] if scored else None
    epochs_run = int(history["epoch"].max()) if scored else 0
    restarts = 0
    if history is not None and "restored_from" in history:
        restarts = int(history["restored_from"].loc[lambda s: s > 0].nunique())
    return {
        "trial_id": _trial_id(result, history),
        "trial_dir": str(result.path),
        **trial_bag(result.config or {}),
        "space": space_name,
        "family": params.get("family"),
        "params": {k: v for k, v in params.items() if k not in ("family", "seed", FAULT_KEY)},
        "epoch": int(best["epoch"]) if best is not None else None,
        "epochs_run": epochs_run,
        "rows_seen": int(history["rows_seen"].max()) if scored and "rows_seen" in history else 0,
        "val_macro_f1": float(best[METRIC]) if best is not None else None,
        "restarts": restarts,
        "error": _first_line(result.error) if result.error else None,
        "state": _state(
            result,
            epochs_run=epochs_run,
            max_epochs=max_epochs,
            stop_reason=_last(history, "stop_reason") if scored else None,
        ),
    }


def _last(history, column: str):
    """The column's last non-empty value in a trial's history (None if it has none)."""
    if column not in history or not history[column].notna().any():
        return None
    return history[column].dropna().iloc[-1]


def _history(result):
    """The trial's reports, one row each: Ray's `metrics_dataframe` (its result.json), or, where
    Ray lost that, the reports its kept checkpoints carry.

    Ray 2.60 can lose it for a trial PBT restores from another trial's checkpoint: on the restart
    its logger copies the storage's copy of result.json over the driver's own
    (`LoggerCallback._restore_from_remote`), and that copy lags behind by up to one sync, so it can
    be empty; a trial that then ends without reporting again keeps an empty history.
    """
    history = result.metrics_dataframe
    if history is not None and METRIC in history and history[METRIC].notna().any():
        return history
    import pandas as pd

    reports = [metrics for _, metrics in result.best_checkpoints or []]
    if not reports:
        return history
    return pd.DataFrame(reports).sort_values("epoch", ignore_index=True)


def _trial_id(result, history) -> str:
    """The trial's own id, as its reports and its checkpoints (metrics.json) carry it.

    Not Ray's `result.metrics["trial_id"]`: when PBT restores a trial from another trial's
    checkpoint, Ray 2.60 (`Trial.on_restore`) makes the donor's last result the trial's own,
    the donor's id included, and a trial that then ends without reporting again keeps it: two
    rows would show one id. Every row of the history is one of the trial's own reports.
    """
    if history is not None and "trial_id" in history and history["trial_id"].notna().any():
        return str(history["trial_id"].dropna().iloc[0])
    return (result.metrics or {}).get("trial_id") or Path(result.path).name


# A trial's own reason to end (`training.STOP_REASONS`) -> its state on the leaderboard.
STOP_STATES = {"max_epochs": "finished", "patience": "converged", "deadline": "out of time"}


def _state(result, *, epochs_run: int, max_epochs: int, stop_reason: str | None) -> str:
    """finished | converged (early stopping) | out of time (its share of --time-budget) |
    failed | stopped (by the scheduler, --time-budget's end, or an interrupt) | not started."""
    if result.error:
        return "failed"
    if not epochs_run:
        return "not started"
    if stop_reason in STOP_STATES:
        return STOP_STATES[stop_reason]
    return "finished" if epochs_run >= max_epochs else "stopped"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}".strip()
