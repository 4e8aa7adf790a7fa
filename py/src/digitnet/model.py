"""A sequential network, the presets digitnet ships, and the one-file model format.

Models take (N, 784) float32 rows in [0, 1] and end in a Softmax: ``forward`` returns
(N, 10) probabilities. Training skips that final Softmax (``logits``) and uses the fused
softmax + cross-entropy gradient from `losses`.

Model file (``.npz``, identical in CPython and the browser): ``format`` (the string
``"digitnet-model"``), ``version`` (int), ``architecture`` (JSON list of layer specs),
and one array per parameter named ``p0, p1, ...`` in ``parameters()`` order. Reading one
is bounded (file size, parameters, FLOPs): see `modelfile`.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from . import conv, convpool  # conv also registers its layer types for build_layer
from . import modelfile
from .backend import current
from .layers import Layer, LeakyReLU, Linear, Param, ReLU, Softmax, build_layer
from .losses import softmax_cross_entropy
from .modelfile import FORMAT_NAME, FORMAT_VERSION, ModelFileError

SLICE = 64   # examples per forward/backward slice of a training batch in CPython


class Sequential:
    """Layers applied in order. ``layers[-1]`` is normally a Softmax."""

    def __init__(self, layers: list[Layer]):
        self.layers = list(layers)
        self._runners: dict = {}                  # (id(conv), id(pool)) -> its ConvPool
        self._ran: list[Layer] | None = None      # the layers the last forward ran

    def parameters(self) -> list[Param]:
        return [p for layer in self.layers for p in layer.params()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def _body(self) -> list[Layer]:
        """The layers before the final Softmax, in the order they run: a ReLU directly
        followed by a MaxPool2D runs after it instead (the two commute: outputs and
        gradients are the same, ties included; the ReLU then touches a k*k times smaller
        map), and with CPython's BLAS a thin Conv2D and the 2x2 MaxPool2D after it run
        as one `convpool.ConvPool`."""
        ends_in_softmax = self.layers and isinstance(self.layers[-1], Softmax)
        body = list(self.layers[:-1] if ends_in_softmax else self.layers)
        for i in range(len(body) - 1):
            if type(body[i]) is ReLU and type(body[i + 1]) is conv.MaxPool2D:
                body[i], body[i + 1] = body[i + 1], body[i]
        return self._fused(body)

    def _fused(self, body: list[Layer]) -> list[Layer]:
        """``body`` with each pair `convpool.wanted` now replaced by its ConvPool (one per
        pair, kept: it holds what backward needs)."""
        runners = self._runners
        out = []
        for layer in body:
            if (out and type(layer) is conv.MaxPool2D and type(out[-1]) is conv.Conv2D
                    and convpool.wanted(current(), out[-1], layer)):
                key = (id(out[-1]), id(layer))
                if key not in runners:
                    runners[key] = convpool.ConvPool(out[-1], layer)
                out[-1] = runners[key]
            else:
                out.append(layer)
        return out

    def logits(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """(N, 784) -> (N, 10) scores before the final Softmax."""
        self._ran = self._body()   # backward goes back through these same layers
        for layer in self._ran:
            x = layer.forward(x, training)
        return x

    def backward(self, dlogits: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate d(loss)/d(logits) (N, 10); adds into every Param.grad.

        Returns d(loss)/d(input), or None with ``input_grad=False``: training then skips
        the first parameterised layer's input gradient (for the MLP a third of that
        layer's backward work) and the parameter-free layers before it.
        """
        body = self._ran or self._body()
        first = -1 if input_grad else next((i for i, l in enumerate(body) if l.params()), -1)
        for i in reversed(range(len(body))):
            if i == first:
                body[i].backward_params(dlogits)
                return None
            dlogits = body[i].backward(dlogits)
        return dlogits

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray,
                           reduction: str = "mean") -> tuple[float, np.ndarray]:
        """One training batch: (N, 784) images, (N, 10) one-hot targets -> (mean
        cross-entropy, (N, 10) logits), adding d(loss)/d(parameters) into every Param.grad
        (``reduction`` as in `losses.softmax_cross_entropy`; the input's gradient is skipped).

        With CPython's BLAS (the ``"numpy"`` backend) a convolutional model runs a batch
        in slices of at most SLICE examples, forward and backward each: its large
        activations then stay in the CPU cache between layers (the CNN at batch 256
        trained ~5-10% faster). A batch's gradient is the sum over its examples, so this
        is the same gradient up to float rounding."""
        n = len(x)
        sliced = current() == "numpy" and any(isinstance(l, conv.Conv2D) for l in self.layers)
        step = SLICE if sliced else n
        if n <= step:
            logits = self.logits(x, training=True)
            loss, dlogits = softmax_cross_entropy(logits, targets, reduction)
            self.backward(dlogits, input_grad=False)
            return loss, logits
        scale = 1.0 / n if reduction == "mean" else 1.0
        total, parts = 0.0, []
        for i in range(0, n, step):
            logits = self.logits(x[i:i + step], training=True)
            loss, dlogits = softmax_cross_entropy(logits, targets[i:i + step], "sum")
            if scale != 1.0:
                dlogits *= np.asarray(scale, dtype=dlogits.dtype)
            self.backward(dlogits, input_grad=False)
            total += loss * len(logits)
            parts.append(logits)
        return total / n, np.concatenate(parts)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """(N, 784) -> (N, 10) probabilities (runs every layer, the Softmax included)."""
        x = self.logits(x, training)
        if self.layers and isinstance(self.layers[-1], Softmax):
            x = self.layers[-1].forward(x, training)
        return x

    def predict_proba(self, x: np.ndarray, batch_size: int = 250) -> np.ndarray:
        """(N, 784) -> (N, 10) class probabilities, evaluated in batches to bound memory."""
        x = np.asarray(x, dtype=self.dtype)
        if len(x) == 0:
            return np.zeros((0, 10), dtype=self.dtype)
        x = x.reshape(len(x), -1)
        return np.concatenate([self.forward(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, 784) -> (N,) predicted class ids."""
        return self.predict_proba(x).argmax(axis=1)

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].value.dtype if params else np.float32

    def architecture(self) -> list[dict]:
        return [layer.spec() for layer in self.layers]

    def describe(self) -> str:
        """One line: the layer types and the parameter count."""
        names = " -> ".join(spec["type"] for spec in self.architecture())
        count = sum(p.value.size for p in self.parameters())
        return f"{names} ({count:,} parameters)"


# ---------------------------------------------------------------- presets

def mlp(seed: int = 0, init: str = "uniform", dtype=np.float32) -> Sequential:
    """The tutorial's network: 784-256-128-10, LeakyReLU(0.2), Softmax."""
    return Sequential([
        Linear(784, 256, init=init, seed=seed, dtype=dtype), LeakyReLU(0.2),
        Linear(256, 128, init=init, seed=seed + 1, dtype=dtype), LeakyReLU(0.2),
        Linear(128, 10, init=init, seed=seed + 2, dtype=dtype), Softmax(),
    ])


def cnn(seed: int = 0, dtype=np.float32) -> Sequential:
    """LeNet-style: conv5x5(16, pad 2) - ReLU - pool2 - conv5x5(32, pad 2) - ReLU - pool2
    - dense 1568->128 - ReLU - dense 10 - Softmax."""
    return Sequential([
        conv.Reshape((1, 28, 28)),
        conv.Conv2D(1, 16, 5, padding=2, seed=seed, dtype=dtype), ReLU(), conv.MaxPool2D(2),
        conv.Conv2D(16, 32, 5, padding=2, seed=seed + 1, dtype=dtype), ReLU(), conv.MaxPool2D(2),
        conv.Flatten(),
        Linear(32 * 7 * 7, 128, init="he", seed=seed + 2, dtype=dtype), ReLU(),
        Linear(128, 10, init="he", seed=seed + 3, dtype=dtype), Softmax(),
    ])


PRESETS = {"mlp": mlp, "cnn": cnn}


# ---------------------------------------------------------------- save / load

def dumps(model: Sequential) -> bytes:
    """The model as ``.npz`` bytes (see the module docstring for the layout)."""
    arrays = {"format": np.array(FORMAT_NAME), "version": np.array(FORMAT_VERSION),
              "architecture": np.array(json.dumps(model.architecture()))}
    for i, p in enumerate(model.parameters()):
        arrays[f"p{i}"] = p.value
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save(model: Sequential, path: str | Path) -> None:
    """Write the model to ``path`` (atomically: a crash never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(dumps(model))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def loads(blob: bytes) -> Sequential:
    """Rebuild a model from ``dumps`` bytes; raises ModelFileError, never half-loads.

    `modelfile.read` checks the file (sizes, architecture, caps, array headers) before
    anything big is allocated; only a file that passed is built into layers.
    """
    contents = modelfile.read(blob)
    first = contents.arrays[0] if contents.arrays else None
    dtype = first.dtype if first is not None and first.dtype in (np.float32, np.float64) else np.float32
    try:
        model = Sequential([build_layer(spec, dtype=dtype) for spec in contents.specs])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"The model file has an invalid architecture ({e}).") from None
    for p, value in zip(model.parameters(), contents.arrays):
        p.value = value.astype(dtype)
        p.grad = np.zeros_like(p.value)
    return model


def load(source: str | Path | bytes) -> Sequential:
    """Load a model from a path or from ``.npz`` bytes; raises ModelFileError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return loads(bytes(source))
    try:
        blob = Path(source).read_bytes()
    except OSError as e:
        raise ModelFileError(f"Cannot read the model file {source} ({e.strerror or e}).") from None
    return loads(blob)
