"""voxpop's own Keras loss on one-hot targets: focal loss (with label smoothing), registered for
saving. The training key `loss` picks it or Keras' cross-entropy (`training.LOSSES`)."""

from __future__ import annotations

import keras
from keras import ops

_EPS = 1e-7


@keras.saving.register_keras_serializable("voxpop")
class FocalLoss(keras.losses.Loss):
    """Focal loss (Lin et al. 2017): -sum_c alpha_c * (1 - p_c)^gamma * y_c * log p_c.

    `alpha` is None (1 for every class), one float, or one weight per class. `label_smoothing`
    mixes the one-hot targets with the uniform distribution, as in Keras' cross-entropy.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha=None,
        label_smoothing: float = 0.0,
        name: str = "focal_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)
        self.alpha = list(alpha) if isinstance(alpha, (list, tuple)) else alpha
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = smooth_labels(ops.cast(y_true, y_pred.dtype), self.label_smoothing)
        probs = ops.clip(y_pred, _EPS, 1.0 - _EPS)
        per_class = -y_true * ops.power(1.0 - probs, self.gamma) * ops.log(probs)
        if self.alpha is not None:
            per_class = per_class * ops.convert_to_tensor(self.alpha, dtype=y_pred.dtype)
        return ops.sum(per_class, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": self.alpha,
            "label_smoothing": self.label_smoothing,
        }


def smooth_labels(one_hot, smoothing: float):
    """(1 - smoothing) * one_hot + smoothing / n_classes."""
    if not smoothing:
        return one_hot
    n_classes = ops.cast(ops.shape(one_hot)[-1], one_hot.dtype)
    return one_hot * (1.0 - smoothing) + smoothing / n_classes
