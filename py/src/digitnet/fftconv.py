"""Stride-1 convolution through the FFT, for runtimes whose matrix products are slow.

`conv.Conv2D` uses this where BLAS has no SIMD kernels (Pyodide's scipy ``sgemm``):
there an im2col product of the CNN's second layer (16 -> 32 channels, 5x5) costs
k*k = 25 multiply-adds per input channel, output channel and position, while in the
frequency domain it is one complex multiply-add (4 real ones) per channel pair and
frequency bin, plus the transforms. Forward and both gradients measured ~1.8x faster
there. The result equals the direct correlation up to float rounding (tests compare
both ways and check gradients through this path).

Layout: images are kept position-major, (H, W, N, C), so that ``rfft2`` over axes
(0, 1) yields (bins, N, C) stacks whose per-bin matrices BLAS ``?gemm`` reads in place.
The transform size is the zero-padded input's, (H + 2p, W + 2p): circular correlation
then never wraps into the outputs that are kept.

Shapes: x (N, C, H, W), W (F, C, k, k), y (N, F, H', W') with H' = H + 2p - k + 1.
"""
from __future__ import annotations

import numpy as np

# Below these sizes direct im2col products are cheaper than the transforms (measured
# in Pyodide on the CNN's layers: the 1-channel first layer stays direct).
MIN_IN_CHANNELS = 8
MIN_BATCH = 16


def gemm_for(dtype):
    """scipy's BLAS ?gemm for complex arrays of ``dtype`` (cgemm or zgemm), or None."""
    try:
        from scipy.linalg import blas
    except ImportError:
        return None
    return blas.cgemm if dtype == np.complex64 else blas.zgemm


def wanted(backend_name: str, n: int, in_channels: int, stride: int) -> bool:
    """Whether a Conv2D forward of ``n`` examples should take the FFT path."""
    return (backend_name == "sgemm" and stride == 1 and in_channels >= MIN_IN_CHANNELS
            and n >= MIN_BATCH)


class FFTState:
    """What backward needs from forward: the input's spectrum and the sizes."""

    def __init__(self, x_hat: np.ndarray, shape: tuple, size: tuple, gemm):
        self.x_hat = x_hat        # (bins, N, C) complex: rfft2 of the padded input
        self.shape = shape        # (N, C, H, W)
        self.size = size          # (P, Q): padded input size = transform size
        self.gemm = gemm


def _kernel_spectrum(w: np.ndarray, size: tuple) -> np.ndarray:
    """(F, C, k, k) kernels -> (bins, F, C) rfft2 of the kernels zero-padded to ``size``."""
    f, c = w.shape[:2]
    spec = np.fft.rfft2(w.transpose(2, 3, 0, 1), s=size, axes=(0, 1))   # (P, Qr, F, C)
    return np.ascontiguousarray(spec).reshape(-1, f, c)


def _spectrum(a: np.ndarray) -> np.ndarray:
    """(P, Q, N, D) real -> (bins, N, D) complex rfft2 over the two position axes."""
    spec = np.ascontiguousarray(np.fft.rfft2(a, axes=(0, 1)))
    return spec.reshape(-1, a.shape[2], a.shape[3])


def _image(spec: np.ndarray, size: tuple) -> np.ndarray:
    """(bins, N, D) complex -> (P, Q, N, D) real: the inverse of `_spectrum`."""
    p, q = size
    return np.fft.irfft2(spec.reshape(p, q // 2 + 1, *spec.shape[1:]), s=size, axes=(0, 1))


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: int, gemm):
    """y = correlate(pad(x), W) + b: (N, C, H, W) -> ((N, F, H', W') view, FFTState)."""
    n, c, h, wd = x.shape
    f, k = w.shape[0], w.shape[2]
    p = padding
    size = (h + 2 * p, wd + 2 * p)
    xp = np.zeros((size[0], size[1], n, c), dtype=x.dtype)
    xp[p:p + h, p:p + wd] = x.transpose(2, 3, 0, 1)
    x_hat = _spectrum(xp)                                       # (bins, N, C)
    w_hat = _kernel_spectrum(w, size)                           # (bins, F, C)
    y_hat = np.empty((x_hat.shape[0], n, f), dtype=x_hat.dtype)
    for i in range(len(x_hat)):
        # Correlation: Y = X conj(W).T per bin (N, F). BLAS computes Y.T = conj(W) X.T
        # from w_hat[i].T (C, F) and x_hat[i].T (C, N), column-major views: no copies.
        gemm(1.0, w_hat[i].T, x_hat[i].T, trans_a=2, c=y_hat[i].T, overwrite_c=1)
    h_out, w_out = size[0] - k + 1, size[1] - k + 1
    y = np.add(_image(y_hat, size)[:h_out, :w_out], b)          # (H', W', N, F)
    return y.transpose(2, 3, 0, 1), FFTState(x_hat, x.shape, size, gemm)


def backward(state: FFTState, dout: np.ndarray, w: np.ndarray, padding: int,
             input_grad: bool):
    """(dW (F, C, k, k), db (F,), dx (N, C, H, W) view or None) for dout (N, F, H', W')."""
    n, c, h, wd = state.shape
    f, k = w.shape[0], w.shape[2]
    p, gemm, x_hat = padding, state.gemm, state.x_hat
    h_out, w_out = dout.shape[2], dout.shape[3]
    dyp = np.zeros((state.size[0], state.size[1], n, f), dtype=dout.dtype)
    dyp[:h_out, :w_out] = dout.transpose(2, 3, 0, 1)
    db = dyp[:h_out, :w_out].sum(axis=(0, 1, 2))
    d_hat = _spectrum(dyp)                                      # (bins, N, F)
    # dW[d] = sum_i dy[i] x[i + d]: per bin dW = X^T conj(D) (C, F), read in place.
    dw_hat = np.empty((len(x_hat), f, c), dtype=x_hat.dtype)
    for i in range(len(x_hat)):
        gemm(1.0, x_hat[i].T, d_hat[i].T, trans_b=2, c=dw_hat[i].T, overwrite_c=1)
    dw = _image(dw_hat.reshape(-1, f, c), state.size)[:k, :k]   # (k, k, F, C)
    dw = dw.transpose(2, 3, 0, 1)
    if not input_grad:
        return dw, db, None
    # dx[m] = sum_i dy[i] W[m - i]: a convolution, per bin dX = D W (N, C).
    w_hat = _kernel_spectrum(w, state.size)                     # (bins, F, C)
    dx_hat = np.empty((len(x_hat), n, c), dtype=x_hat.dtype)
    for i in range(len(x_hat)):
        gemm(1.0, w_hat[i].T, d_hat[i].T, c=dx_hat[i].T, overwrite_c=1)   # dX.T = W.T D.T
    dx = _image(dx_hat, state.size)[p:p + h, p:p + wd]          # (H, W, N, C)
    return dw, db, dx.transpose(2, 3, 0, 1)
