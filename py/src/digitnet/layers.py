"""Dense layers and activations with explicit forward/backward passes.

Contract shared by every layer (the conv layers in `conv.py` follow it too):

- ``forward(x, training=False)`` returns the output and caches what ``backward`` needs.
- ``backward(dout)`` returns ``dx`` (same shape as the last ``x``) and *adds* the
  parameter gradients into ``Param.grad`` (the model zeroes them before each batch).
- ``params()`` lists the layer's ``Param`` objects (value beside its gradient).
- ``spec()`` returns a JSON-able dict ``{"type": ..., **kwargs}`` that rebuilds the layer
  (weights excluded); ``build_layer(spec)`` does the reverse.

Arrays are float32 by default (speed, and half the bytes in Pyodide); gradient checks
construct layers with ``dtype=np.float64``. Matrix products go through `backend.matmul`. Not a goal: autograd, GPUs, arbitrary graphs.
"""
from __future__ import annotations

import inspect

import numpy as np

from .backend import matmul


class Param:
    """A trainable array and its gradient, which has the same shape and dtype.

    ``zero_grad()`` only marks the gradient as zero; it is filled with zeros when next
    read, unless ``add_product`` writes a whole gradient straight into it first (saving
    two passes over the array per batch)."""

    def __init__(self, value: np.ndarray, name: str):
        self.value = value
        self._grad, self._zero = np.zeros_like(value), False
        self.name = name

    @property
    def grad(self) -> np.ndarray:
        if self._zero:
            self._grad.fill(0)
            self._zero = False
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray) -> None:
        self._grad, self._zero = value, False

    def zero_grad(self) -> None:
        self._zero = True

    def add_product(self, a: np.ndarray, b: np.ndarray) -> None:
        """grad += a @ b (``backend.matmul``); a zeroed gradient receives it directly."""
        if self._zero:
            matmul(a, b, out=self._grad)
            self._zero = False
        else:
            self._grad += matmul(a, b)

    def add_rows_product(self, rows: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """grad[rows] += a @ b, the other rows unchanged: a (len(rows), k), b (k, m),
        grad (R, m); ``rows`` ascending and unique."""
        product = matmul(a, b)
        if self._zero:
            blank = np.ones(len(self._grad), dtype=bool)
            blank[rows] = False
            self._grad[blank] = 0
            self._grad[rows] = product
            self._zero = False
        else:
            self._grad[rows] += product


class Layer:
    """Base class: a layer without parameters that passes shapes through unchanged."""

    def params(self) -> list[Param]:
        return []

    def spec(self) -> dict:
        return {"type": type(self).__name__}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_params(self, dout: np.ndarray) -> None:
        """Only the parameter gradients of ``backward`` (for a first layer, whose ``dx``
        nobody needs); layers may override it to skip computing ``dx``."""
        self.backward(dout)


# While training, a Linear layer leaves out of its products the inputs that are zero in
# every row of the batch (they add nothing to x @ W, and their rows of dW are zero) when
# at least this share of its inputs are: a digit image's blank border is about a third of
# the pixels in a batch of 128, so the first layer (most of an MLP's work) gets cheaper.
MIN_BLANK_SHARE = 0.125


class Linear(Layer):
    """y = x @ W + b.  x: (N, n_in) -> y: (N, n_out); W: (n_in, n_out), b: (n_out,).

    ``init="uniform"`` is the tutorial's U(-1/sqrt(n_in), 1/sqrt(n_in)); ``init="he"`` is
    N(0, 2/n_in), suited to ReLU-family activations. Biases start at zero.
    """

    def __init__(self, n_in: int, n_out: int, init: str = "uniform", seed: int | None = None,
                 dtype=np.float32):
        if init not in ("uniform", "he"):
            raise ValueError(f"unknown init {init!r}; expected 'uniform' or 'he'")
        self.n_in, self.n_out, self.init = int(n_in), int(n_out), init
        rng = np.random.default_rng(seed)
        if init == "uniform":
            bound = 1.0 / np.sqrt(n_in)
            w = rng.uniform(-bound, bound, size=(n_in, n_out))
        else:
            w = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
        self.W = Param(w.astype(dtype), "W")
        self.b = Param(np.zeros(n_out, dtype=dtype), "b")
        self._x, self._live = None, None  # the batch's inputs in use, and which (or None: all)

    def params(self):
        return [self.W, self.b]

    def spec(self):
        return {"type": "Linear", "n_in": self.n_in, "n_out": self.n_out, "init": self.init}

    def forward(self, x, training=False):
        self._x, self._live, w = x, None, self.W.value
        if training and len(x) > 1:
            live = np.flatnonzero(x.any(axis=0))
            if len(live) <= (1 - MIN_BLANK_SHARE) * self.n_in:
                self._x, self._live, w = x[:, live], live, w[live]
        out = matmul(self._x, w)
        out += self.b.value
        return out

    def backward(self, dout):
        self.backward_params(dout)
        return matmul(dout, self.W.value.T)

    def backward_params(self, dout):
        if self._live is None:
            self.W.add_product(self._x.T, dout)
        else:
            self.W.add_rows_product(self._live, self._x.T, dout)
        self.b.grad += dout.sum(axis=0)


class LeakyReLU(Layer):
    """max(x, alpha*x) element-wise (the tutorial uses alpha=0.2). Any shape."""

    def __init__(self, alpha: float = 0.2):
        self.alpha = float(alpha)
        self._x = None

    def spec(self):
        return {"type": "LeakyReLU", "alpha": self.alpha}

    def forward(self, x, training=False):
        self._x = x
        out = x * np.asarray(self.alpha, dtype=x.dtype)
        if self._between_0_and_1():   # max(x, alpha*x) is then x where x > 0, else alpha*x
            return np.maximum(x, out, out=out)
        return np.where(x > 0, x, out)

    def backward(self, dout):
        alpha = np.asarray(self.alpha, dtype=dout.dtype)
        if not self._between_0_and_1():
            return np.where(self._x > 0, dout, dout * alpha)
        # The slope (1 where x > 0, else alpha) by arithmetic: numpy's where and masked
        # copies are several times slower than these passes.
        slope = (self._x > 0).astype(dout.dtype)
        np.maximum(slope, alpha, out=slope)
        slope *= dout
        return slope

    def _between_0_and_1(self) -> bool:
        return 0.0 <= self.alpha <= 1.0


class ReLU(Layer):
    """max(x, 0) element-wise. Any shape; the output keeps x's memory order."""

    def forward(self, x, training=False):
        # Multiplying by the mask viewed as uint8 rather than bool: numpy's bool -> float
        # cast loop made that product 1.1x (CPython) to 4x (Pyodide) slower, and
        # np.maximum(x, 0) is 3x slower in Pyodide. NaN stays NaN (NaN * 0).
        self._mask = (x > 0).view(np.uint8)
        return x * self._mask

    def backward(self, dout):
        return dout * self._mask


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) scores."""
    # Subtracting the row max leaves the result unchanged and keeps exp() from overflowing.
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Softmax(Layer):
    """Row-wise softmax, (N, K) -> (N, K) probabilities.

    Training never backpropagates through this layer: `losses.softmax_cross_entropy`
    fuses it with the loss (gradient probs - onehot). Its own backward is the exact
    Jacobian-vector product, kept for completeness and checked in the tests.
    """

    def forward(self, x, training=False):
        self._p = softmax(x)
        return self._p

    def backward(self, dout):
        p = self._p
        return p * (dout - (dout * p).sum(axis=1, keepdims=True))


LAYER_TYPES: dict[str, type] = {"Linear": Linear, "LeakyReLU": LeakyReLU, "ReLU": ReLU,
                                "Softmax": Softmax}


def register(cls: type) -> type:
    """Make a layer class buildable from its spec (used by `conv.py`)."""
    LAYER_TYPES[cls.__name__] = cls
    return cls


def build_layer(spec: dict, dtype=np.float32) -> Layer:
    """Rebuild a layer from ``spec()`` output; raises ValueError for an unknown type."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    cls = LAYER_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown layer type {kind!r}")
    if "dtype" in inspect.signature(cls).parameters:
        spec["dtype"] = dtype
    try:
        return cls(**spec)
    except TypeError as e:
        raise ValueError(f"bad {kind} layer spec: {e}") from None
