"""Stride-1 correlation by row windows and stacked matrix products (CPython's BLAS).

`conv.Conv2D` uses this with the ``"numpy"`` backend for stride-1 layers whose row width
k*C is large enough (the CNN's second layer: k*C = 80 forward, k*F = 160 for dx). Instead
of one im2col row of k*k*C numbers per output position, each chunk of examples gets one
copy of its *row windows*: X[n, r, j, dj, c] = a[n, r, j + dj, c] for every input row r,
k times fewer numbers. The output is then a sum of k stacked products, one per kernel row
di: out[n, i, :] += X[n, i + di, :] @ W[di], where the rows i + di of one example are a
contiguous slice of X (positions flattened row-major). For the CNN's second layer this
cut the copies ~4x and ran the products at the same BLAS rate (forward 21 -> 14 ms,
dx 36 -> 16 ms at batch 256 on one thread). Not used in Pyodide, whose stacked
``np.matmul`` is a plain loop without BLAS.

Layers with thin rows (the CNN's first layer: one channel, k*C = 5) take `correlate_grouped`
forward instead: one im2col row serves G adjacent output positions of a row, with
kernels banded into a (k*(k+G-1)*C, G*F) matrix. That is (k+G-1)/k times the
multiply-adds (1.6x at G = 4), but the product is no longer thin and the copy is 2.5x
smaller (first layer forward: 8 -> 5 ms at batch 256).

Arrays are channel-last: inputs a (N, H, W, C) (zero padding is added per chunk),
outputs (N, H', W', F); weights in row form w_rows (k, k*C, F): w_rows[di, dj*C + c, f] =
W[f, c, di, dj].
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

CHUNK_BYTES = 1 << 20    # row-window bytes per chunk of examples: inside a core's L2
MIN_ROW_WIDTH = 32       # below this k*C the products get too thin: use im2col instead


GROUP = 4                # output positions per row in `correlate_grouped`


def wanted(backend_name: str, stride: int, kernel_size: int, channels: int) -> bool:
    """Whether a stride-``stride`` correlation over ``channels`` input channels with
    k x k kernels should take `correlate` (row windows)."""
    return backend_name == "numpy" and stride == 1 and kernel_size * channels >= MIN_ROW_WIDTH


def grouped_wanted(backend_name: str, stride: int, kernel_size: int, channels: int) -> bool:
    """Whether such a correlation should take `correlate_grouped` (rows too thin)."""
    return backend_name == "numpy" and stride == 1 and kernel_size * channels < MIN_ROW_WIDTH


def grouped_width(w_out: int) -> int:
    """Input columns `correlate_grouped` reads for ``w_out`` outputs per row of a k-wide
    kernel, minus k - 1: w_out rounded up to a multiple of GROUP."""
    return -(-w_out // GROUP) * GROUP


def row_weights(w: np.ndarray, dtype) -> np.ndarray:
    """(F, C, k, k) kernels -> (k, k*C, F) row form (a contiguous copy in ``dtype``)."""
    f, c, k, _ = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0), dtype=dtype).reshape(k, k * c, f)


def _row_windows(a: np.ndarray, k: int, w_out: int) -> np.ndarray:
    """Read-only (N, H, W', k, C) view of an (N, H, W, C) array: element [n, r, j, dj, c]
    is a[n, r, j + dj, c]. No copy."""
    sn, sh, sw, sc = a.strides
    return as_strided(a, (a.shape[0], a.shape[1], w_out, k, a.shape[3]),
                      (sn, sh, sw, sw, sc), writeable=False)


def _chunks(a: np.ndarray, k: int, h_out: int, w_out: int, pad: int):
    """Yield (start, stop, X) per chunk of examples: X (m, (h_out + k - 1)*w_out, k*C)
    holds the row windows of a[start:stop] with ``pad`` zero rows and columns before
    its first (a negative pad crops) and zeros after as needed. The padding is made per
    chunk, in cache (one buffer each, refilled for every chunk)."""
    n, h, w, c = a.shape
    rows, cols = h_out + k - 1, w_out + k - 1
    per_example = rows * w_out * k * c * a.itemsize
    step = max(1, min(n, CHUNK_BYTES // per_example))
    padded = np.zeros((step, rows, cols, c), dtype=a.dtype)
    p0, a0 = max(pad, 0), max(-pad, 0)   # a's row/column a0 lands at padded row/column p0
    n_rows, n_cols = min(rows - p0, h - a0), min(cols - p0, w - a0)
    buffer = np.empty((step, rows, w_out, k, c), dtype=a.dtype)
    for start in range(0, n, step):
        m = min(step, n - start)
        if n_rows > 0 and n_cols > 0:
            padded[:m, p0:p0 + n_rows, p0:p0 + n_cols] = \
                a[start:start + m, a0:a0 + n_rows, a0:a0 + n_cols]
        np.copyto(buffer[:m], _row_windows(padded[:m], k, w_out))
        yield start, start + m, buffer[:m].reshape(m, rows * w_out, k * c)


def correlate(a: np.ndarray, w_rows: np.ndarray, pad: int, h_out: int, w_out: int,
              bias: np.ndarray | None = None) -> np.ndarray:
    """out[n, i, j, f] = bias[f] + sum_{di, dj, c} ap[n, i + di, j + dj, c] * W[f, c, di, dj]
    where ap is a with ``pad`` zeros before its first row and column (a negative pad
    drops that many) and zeros past its end.

    a: (N, H, W, C), any strides; w_rows: (k, k*C, F) (`row_weights`); returns
    out (N, h_out, w_out, F), C-contiguous.
    """
    k, _, f = w_rows.shape
    n, positions = a.shape[0], h_out * w_out
    out = np.empty((n, positions, f), dtype=a.dtype)
    tiled_bias = None if bias is None else np.tile(bias.astype(a.dtype, copy=False), positions)
    partial = None
    for start, stop, rows in _chunks(a, k, h_out, w_out, pad):
        acc = out[start:stop]
        np.matmul(rows[:, :positions], w_rows[0], out=acc)
        if partial is None or len(partial) != stop - start:
            partial = np.empty_like(acc)
        for di in range(1, k):
            np.matmul(rows[:, di * w_out:di * w_out + positions], w_rows[di], out=partial)
            acc += partial
        if tiled_bias is not None:
            flat = acc.reshape(stop - start, -1)
            np.add(flat, tiled_bias, out=flat)
    return out.reshape(n, h_out, w_out, f)


def kernel_grad(a: np.ndarray, dy: np.ndarray, k: int, pad: int) -> np.ndarray:
    """dW in row form (k, k*C, F): sum_{n, i, j} ap[n, i + di, j + dj, c] * dy[n, i, j, f]
    at [di, dj*C + c, f], ap as in `correlate`. a: (N, H, W, C); dy: (N, H', W', F)."""
    n, h_out, w_out, f = dy.shape
    c, positions = a.shape[3], h_out * w_out
    dy = np.ascontiguousarray(dy).reshape(n, positions, f)
    dw = np.zeros((k, k * c, f), dtype=np.result_type(a.dtype, dy.dtype))
    partial = None
    for start, stop, rows in _chunks(a, k, h_out, w_out, pad):
        if partial is None or len(partial) != stop - start:
            partial = np.empty((stop - start, k * c, f), dtype=dw.dtype)
        for di in range(k):
            np.matmul(rows[:, di * w_out:di * w_out + positions].transpose(0, 2, 1),
                      dy[start:stop], out=partial)
            dw[di] += partial.sum(axis=0)
    return dw


def correlate_grouped(a: np.ndarray, w: np.ndarray, h_out: int, w_out: int,
                      bias: np.ndarray | None = None) -> np.ndarray:
    """What `correlate` computes, GROUP output positions per im2col row.

    a: (N, >= h_out + k - 1, >= grouped_width(w_out) + k - 1, C) (columns past w_out + k - 1
    only feed outputs that are dropped); w: (F, C, k, k). Returns (N, h_out, w_out, F), a
    view of a C-contiguous (N, h_out, grouped_width(w_out), F) array.
    """
    f, c, k, _ = w.shape
    g, span = GROUP, GROUP + k - 1
    n, groups = a.shape[0], grouped_width(w_out) // GROUP
    # banded[di, t, c, q, f] = W[f, c, di, t - q]: input column t of a group feeds output q.
    banded = np.zeros((k, span, c, g, f), dtype=a.dtype)
    for q in range(g):
        banded[:, q:q + k, :, q, :] = w.transpose(2, 3, 1, 0)
    banded = banded.reshape(k * span * c, g * f)
    out = np.empty((n, h_out, groups * g, f), dtype=a.dtype)
    rows_out = out.reshape(n, -1)
    tiled_bias = None if bias is None else np.tile(bias.astype(a.dtype, copy=False), h_out * groups * g)
    sn, sh, sw, sc = a.strides
    per_example = h_out * groups * k * span * c * a.itemsize
    step = max(1, min(n, CHUNK_BYTES // per_example))
    buffer = np.empty((step, h_out, groups, k, span, c), dtype=a.dtype)
    for start in range(0, n, step):
        m = min(step, n - start)
        np.copyto(buffer[:m], as_strided(a[start:], (m, h_out, groups, k, span, c),
                                         (sn, sh, g * sw, sh, sw, sc), writeable=False))
        np.matmul(buffer[:m].reshape(-1, k * span * c), banded,
                  out=rows_out[start:start + m].reshape(-1, g * f))
        if tiled_bias is not None:
            np.add(rows_out[start:start + m], tiled_bias, out=rows_out[start:start + m])
    return out[:, :, :w_out]
