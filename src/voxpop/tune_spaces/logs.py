"""Ray's and TensorFlow's own output during a tuning run goes to the run's log file
(`voxpop.data.rundir.LOG_FILE`), not to the terminal, which shows voxpop's progress lines and the
leaderboard.

Two sources: the driver's `ray` logger (Ray and Tune, e.g. warnings at start-up), captured by
`RunLog`; and each trial's process (TensorFlow's C++ and Python logs, Keras, Ray's worker-side
messages), whose stdout and stderr `send_output_to` points at the same file.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator
from pathlib import Path

_BUFFERED = 10_000  # records kept from before the run directory exists (Ray starts first)


class RunLog:
    """The driver's Ray log records, held from `capturing()` until `open(path)` names the file.

    Example:
        log = RunLog()
        with log.capturing():
            ray.init(...)            # its warnings are held
            log.open(run_dir / "tune.log")
            tuner.fit()              # Ray's and Tune's records go to the file
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self._held = logging.handlers.MemoryHandler(
            _BUFFERED, flushLevel=logging.CRITICAL + 1, flushOnClose=False
        )
        self._file: logging.Handler | None = None
        self._console: list[logging.Handler] = []
        self._level = logging.NOTSET

    @contextlib.contextmanager
    def capturing(self) -> Iterator[RunLog]:
        logger = logging.getLogger("ray")
        self._console, self._level = list(logger.handlers), logger.level
        logger.handlers = [self._held]
        try:
            yield self
        finally:
            logger.handlers = self._console
            logger.setLevel(self._level)
            if self._file is None:  # no log file after all: what was held goes where it went
                for record in self._held.buffer:
                    logger.handle(record)
            else:
                self._file.close()
            self._held.close()

    def open(self, path: Path) -> None:
        """Write what was held, and every record from now on, to `path` (appended to)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = logging.FileHandler(path, encoding="utf-8")
        if self._console and self._console[0].formatter:
            self._file.setFormatter(self._console[0].formatter)  # Ray's own line format
        self._held.setTarget(self._file)
        self._held.flush()
        logger = logging.getLogger("ray")
        logger.handlers = [self._file]
        logger.setLevel(logging.INFO)  # the file has room for Tune's notes on every trial
        self.path = path


def send_output_to(path: str | Path | None) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2, so C++ logs too) at the
    end of `path`: a trial's TensorFlow and Ray output joins the run's log. Nothing changes where
    the file's folder is not on this machine (a cluster node without the run's storage)."""
    if path is None or not Path(path).parent.is_dir():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
