"""Classification metrics on integer labels."""
from __future__ import annotations

import numpy as np


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of (N,) predictions equal to (N,) labels, in [0, 1]."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape:
        raise ValueError(f"shapes differ: {predicted.shape} vs {labels.shape}")
    return float((predicted == labels).mean()) if labels.size else 0.0


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """(n_classes, n_classes) counts: row = true label, column = predicted label."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(predicted)), 1)
    return m
