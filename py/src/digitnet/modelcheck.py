"""Checking a loaded model on real test digits before the page relies on it.

A model file that reads cleanly (see `modelfile`) can still be useless: weights of 3e38
overflow to NaN probabilities, and a model can classify digits no better than chance.
``check_on_digits`` refuses the first kind and measures the second: a model scoring below
``POOR_ACCURACY`` is flagged ``poor`` so it can be kept without becoming the pad's model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import Softmax
from .modelfile import ModelFileError, architecture_cost

POOR_ACCURACY = 0.5
SUM_TOLERANCE = 1e-3          # |sum of a row's probabilities - 1|
ACTIVATION_BUDGET = 8_000_000  # numbers held between layers for one batch (32 MB in float32)


@dataclass(frozen=True)
class ModelCheck:
    """How a model did on ``n`` test digits."""
    accuracy: float
    n: int

    @property
    def poor(self) -> bool:
        """True when the model is right on fewer than half of the digits."""
        return self.accuracy < POOR_ACCURACY


def check_on_digits(model, images: np.ndarray, labels: np.ndarray) -> ModelCheck:
    """Classify (N, 784) test images with (N,) labels; raises ModelFileError (one plain
    sentence) unless every output row is 10 finite, non-negative probabilities summing
    to 1. A few hundred digits are plenty to tell a working model from a broken one."""
    specs = model.architecture()
    cost = architecture_cost(specs)  # the caps also bound models built in memory
    if not isinstance(model.layers[-1], Softmax):
        raise ModelFileError("The model's last layer is not a Softmax, so its outputs are "
                             "not probabilities.")
    x = np.asarray(images, dtype=model.dtype).reshape(len(images), -1)
    batch = max(1, min(250, ACTIVATION_BUDGET // cost.peak_activation))
    try:
        with np.errstate(all="ignore"):
            probs = np.concatenate([model.forward(x[i:i + batch]) for i in range(0, len(x), batch)])
    except (ValueError, TypeError, IndexError, MemoryError):
        raise ModelFileError("The model cannot classify 28x28 digit images.") from None
    if probs.shape != (len(x), 10):
        raise ModelFileError(f"The model outputs {probs.shape[1:]} values per image, not 10 "
                             "digit probabilities.")
    if not np.isfinite(probs).all():
        raise ModelFileError("The model's outputs are not finite numbers on test digits "
                             "(its weights are too large).")
    if (probs < 0).any() or (np.abs(probs.sum(axis=1, dtype=np.float64) - 1) > SUM_TOLERANCE).any():
        raise ModelFileError("The model's outputs on test digits are not probabilities "
                             "(they are negative or do not sum to 1).")
    accuracy = float((probs.argmax(axis=1) == np.asarray(labels)).mean()) if len(x) else 0.0
    return ModelCheck(accuracy, len(x))
