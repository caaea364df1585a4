"""Process-level TensorFlow settings; call `configure` before any TensorFlow op runs."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def configure(threads: int | None = None, seed: int | None = None) -> None:
    """Enable GPU memory growth, cap TF's intra/inter-op threads, and seed Python, numpy and TF.

    Thread counts and memory growth can only change before TensorFlow initialises its runtime;
    if it already has, the setting is skipped with a warning in the log (seeding always works).
    """
    import keras
    import tensorflow as tf

    try:
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError as error:  # the runtime is already initialised
        log.warning(
            "TensorFlow runtime already initialised, thread/GPU settings unchanged: %s", error
        )
    if seed is not None:
        keras.utils.set_random_seed(seed)
