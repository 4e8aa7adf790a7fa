"""Stride-1 convolution through the FFT, for runtimes whose matrix products are slow.

`conv.Conv2D` uses this where BLAS has no SIMD kernels (Pyodide's scipy ``sgemm``):
there an im2col product of the CNN's second layer (16 -> 32 channels, 5x5) costs
k*k = 25 multiply-adds per input channel, output channel and position, while in the
frequency domain it is one complex multiply-add (4 real ones) per channel pair and
frequency bin, plus the transforms. Forward and both gradients measured ~3x faster
there. The result equals the direct correlation up to float rounding (tests compare
both ways and check gradients through this path).

Layout: images are kept position-major, (H, W, N, C), so that ``rfft2`` over axes
(0, 1) yields (bins, N, C) stacks whose per-bin matrices BLAS ``?gemm`` reads in place.
The unpadded input sits at the origin of a (P, Q) = (H + p, W + p) zero frame (for
p < k): circular correlation then never wraps into the outputs that are kept, and the
CNN's 14x14 maps transform at 16x16.

Shapes: x (N, C, H, W), W (F, C, k, k), y (N, F, H', W') with H' = H + 2p - k + 1.
"""
from __future__ import annotations

import numpy as np

# Below these sizes direct im2col products are cheaper than the transforms (measured
# in Pyodide on the CNN's layers: the 1-channel first layer stays direct).
MIN_IN_CHANNELS = 8
MIN_BATCH = 16


def gemm_for(dtype):
    """scipy's BLAS ?gemm for complex arrays of ``dtype``: cgemm or zgemm."""
    from scipy.linalg import blas   # present wherever the sgemm backend is
    return blas.cgemm if dtype == np.complex64 else blas.zgemm


def wanted(backend_name: str, n: int, in_channels: int, stride: int) -> bool:
    """Whether a Conv2D forward of ``n`` examples should take the FFT path."""
    return (backend_name == "sgemm" and stride == 1 and in_channels >= MIN_IN_CHANNELS
            and n >= MIN_BATCH)


class FFTState:
    """What backward needs from forward: the input's spectrum and the sizes."""

    def __init__(self, x_hat: np.ndarray, shape: tuple, size: tuple, gemm):
        self.x_hat = x_hat        # (bins, N, C) complex: rfft2 of the input in its frame
        self.shape = shape        # (N, C, H, W)
        self.size = size          # (P, Q): the transform size
        self.gemm = gemm


def transform_size(h: int, w: int, padding: int, k: int) -> tuple[int, int]:
    """(P, Q): the smallest periods at which circular correlation of the unpadded input
    (placed at the origin) reproduces the padded layer's outputs and both gradients."""
    def period(n):
        return max(n + padding, n + 2 * padding - k + 1, k)
    return period(h), period(w)


def _kernel_spectrum(w: np.ndarray, size: tuple) -> np.ndarray:
    """(F, C, k, k) kernels -> (bins, F, C) rfft2 of the kernels zero-padded to ``size``."""
    f, c = w.shape[:2]
    spec = np.fft.rfft2(w.transpose(2, 3, 0, 1), s=size, axes=(0, 1))   # (P, Qr, F, C)
    return np.ascontiguousarray(spec).reshape(-1, f, c)


def _spectrum(a: np.ndarray, size: tuple) -> np.ndarray:
    """(h, w, N, D) real, at the origin of a zero (P, Q) frame -> (bins, N, D) complex
    rfft2 over the two position axes (the frame's zero rows are never transformed)."""
    half = np.fft.rfft(a, n=size[1], axis=1)                   # (h, Qr, N, D)
    spec = np.ascontiguousarray(np.fft.fft(half, n=size[0], axis=0))
    return spec.reshape(-1, a.shape[2], a.shape[3])


