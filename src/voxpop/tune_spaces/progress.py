"""A tuning run's live progress in one compact line, instead of Ray Tune's status table.

`ProgressLines` is a Ray Tune `ProgressReporter`: Tune asks it after every step whether to report,
and it hands a `Progress` to `on_progress` when the trials done, running or failed, or the best
score, change, and once a minute while they do not (for the time left).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ray.tune import ProgressReporter
from ray.tune.experiment import Trial

HEARTBEAT_S = 60.0  # a line at least this often while trials run, for the elapsed and left times


@dataclass(frozen=True)
class Progress:
    """Trials by state, the best validation score so far, and the time spent and left."""

    done: int  # finished, or stopped early by the scheduler
    running: int
    failed: int
    total: int
    best: float | None  # the best val macro-F1 any trial reported
    elapsed_s: float
    left_s: float | None  # estimated from the epochs done; None until one is done, or at the end

    def line(self) -> str:
        """e.g. `tune: 3/8 trials done, 2 running, 0 failed; best val macro-F1 0.6412; 2m05s
        elapsed, about 3m30s left`."""
        best = "-" if self.best is None else f"{self.best:.4f}"
        left = "" if self.left_s is None else f", about {_duration(self.left_s)} left"
        return (
            f"tune: {self.done}/{self.total} trials done, {self.running} running, "
            f"{self.failed} failed; best val macro-F1 {best}; "
            f"{_duration(self.elapsed_s)} elapsed{left}"
        )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class ProgressLines(ProgressReporter):
    """Tune's progress as `Progress` records for `on_progress` (see the module docstring).

    `on_progress` is stored with the run's Tuner state (cloudpickle), so that `--resume` reports
    the same way: pass a module-level function.
    """

    def __init__(
        self,
        *,
        metric: str,
        max_epochs: int,
        on_progress: Callable[[Progress], None],
        time_budget: float | None = None,
    ):
        self.metric = metric
        self.max_epochs = max_epochs
        self.time_budget = time_budget
        self.on_progress = on_progress
        self._start = time.time()
        self._total = 0
        self._shown: tuple | None = None
        self._shown_at = 0.0

    def setup(
        self,
        start_time: float | None = None,
        total_samples: int | None = None,
        metric: str | None = None,
        mode: str | None = None,
        **kwargs,
    ) -> None:
        self._start = start_time or time.time()
        self._total = total_samples or 0
        self._shown, self._shown_at = None, 0.0

    def should_report(self, trials: list[Trial], done: bool = False) -> bool:
        if self._state(trials) != self._shown:
            return True
        return not done and time.time() - self._shown_at >= HEARTBEAT_S

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        self._shown, self._shown_at = self._state(trials), time.time()
        self.on_progress(self.progress(trials, done=done))

    def progress(self, trials: list[Trial], *, done: bool = False) -> Progress:
        """The `Progress` of `trials` now."""
        count = {
            status: sum(trial.status == status for trial in trials)
            for status in (Trial.TERMINATED, Trial.RUNNING, Trial.ERROR)
        }
        total = max(self._total, len(trials))
        elapsed = time.time() - self._start
        epochs = sum(self._epochs_done(trial) for trial in trials)
        planned = total * self.max_epochs
        left = None
        if not done and 0 < epochs < planned:
            left = elapsed * (planned - epochs) / epochs
        if not done and self.time_budget:  # Tune ends the job at the budget
            left = max(0.0, min(left if left is not None else np.inf, self.time_budget - elapsed))
        return Progress(
            done=count[Trial.TERMINATED],
            running=count[Trial.RUNNING],
            failed=count[Trial.ERROR],
            total=total,
            best=self._best(trials),
            elapsed_s=elapsed,
            left_s=left,
        )

    def _state(self, trials: list[Trial]) -> tuple:
        statuses = tuple(sorted(trial.status for trial in trials))
        best = self._best(trials)
        return statuses, None if best is None else round(best, 4)

    def _best(self, trials: list[Trial]) -> float | None:
        scores = [
            trial.metric_analysis[self.metric]["max"]
            for trial in trials
            if self.metric in trial.metric_analysis
        ]
        return max(scores, default=None)

    def _epochs_done(self, trial: Trial) -> int:
        """Epochs of the trial's budget that are spent: all of them once it ended (a trial the
        scheduler stopped needs no more)."""
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            return self.max_epochs
        return int(trial.metric_analysis.get("epoch", {}).get("last", 0))
