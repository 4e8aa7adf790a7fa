"""A thin Conv2D and the 2x2 MaxPool2D after it, run as one layer in CPython.

`model.Sequential` runs a stride-1 Conv2D with thin kernel rows (k*C < 32: the CNN's
one-channel first layer) directly followed by MaxPool2D(2) as a `ConvPool` when
products go through CPython's BLAS. The two layer objects keep their parameters and
specs; only the computation is shared:

- One im2col row per pooling window: the (k+1) x (k+1) x C input patch under its four
  outputs (plus a 1 for the bias), times the kernels banded into a ((k+1)^2*C + 1, 4*F)
  matrix, gives the window's four conv outputs in one product (1.44x the multiply-adds
  of plain im2col at k = 5, but a product that is no longer thin).
- The product is computed transposed, (4*F, windows): each window offset's outputs are
  one contiguous block, so the max over the four offsets (and the first-maximum winner
  routing the gradient, as MaxPool2D's) runs on long contiguous rows, and the conv's
  full-size output never exists. Each chunk's maxima are transposed (in cache) into the
  channel-last output the other layers keep.
- Backward routes the pooled gradient to the winning offsets, then dW is one product
  with the kept im2col rows, folded back from the banded form.

Outputs and gradients are those of the two layers run one after the other (the tests
compare them); the input gradient, which training never asks of a first layer, goes
through `Conv2D.input_grad`.
"""
from __future__ import annotations

import numpy as np

from . import rowconv
from .conv import padded_channel_last, window_view
from .layers import Layer

CHUNK_BYTES = 1 << 20   # bytes of the transposed product per chunk of examples


def wanted(backend_name: str, conv, pool) -> bool:
    """Whether Conv2D ``conv`` followed by MaxPool2D ``pool`` should run as a ConvPool."""
    return (pool.size == pool.stride == 2 and conv.stride == 1
            and rowconv.grouped_wanted(backend_name, conv.stride, conv.kernel_size, conv.in_channels))


def _banded(w: np.ndarray, b: np.ndarray, dtype) -> np.ndarray:
    """(F, C, k, k) kernels and (F,) biases -> (4*F, (k+1)^2*C + 1): row (di, dj, f) holds
    W[f] placed at offset (di, dj) of a (k+1) x (k+1) x C patch, then b[f]."""
    f, c, k, _ = w.shape
    banded = np.zeros((2, 2, f, k + 1, k + 1, c), dtype=dtype)
    for di in range(2):
        for dj in range(2):
            banded[di, dj, :, di:di + k, dj:dj + k, :] = w.transpose(0, 2, 3, 1)
    bias = np.broadcast_to(b.astype(dtype, copy=False), (4, f)).reshape(4 * f, 1)
    return np.concatenate([banded.reshape(4 * f, -1), bias], axis=1)


