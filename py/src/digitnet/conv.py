"""Convolution layers for digitnet (the tutorial's "bonus idea"): Conv2D, Flatten and
Reshape, following the layer contract of `layers.py` (MaxPool2D lives in `pool.py` and is
importable from here too).

Aim: a small, readable and fast-enough CNN in plain numpy that trains in CPython in a
few minutes and still runs (slowly) in Pyodide, whose numpy has no BLAS. Each layer
computes exactly what a naive loop would (the tests keep such loops as the oracle).

Non-goals: dilation, groups, non-square kernels/strides/padding, padding modes other
than zeros, NHWC inputs, GPU, autograd.

Shapes (N = batch):
- ``Reshape((1, 28, 28))``: (N, 784) -> (N, 1, 28, 28). Models always take (N, 784)
  rows, so a CNN starts with this layer.
- ``Conv2D(C, F, k, stride=s, padding=p)``: (N, C, H, W) -> (N, F, H', W') with
  H' = (H + 2p - k) // s + 1 (same for W); weights W: (F, C, k, k), bias b: (F,).
- ``Flatten()``: (N, ...) -> (N, prod(...)).

Speed notes. Activations are kept batch-major and channel-last in memory: a layer's
(N, C, H, W) output is a view of an (N, H, W, C) buffer, and element-wise layers and
MaxPool2D keep that order. Conv2D works on a few examples at a time (``CHUNK_BYTES``):
their im2col matrix (rows (n, i, j), columns (di, dj, c)) is one copy from a strided
window view of the zero-padded input, small enough to stay in the CPU cache while the
matrix product (`backend.matmul`) reads it; a whole-batch column matrix (80 MB for the
CNN's second layer at batch 256) made every product wait on memory. Backward recomputes
those chunks rather than keeping them, gets dW from them, and gets dx as the
correlation of the (stride-dilated, zero-padded) output gradient with the flipped
kernels: again one window copy and one product per chunk, no scatter-add.

Other routes compute the same correlations where they are faster:
- with the ``"numpy"`` backend (CPython's BLAS), a stride-1 layer whose kernel rows are
  wide enough (k*C, or k*F for dx) goes through `rowconv.correlate`: row windows instead
  of im2col, k stacked products (the CNN's second layer: ~1.6x faster overall); a
  thinner one forward through `rowconv.correlate_grouped` (four outputs per im2col row);
- with the ``"numpy"`` backend, a thin stride-1 layer followed by MaxPool2D(2) (the
  CNN's first pair) runs as one `convpool.ConvPool` inside `model.Sequential`;
- with the ``"sgemm"`` backend (the page's training: BLAS without SIMD kernels) a
  stride-1 Conv2D with several input channels and a training-sized batch goes through
  `fftconv`: the CNN's second layer then costs about a third as much there.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import fftconv, rowconv
from .backend import current, matmul
from .layers import Layer, Param, register
from .pool import MaxPool2D, positive_int  # noqa: F401  (MaxPool2D: importable from here too)


CHUNK_BYTES = 1 << 19   # im2col bytes per chunk of examples: well inside a core's L2


def padded_channel_last(x: np.ndarray, p: int, dtype, width: int | None = None) -> np.ndarray:
    """One copy: (N, C, H, W) x (any strides) -> (N, H + 2p, ``width`` or W + 2p, C) in
    ``dtype``, x at row/column p and zeros around it."""
    n, c, h, w = x.shape
    xp = np.zeros((n, h + 2 * p, width or w + 2 * p, c), dtype=dtype)
    xp[:, p:p + h, p:p + w, :] = x.transpose(0, 2, 3, 1)
    return xp


def window_view(a: np.ndarray, k: int, stride: int, h_out: int, w_out: int) -> np.ndarray:
    """Read-only (N, H', W', k, k, C) view of an (N, H, W, C) array: element
    [n, i, j, di, dj, c] is a[n, i*stride + di, j*stride + dj, c]. No copy."""
    sn, sh, sw, sc = a.strides
    return as_strided(a, (a.shape[0], h_out, w_out, k, k, a.shape[3]),
                      (sn, sh * stride, sw * stride, sh, sw, sc), writeable=False)


def _chunk_size(window_view: np.ndarray) -> int:
    """Examples per chunk so that the chunk's im2col matrix is about CHUNK_BYTES."""
    per_example = window_view[:1].size * window_view.itemsize
    return max(1, CHUNK_BYTES // per_example)


def _k_major(windows: np.ndarray) -> bool:
    """Whether to copy an im2col matrix k*k*C-major rather than position-major: einsum (no
    BLAS) multiplies ~1.5-2.5x faster that way, and with few channels the position-major
    copy moves runs of only k*C numbers (k-major: runs of W')."""
    return current() == "einsum" or windows.shape[4] * windows.shape[5] < windows.shape[2]


def _columns(windows: np.ndarray, k_major: bool) -> np.ndarray:
    """The im2col copy of (n, H', W', k, k, C) windows: (k*k*C, n*H'*W') if ``k_major``,
    else (n*H'*W', k*k*C)."""
    width = windows.shape[3] * windows.shape[4] * windows.shape[5]
    if k_major:
        return windows.transpose(3, 4, 5, 0, 1, 2).reshape(width, -1)
    return windows.reshape(-1, width)


def _apply_kernels(windows: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """(n, H', W', k, k, C) windows times (k*k*C, F) kernels -> (n*H'*W', F) (im2col)."""
    if _k_major(windows):
        return matmul(np.ascontiguousarray(w2.T), _columns(windows, True)).T
    return matmul(_columns(windows, False), w2)


@register
class Conv2D(Layer):
    """2-D cross-correlation (what deep-learning libraries call convolution).

    x: (N, C, H, W) -> y: (N, F, H', W'); W: (F, C, k, k), b: (F,).
    y[n, f, i, j] = b[f] + sum_{c,di,dj} W[f, c, di, dj] * xpad[n, c, i*s + di, j*s + dj]
    where xpad is x with ``padding`` zeros on each side. He initialisation:
    W ~ N(0, 2 / (C*k*k)); biases start at zero.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, seed: int | None = None, dtype=np.float32):
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = positive_int(kernel_size, "kernel_size")
        self.stride = positive_int(stride, "stride")
        self.padding = positive_int(padding, "padding", minimum=0)
        k = self.kernel_size
        fan_in = self.in_channels * k * k
        rng = np.random.default_rng(seed)
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(self.out_channels, self.in_channels, k, k))
        self.W = Param(w.astype(dtype), "W")
        self.b = Param(np.zeros(self.out_channels, dtype=dtype), "b")
        self._xp = None        # zero-padded (N, Hp, Wp, C) input of the last forward
        self._x_rows = None    # or its unpadded (N, H, W, C) view, when it took `rowconv`
        self._x_shape = None   # (N, C, H, W)
        self._fft = None       # fftconv.FFTState when the last forward took the FFT path

    def params(self):
        return [self.W, self.b]

    def spec(self):
        return {"type": "Conv2D", "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel_size": self.kernel_size,
                "stride": self.stride, "padding": self.padding}

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """Spatial output size (H', W') for an (H, W) input."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def forward(self, x, training=False):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2D expects (N, {self.in_channels}, H, W) input, got {x.shape}")
        n, c, h, w = x.shape
        k, s, p, f = self.kernel_size, self.stride, self.padding, self.out_channels
        h_out, w_out = self.output_shape(h, w)
        if h_out < 1 or w_out < 1:
            raise ValueError(f"Conv2D input {h}x{w} is smaller than its {k}x{k} kernel "
                             f"(padding {p})")
        dtype = np.result_type(x.dtype, self.W.value.dtype)
        self._fft = None
        if fftconv.wanted(current(), n, c, s):
            y, self._fft = fftconv.forward(x.astype(dtype, copy=False),
                                           self.W.value.astype(dtype, copy=False),
                                           self.b.value.astype(dtype, copy=False), p)
            self._xp, self._x_rows, self._x_shape = None, None, x.shape
            return y
        if rowconv.wanted(current(), s, k, c):
            x_rows = x.transpose(0, 2, 3, 1).astype(dtype, copy=False)   # no copy
            self._xp, self._x_rows, self._x_shape = None, x_rows, x.shape
            y = rowconv.correlate(x_rows, rowconv.row_weights(self.W.value, dtype), p, h_out,
                                  w_out, self.b.value)
            return y.transpose(0, 3, 1, 2)                        # (N, F, H', W') view
        grouped = rowconv.grouped_wanted(current(), s, k, c)
        # Zero columns to spare if the grouped product reads past the padding.
        width = max(w + 2 * p, rowconv.grouped_width(w_out) + k - 1) if grouped else None
        xp = padded_channel_last(x, p, dtype, width)
        self._xp, self._x_rows, self._x_shape = xp, None, x.shape
        if grouped:
            y = rowconv.correlate_grouped(xp, self.W.value.astype(dtype, copy=False), h_out,
                                          w_out, self.b.value)
            return y.transpose(0, 3, 1, 2)                        # (N, F, H', W') view
        windows = window_view(xp, k, s, h_out, w_out)
        w2 = self.W.value.transpose(2, 3, 1, 0).reshape(k * k * c, f).astype(dtype)
        y = np.empty((n, h_out, w_out, f), dtype=dtype)
        rows = y.reshape(-1, f)                                   # (N*H'*W', F) view of y
        step, per_example = _chunk_size(windows), h_out * w_out
        for i in range(0, n, step):
            np.add(_apply_kernels(windows[i:i + step], w2), self.b.value,
                   out=rows[i * per_example:(i + step) * per_example])
        return y.transpose(0, 3, 1, 2)                            # (N, F, H', W') view

    def backward(self, dout):
        return self._backward(dout, input_grad=True)

    def backward_params(self, dout):
        self._backward(dout, input_grad=False)

    def _backward(self, dout, input_grad: bool):
        if self._fft is not None:
            dw, db, dx = fftconv.backward(self._fft, dout, self.W.value.astype(
                self._fft.x_hat.real.dtype, copy=False), self.padding, input_grad)
            self.W.grad += dw
            self.b.grad += db
            return dx
        n, c, h, w = self._x_shape
        k, s, p, f = self.kernel_size, self.stride, self.padding, self.out_channels
        h_out, w_out = dout.shape[2], dout.shape[3]
        xp = self._xp
        dtype = (xp if xp is not None else self._x_rows).dtype
        dy = np.ascontiguousarray(dout.transpose(0, 2, 3, 1), dtype=dtype)  # (N, H', W', F)
        if xp is None:
            dw = rowconv.kernel_grad(self._x_rows, dy, k, p)
        else:
            windows = window_view(xp, k, s, h_out, w_out)
            step = _chunk_size(windows)
            dw = np.zeros((k * k * c, f), dtype=dtype)
            k_major = _k_major(windows)
            for i in range(0, n, step):
                cols, dy_chunk = _columns(windows[i:i + step], k_major), dy[i:i + step].reshape(-1, f)
                dw += matmul(cols, dy_chunk) if k_major else matmul(cols.T, dy_chunk)
        self.W.grad += dw.reshape(k, k, c, f).transpose(3, 2, 0, 1)
        # Summed per position over the batch first: long contiguous runs (summing the
        # (N*H'*W', F) rows directly runs F numbers at a time).
        self.b.grad += dy.reshape(n, -1).sum(axis=0).reshape(-1, f).sum(axis=0)
        if not input_grad:
            return None
        return self.input_grad(dy)

    def input_grad(self, dy):
        """dx (N, C, H, W) (a view) of the last forward's input, from the output gradient
        dy given channel-last, (N, H', W', F). Parameter gradients are not touched."""
        n, c, h, w = self._x_shape
        k, s, p, f = self.kernel_size, self.stride, self.padding, self.out_channels
        h_out, w_out, dtype = dy.shape[1], dy.shape[2], dy.dtype
        if rowconv.wanted(current(), s, k, f):
            return self._input_grad_rows(dy).transpose(0, 3, 1, 2)   # (N, C, H, W) view
        # dx[n, i, j, c] = sum_{di, dj, f} W[f, c, di, dj] * dy[n, (i + p - di) / s, ...]
        # over whole quotients: a correlation of dy, spread s apart into zeros (k - 1 of
        # them before the first), with the kernels flipped, read from row/column p on.
        reach = p + max(p, k - 1)    # rows past the input's that the spread dy or a window needs
        step = _chunk_size(window_view(dy, k, 1, h, w))   # dx's im2col bytes per chunk
        spread = np.zeros((min(step, n), h + reach, w + reach, f), dtype=dtype)
        inner = spread[:, k - 1:k - 1 + s * h_out:s, k - 1:k - 1 + s * w_out:s, :]
        w_flip = self.W.value[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(k * k * f, c)
        w_flip = w_flip.astype(dtype)
        dx = np.empty((n, h, w, c), dtype=dtype)
        for i in range(0, n, step):
            m = min(step, n - i)
            inner[:m] = dy[i:i + m]
            grad_windows = window_view(spread[:m, p:, p:, :], k, 1, h, w)
            dx[i:i + m] = _apply_kernels(grad_windows, w_flip).reshape(m, h, w, c)
        return dx.transpose(0, 3, 1, 2)                           # (N, C, H, W) view

    def _input_grad_rows(self, dy):
        """dx (N, H, W, C) for stride 1 by `rowconv`: the correlation of dy, zero-padded
        by k - 1 - p (p > k - 1 crops instead), with the flipped kernels."""
        n, c, h, w = self._x_shape
        k, p = self.kernel_size, self.padding
        flipped = self.W.value.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]   # (C, F, k, k)
        return rowconv.correlate(dy, rowconv.row_weights(flipped, dy.dtype), k - 1 - p, h, w)


@register
class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...); backward restores the shape."""

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self._shape)


@register
class Reshape(Layer):
    """(N, ...) -> (N, *shape), e.g. ``Reshape((1, 28, 28))`` turns (N, 784) rows into
    (N, 1, 28, 28) images; backward restores the input shape."""

    def __init__(self, shape):
        self.shape = tuple(positive_int(d, "shape entries") for d in shape)

    def spec(self):
        return {"type": "Reshape", "shape": list(self.shape)}

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, dout):
        return dout.reshape(self._shape)
