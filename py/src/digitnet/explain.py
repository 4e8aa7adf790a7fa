"""What the network looks at: first-layer filters and feature maps, for the page's
"Inside the network" panel (and anyone curious in CPython).

Aim: cheap views of a trained model's first layer. For a CNN, the first Conv2D's kernels
and, for one digit, that layer's activations (the feature maps). For an MLP, which has no
spatial filters, the 784 input weights of a few first-layer units shown as 28x28 images.
numpy only.

Non-goals: deeper layers, saliency/gradient methods, multi-channel (RGB) inputs.

Display scaling: filters and weights are returned in [-1, 1], each image divided by its
own largest absolute value (0 stays 0, so a diverging colour map shows sign). Feature
maps are the raw ReLU outputs (>= 0); `to_uint8` scales a stack of them by one common
maximum so strong and weak maps stay comparable.
"""
from __future__ import annotations

import numpy as np

from .conv import Conv2D
from .layers import Linear


def _first(model, kind):
    for i, layer in enumerate(model.layers):
        if isinstance(layer, kind):
            return i, layer
    return None, None


def is_cnn(model) -> bool:
    return _first(model, Conv2D)[1] is not None


def _scaled(images: np.ndarray) -> np.ndarray:
    """(n, ...) -> float32 in [-1, 1], each image divided by its own max |value|."""
    images = np.asarray(images, dtype=np.float32)
    peak = np.abs(images).reshape(len(images), -1).max(axis=1)
    peak[peak == 0] = 1.0
    return images / peak.reshape((-1,) + (1,) * (images.ndim - 1))


def first_layer_filters(model) -> np.ndarray:
    """The first Conv2D's kernels as (F, k, k) float32 in [-1, 1] (see module notes).

    Multi-channel kernels are averaged over their input channels. Raises ValueError for a
    model without a convolution (an MLP): use `first_layer_weights` there.
    """
    _, layer = _first(model, Conv2D)
    if layer is None:
        raise ValueError("this model has no convolutional layer (an MLP has no filters); "
                         "first_layer_weights shows its first layer's weights instead")
    w = layer.W.value.astype(np.float32).mean(axis=1)    # (F, k, k)
    return _scaled(w)


def first_layer_weights(model, n: int = 16) -> np.ndarray:
    """An MLP's view of its input: the 784 weights of ``n`` first-layer units as
    (n, 28, 28) float32 in [-1, 1]. The units shown are those with the largest weight
    norm (the most strongly tuned), in unit order. Raises ValueError without a first
    Linear layer that reads 784 pixels."""
    _, layer = _first(model, Linear)
    if layer is None or layer.W.value.shape[0] != 784:
        raise ValueError("this model has no first dense layer reading the 784 pixels")
    w = layer.W.value.astype(np.float32)                    # (784, units)
    n = max(1, min(int(n), w.shape[1]))
    units = np.sort(np.argsort(-np.linalg.norm(w, axis=0), kind="stable")[:n])
    return _scaled(w[:, units].T.reshape(n, 28, 28))


def feature_maps(model, x28) -> np.ndarray:
    """The first convolution's activations for one digit: (F, H', W') float32 >= 0.

    ``x28``: one MNIST-style input, (28, 28) or (784,) in [0, 1]. Runs the model's layers
    up to the first Conv2D and the activation right after it (ReLU in `model.cnn`); if no
    activation follows, the raw convolution output is returned. Raises ValueError for a
    model without a convolution.
    """
    i, layer = _first(model, Conv2D)
    if layer is None:
        raise ValueError("this model has no convolutional layer, so no feature maps "
                         "(an MLP's units each see the whole image)")
    x = np.asarray(x28, dtype=model.dtype)
    if x.size != 784:
        raise ValueError(f"feature_maps expects one 28x28 digit, got shape {x.shape}")
    x = x.reshape(1, 784)
    end = i + 1
    if end < len(model.layers) and not model.layers[end].params() \
            and type(model.layers[end]).__name__ in ("ReLU", "LeakyReLU"):
        end += 1
    for layer in model.layers[:end]:
        x = layer.forward(x, training=False)
    return np.ascontiguousarray(x[0], dtype=np.float32)


def to_uint8(maps: np.ndarray, signed: bool = False) -> np.ndarray:
    """Images -> uint8 bytes for a canvas. Unsigned (feature maps): 0..max -> 0..255 with
    one common max. ``signed`` (values in [-1, 1], e.g. filters): -1..1 -> 0..255, 0 -> 128."""
    maps = np.asarray(maps, dtype=np.float32)
    if signed:
        return np.clip(np.round((maps + 1.0) * 127.5), 0, 255).astype(np.uint8)
    peak = float(maps.max()) if maps.size else 0.0
    if peak <= 0:
        return np.zeros(maps.shape, dtype=np.uint8)
    return np.clip(np.round(maps / peak * 255.0), 0, 255).astype(np.uint8)


def overview(model) -> dict:
    """What the panel shows for this model: {"kind": "cnn"|"mlp", "images": (n, h, w)
    float32 in [-1, 1], "title": text}."""
    if is_cnn(model):
        f = first_layer_filters(model)
        _, layer = _first(model, Conv2D)
        return {"kind": "cnn", "images": f,
                "title": f"{len(f)} filters of the first convolution ({f.shape[1]}×{f.shape[2]})"}
    w = first_layer_weights(model)
    _, layer = _first(model, Linear)
    return {"kind": "mlp", "images": w,
            "title": f"input weights of {len(w)} of the first layer's {layer.W.value.shape[1]} units"}
