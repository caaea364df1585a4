"""Keras model families for text classification, their custom layers, losses and training.

Importing this package registers the custom layers and losses, so
`keras.models.load_model(path, safe_mode=True)` (what `load_model(path)` does) works without
custom objects.
"""

from voxpop.models import layers, losses  # noqa: F401  (registers custom objects for loading)
from voxpop.models.families import (
    FAMILIES,
    build,
    default_config,
    load_model,
    load_pretrained,
    padding_invariant,
    uses_features,
)

__all__ = ["FAMILIES", "build", "default_config", "load_model", "load_pretrained",
           "padding_invariant", "uses_features"]
