"""Named search spaces, the Ray Tune trainable, and running/resuming a tuning job.

Ray and TensorFlow are imported inside functions, so importing this package stays cheap.
"""

from voxpop.tune_spaces.runner import TuneOptions, TuneOutcome, run_tuning
from voxpop.tune_spaces.space_file import load_space_file
from voxpop.tune_spaces.spaces import SPACES, describe, get_space, resolve_space

__all__ = ["SPACES", "TuneOptions", "TuneOutcome", "describe", "get_space", "load_space_file",
           "resolve_space", "run_tuning"]
