"""Convolution layers for digitnet (the tutorial's "bonus idea"): Conv2D, MaxPool2D,
Flatten and Reshape, following the layer contract of `layers.py`.

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
- ``MaxPool2D(k, stride=s)``: (N, C, H, W) -> (N, C, (H - k) // s + 1, (W - k) // s + 1).
- ``Flatten()``: (N, ...) -> (N, prod(...)).

Speed notes. Conv2D uses im2col with the batch as the innermost axis: the input is
copied once into a zero-padded (C, H+2p, W+2p, N) buffer, then one slice copy per kernel
offset (k*k of them) fills the column matrix (C*k*k, H'*W'*N), and a single product with
the (F, C*k*k) weight matrix (`backend.matmul`) does the work. With N innermost each
slice copy moves runs of W'*N contiguous numbers instead of W' (measured ~2x faster than
an N-outer layout).
col2im in backward is the same loop adding slices (``np.add.at`` is far slower). The
output is an (N, F, H', W') *view* of an (F, H', W', N) buffer; element-wise layers and
MaxPool2D keep that memory order, so the next Conv2D's copies stay cheap and the
backward reshapes of the gradient are free. MaxPool2D loops over the k*k window offsets
with strided slices and ``np.maximum`` (a reshape + ``max(axis=(3, 5))`` measured ~40x
slower); backward finds, per window, the first offset equal to the max, so the gradient
goes to exactly one element even on ties.
"""
from __future__ import annotations

import numpy as np

from .backend import matmul
from .layers import Layer, Param, register


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _window_slices(k: int, stride: int, h_out: int, w_out: int):
    """Yield (offset index, di, dj, row slice, col slice) for each of the k*k kernel offsets.

    For offset (di, dj) the slices pick, for every output position (i, j), the input
    element at (i*stride + di, j*stride + dj).
    """
    for di in range(k):
        rows = slice(di, di + stride * (h_out - 1) + 1, stride)
        for dj in range(k):
            cols = slice(dj, dj + stride * (w_out - 1) + 1, stride)
            yield di * k + dj, di, dj, rows, cols


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
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.stride = _positive_int(stride, "stride")
        self.padding = _positive_int(padding, "padding", minimum=0)
        k = self.kernel_size
        fan_in = self.in_channels * k * k
        rng = np.random.default_rng(seed)
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(self.out_channels, self.in_channels, k, k))
        self.W = Param(w.astype(dtype), "W")
        self.b = Param(np.zeros(self.out_channels, dtype=dtype), "b")
        self._cols = None      # (C*k*k, N*H'*W') column matrix from the last forward
        self._x_shape = None   # (N, C, H, W)

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
        k, s, p = self.kernel_size, self.stride, self.padding
        h_out, w_out = self.output_shape(h, w)
        if h_out < 1 or w_out < 1:
            raise ValueError(f"Conv2D input {h}x{w} is smaller than its {k}x{k} kernel "
                             f"(padding {p})")
        dtype = np.result_type(x.dtype, self.W.value.dtype)
        # One copy: NCHW (any strides) -> zero-padded, batch-innermost (C, Hp, Wp, N).
        xt = x.transpose(1, 2, 3, 0)
        if p:
            xp = np.zeros((c, h + 2 * p, w + 2 * p, n), dtype=dtype)
            xp[:, p:p + h, p:p + w, :] = xt
        else:
            xp = np.ascontiguousarray(xt, dtype=dtype)
        # im2col: one slice copy per kernel offset; rows (c, di, dj), columns (i, j, n).
        cols = np.empty((c, k * k, h_out, w_out, n), dtype=dtype)
        for o, _, _, rows, cls in _window_slices(k, s, h_out, w_out):
            cols[:, o] = xp[:, rows, cls, :]
        cols = cols.reshape(c * k * k, h_out * w_out * n)
        self._cols, self._x_shape = cols, x.shape
        w2 = self.W.value.reshape(self.out_channels, -1)              # (F, C*k*k)
        y = matmul(w2, cols)                                          # (F, H'*W'*N)
        y += self.b.value[:, None]
        return y.reshape(self.out_channels, h_out, w_out, n).transpose(3, 0, 1, 2)

    def backward(self, dout):
        n, c, h, w = self._x_shape
        k, s, p = self.kernel_size, self.stride, self.padding
        f = self.out_channels
        h_out, w_out = dout.shape[2], dout.shape[3]
        # (N, F, H', W') -> (F, H'*W'*N); free when dout is in this layer's output order.
        dy = dout.transpose(1, 2, 3, 0).reshape(f, h_out * w_out * n)
        w2, cols = self.W.value.reshape(f, -1), self._cols
        dw, dcols = matmul(dy, cols.T), matmul(w2.T, dy)
        self.W.grad += dw.reshape(self.W.value.shape)
        self.b.grad += dy.sum(axis=1)
        dcols = dcols.reshape(c, k * k, h_out, w_out, n)
        # col2im: add each kernel offset's slice back into the padded input.
        dxp = np.zeros((c, h + 2 * p, w + 2 * p, n), dtype=dcols.dtype)
        for o, _, _, rows, cls in _window_slices(k, s, h_out, w_out):
            dxp[:, rows, cls, :] += dcols[:, o]
        return dxp[:, p:p + h, p:p + w, :].transpose(3, 0, 1, 2)   # (N, C, H, W) view