class ConvPool(Layer):
    """``pool(conv(x))`` for a `wanted` pair. x: (N, C, H, W) -> (N, F, H'/2, W'/2)."""

    def __init__(self, conv, pool):
        self.conv, self.pool = conv, pool
        self._x = self._patches = self._raised = None
        self._separate = False   # the last forward ran the two layers one after the other

    def params(self):
        return self.conv.params()

    def forward(self, x, training=False):
        conv = self.conv
        h_out, w_out = conv.output_shape(x.shape[2], x.shape[3]) if x.ndim == 4 else (1, 1)
        self._separate = (x.ndim != 4 or x.shape[1] != conv.in_channels or h_out < 2
                          or w_out < 2 or h_out % 2 or w_out % 2)
        if self._separate:   # shapes the fused path does not cover (the layers raise on bad ones)
            return self.pool.forward(conv.forward(x, training), training)
        n, c = x.shape[:2]
        k, p, f = conv.kernel_size, conv.padding, conv.out_channels
        dtype = np.result_type(x.dtype, conv.W.value.dtype)
        xp = padded_channel_last(x, p, dtype)
        conv._x_shape, self._x = x.shape, x
        h2, w2, width = h_out // 2, w_out // 2, (k + 1) * (k + 1) * c
        windows = window_view(xp, k + 1, 2, h2, w2)   # (N, H'/2, W'/2, k+1, k+1, C) patches
        patches = np.empty((n, h2, w2, width + 1), dtype=dtype)   # im2col rows + a 1
        patches[..., width] = 1
        banded = _banded(conv.W.value, conv.b.value, dtype)
        pooled = np.empty((n, h2 * w2, f), dtype=dtype)   # channel-last (N, H'/2, W'/2, F)
        raised = np.empty((3, f, n, h2 * w2), dtype=bool) if training else None
        step = max(1, CHUNK_BYTES // (4 * f * h2 * w2 * pooled.itemsize))   # examples
        product = np.empty((4 * f, min(step, n) * h2 * w2), dtype=dtype)
        maxima = np.empty((f, min(step, n) * h2 * w2), dtype=dtype)
        for start in range(0, n, step):
            m = min(step, n - start)
            rows = patches[start:start + m]   # copied per chunk: the product reads it from cache
            np.copyto(rows[..., :width].reshape(m, h2, w2, k + 1, k + 1, c), windows[start:start + m])
            offsets = np.matmul(banded, rows.reshape(-1, width + 1).T, out=product[:, :m * h2 * w2])
            _max_of_offsets(offsets.reshape(4, f, -1), maxima[:, :m * h2 * w2],
                            None if raised is None else raised[:, :, start:start + m].reshape(3, f, -1))
            pooled[start:start + m] = maxima[:, :m * h2 * w2].T.reshape(m, h2 * w2, f)
        patches = patches.reshape(n * h2 * w2, width + 1)
        raised = None if raised is None else raised.reshape(3, f, n * h2 * w2)
        self._patches, self._raised = (patches, raised) if training else (None, None)
        return pooled.reshape(n, h2, w2, f).transpose(0, 3, 1, 2)   # (N, F, H'/2, W'/2) view

    def backward(self, dout):
        return self._backward(dout, input_grad=True)

    def backward_params(self, dout):
        self._backward(dout, input_grad=False)

    def _backward(self, dout, input_grad: bool):
        if self._separate:
            dy = self.pool.backward(dout)
            return self.conv.backward(dy) if input_grad else self.conv.backward_params(dy)
        if self._raised is None:   # forward ran for inference: run it again, keeping its state
            self.forward(self._x, training=True)
        conv, patches, raised = self.conv, self._patches, self._raised
        n, f, h2, w2 = dout.shape
        k, c = conv.kernel_size, conv.in_channels
        windows = n * h2 * w2
        dpooled = dout.transpose(0, 2, 3, 1).reshape(windows, f)   # a view if channel-last
        dbanded = np.zeros((4 * f, patches.shape[1]), dtype=patches.dtype)
        doffsets_all = np.empty((4, f, windows), dtype=patches.dtype) if input_grad else None
        step = max(1, CHUNK_BYTES // (4 * f * h2 * w2 * patches.itemsize)) * h2 * w2
        doffsets = np.empty((4, f, min(step, windows)), dtype=patches.dtype)
        dmaxima = np.empty((f, min(step, windows)), dtype=patches.dtype)
        for start in range(0, windows, step):
            stop = min(start + step, windows)
            chunk = doffsets[:, :, :stop - start] if doffsets_all is None \
                else doffsets_all[:, :, start:stop]
            np.copyto(dmaxima[:, :stop - start], dpooled[start:stop].T)   # transposed in cache
            _route(dmaxima[:, :stop - start], raised[:, :, start:stop], chunk)
            dbanded += chunk.reshape(4 * f, -1) @ patches[start:stop]
        # Fold the banded gradient back: W[f, c, a, b] is at patch (a + di, b + dj) of row (di, dj, f).
        spread = dbanded[:, :-1].reshape(2, 2, f, k + 1, k + 1, c)
        dw = sum(spread[di, dj, :, di:di + k, dj:dj + k, :] for di in range(2) for dj in range(2))
        conv.W.grad += dw.transpose(0, 3, 1, 2)
        conv.b.grad += dbanded[:, -1].reshape(4, f).sum(axis=0)
        if not input_grad:
            return None
        # The conv output's gradient, channel-last: dy[n, 2*i2 + di, 2*j2 + dj, f].
        dy = doffsets_all.reshape(2, 2, f, n, h2, w2).transpose(3, 4, 0, 5, 1, 2)
        return conv.input_grad(np.ascontiguousarray(dy).reshape(n, 2 * h2, 2 * w2, f))


def _max_of_offsets(offsets: np.ndarray, out: np.ndarray, raised: np.ndarray | None) -> None:
    """out = max over the 4 window offsets (4, F, m) -> (F, m); raised (unless None, (3, F, m)
    bool): raised[o - 1] where offset o beat every earlier one. The window's first maximum
    in row-major order is then the last offset that raised it (0 if none did)."""
    if raised is not None:
        np.greater(offsets[1], offsets[0], out=raised[0])
    np.maximum(offsets[0], offsets[1], out=out)
    for o in range(2, 4):
        if raised is not None:
            np.greater(offsets[o], out, out=raised[o - 1])
        np.maximum(out, offsets[o], out=out)


def _route(grad: np.ndarray, raised: np.ndarray, outs: np.ndarray) -> None:
    """outs[o] (4, F, m) = grad (F, m) where offset o won (see `_max_of_offsets`), else 0."""
    rest = outs[0]
    np.copyto(rest, grad)
    for o in range(3, 0, -1):   # the last offset that raised the max wins
        np.multiply(rest, raised[o - 1], out=outs[o])
        rest -= outs[o]          # exact: rest - rest = 0, rest - 0 = rest
