"""Keras model families for text classification, their custom layers, losses and training.

Importing this package (the family registry, `default_config`) loads no TensorFlow: Keras is
imported when a model is built, trained or loaded. `build` and `load_model` register voxpop's
custom layers and losses, so `load_model(path)` (Keras' `load_model(path, safe_mode=True)`) needs
no custom objects.
"""

from voxpop.models.families import (
    FAMILIES,
    build,
    default_config,
    load_model,
    padding_invariant,
    uses_features,
)

__all__ = [
    "FAMILIES",
    "build",
    "default_config",
    "load_model",
    "padding_invariant",
    "uses_features",
]
