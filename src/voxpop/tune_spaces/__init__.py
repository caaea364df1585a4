"""Named search spaces, the Ray Tune trainable, and running/resuming a tuning job.

Ray and TensorFlow are imported inside functions, and the names below at first use, so importing
this package (or its light `options`, which the command line reads) stays cheap.
"""

from voxpop import lazy_exports

_EXPORTS = {
    "TuneOptions": "voxpop.tune_spaces.options",
    "TuneOutcome": "voxpop.tune_spaces.runner",
    "run_tuning": "voxpop.tune_spaces.runner",
    "load_space_file": "voxpop.tune_spaces.space_file",
    "SPACES": "voxpop.tune_spaces.spaces",
    "describe": "voxpop.tune_spaces.spaces",
    "get_space": "voxpop.tune_spaces.spaces",
    "resolve_space": "voxpop.tune_spaces.spaces",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