def _image(spec: np.ndarray, size: tuple, rows, cols) -> np.ndarray:
    """(bins, N, D) complex -> (len(rows), len(cols), N, D) real: the inverse of
    `_spectrum` at the given rows and columns of the (P, Q) frame only."""
    p, q = size
    columns = np.fft.ifft(spec.reshape(p, q // 2 + 1, *spec.shape[1:]), axis=0)[rows]
    return np.fft.irfft(columns, n=q, axis=1)[:, cols]


def _wrapped(start: int, count: int, period: int) -> np.ndarray:
    """Indices start, start + 1, ... (count of them) modulo ``period``."""
    return np.arange(start, start + count) % period


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: int):
    """y = correlate(pad(x), W) + b: (N, C, H, W) -> ((N, F, H', W'), FFTState).

    With x at the frame's origin rather than at (p, p), output (i, j) sits at
    ((i - p) mod P, (j - p) mod Q) of the circular correlation."""
    n, c, h, wd = x.shape
    f, k, p = w.shape[0], w.shape[2], padding
    size = transform_size(h, wd, p, k)
    x_hat = _spectrum(x.transpose(2, 3, 0, 1), size)           # (bins, N, C)
    w_hat = _kernel_spectrum(w, size)                          # (bins, F, C)
    gemm = gemm_for(x_hat.dtype)
    y_hat = np.empty((x_hat.shape[0], n, f), dtype=x_hat.dtype)
    for i in range(len(x_hat)):
        # Correlation: Y = X conj(W).T per bin (N, F). BLAS computes Y.T = conj(W) X.T
        # from w_hat[i].T (C, F) and x_hat[i].T (C, N), column-major views: no copies.
        gemm(1.0, w_hat[i].T, x_hat[i].T, trans_a=2, c=y_hat[i].T, overwrite_c=1)
    h_out, w_out = h + 2 * p - k + 1, wd + 2 * p - k + 1
    y = _image(y_hat, size, _wrapped(-p, h_out, size[0]), _wrapped(-p, w_out, size[1]))
    y += b                                                     # (H', W', N, F)
    return y.transpose(2, 3, 0, 1), FFTState(x_hat, x.shape, size, gemm)


def backward(state: FFTState, dout: np.ndarray, w: np.ndarray, padding: int,
             input_grad: bool):
    """(dW (F, C, k, k), db (F,), dx (N, C, H, W) view or None) for dout (N, F, H', W').

    dy is transformed at the origin too; then dW[d] sits at (d - p) mod P of the
    correlation of dy with x, and dx[m] at m + p of the convolution of dy with W."""
    n, c, h, wd = state.shape
    f, k = w.shape[0], w.shape[2]
    p, gemm, x_hat, size = padding, state.gemm, state.x_hat, state.size
    d_hat = _spectrum(dout.transpose(2, 3, 0, 1), size)        # (bins, N, F)
    db = d_hat[0].real.sum(axis=0)                             # bin (0, 0): sums over i, j
    # Per bin dW = X^T conj(D) (C, F), read in place.
    dw_hat = np.empty((len(x_hat), f, c), dtype=x_hat.dtype)
    for i in range(len(x_hat)):
        gemm(1.0, x_hat[i].T, d_hat[i].T, trans_b=2, c=dw_hat[i].T, overwrite_c=1)
    corner = _wrapped(-p, k, size[0]), _wrapped(-p, k, size[1])
    dw = _image(dw_hat, size, *corner).transpose(2, 3, 0, 1)    # (k, k, F, C) -> (F, C, k, k)
    if not input_grad:
        return dw, db, None
    # Per bin dX = D W (N, C): BLAS computes dX.T = W.T D.T.
    w_hat = _kernel_spectrum(w, size)                          # (bins, F, C)
    dx_hat = np.empty((len(x_hat), n, c), dtype=x_hat.dtype)
    for i in range(len(x_hat)):
        gemm(1.0, w_hat[i].T, d_hat[i].T, c=dx_hat[i].T, overwrite_c=1)
    dx = _image(dx_hat, size, slice(p, p + h), slice(p, p + wd))   # (H, W, N, C)
    return dw, db, dx.transpose(2, 3, 0, 1)