@register
class MaxPool2D(Layer):
    """Max over size x size windows moved by ``stride`` (default: size, non-overlapping).

    x: (N, C, H, W) -> (N, C, (H - size) // stride + 1, (W - size) // stride + 1);
    trailing rows/columns that fit no whole window are dropped (their gradient is 0).
    The gradient of each window goes to one element: its first maximum in row-major
    window order.
    """

    def __init__(self, size: int = 2, stride: int | None = None):
        self.size = _positive_int(size, "size")
        self.stride = self.size if stride is None else _positive_int(stride, "stride")
        self._x = self._out = None

    def spec(self):
        return {"type": "MaxPool2D", "size": self.size, "stride": self.stride}

    def forward(self, x, training=False):
        if x.ndim != 4:
            raise ValueError(f"MaxPool2D expects (N, C, H, W) input, got {x.shape}")
        k, s = self.size, self.stride
        h_out, w_out = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        if h_out < 1 or w_out < 1:
            raise ValueError(f"MaxPool2D input {x.shape[2]}x{x.shape[3]} is smaller than "
                             f"its {k}x{k} window")
        out = None
        for _, _, _, rows, cls in _window_slices(k, s, h_out, w_out):
            if out is None:
                # Copies keep x's memory order (e.g. the channel-major order of Conv2D).
                out = x[:, :, rows, cls].copy(order="K")
            else:
                np.maximum(out, x[:, :, rows, cls], out=out)
        self._x, self._out = x, out
        return out

    def backward(self, dout):
        # Which element won each window is worked out here rather than in forward, so
        # inference pays only for the maxima. Offsets are visited in row-major window
        # order and a window, once routed, takes no more: ties go to the first maximum.
        k, s = self.size, self.stride
        h_out, w_out = dout.shape[2], dout.shape[3]
        x, out = self._x, self._out
        dx = np.zeros_like(x, dtype=dout.dtype)   # same memory order as the input
        taken = None
        for o, _, _, rows, cls in _window_slices(k, s, h_out, w_out):
            hit = x[:, :, rows, cls] == out
            if taken is None:
                taken = hit
            elif o < k * k - 1:
                hit &= ~taken
                taken |= hit
            else:
                hit &= ~taken
            if s >= k:   # windows do not overlap: each input element gets at most one value
                np.multiply(dout, hit, out=dx[:, :, rows, cls])
            else:
                dx[:, :, rows, cls] += dout * hit
        return dx


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
        self.shape = tuple(_positive_int(d, "shape entries") for d in shape)

    def spec(self):
        return {"type": "Reshape", "shape": list(self.shape)}

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, dout):
        return dout.reshape(self._shape)
