"""MaxPool2D: the max over size x size windows, following the layer contract of `layers.py`.

Shapes: (N, C, H, W) -> (N, C, (H - k) // s + 1, (W - k) // s + 1) for window size k and
stride s; trailing rows/columns that fit no whole window are dropped (their gradient is
0). The gradient of each window goes to one element: its first maximum in row-major
window order, as a naive loop with ``argmax`` would route it, ties included.

Speed notes. Every pass is an element-wise numpy operation on strided views that keep x's
memory order (a Conv2D output is channel-last). When windows tile the input (s == k, the
usual case) the max is taken in two stages: down each window column (k whole rows at a
time: long contiguous runs) and then across the k column maxima of the now k times
smaller map. Training records, per stage, which row and which column won, so backward
is k + k masked products. Other strides loop over the k*k window offsets (a reshape +
``max(axis=(3, 5))`` measured ~40x slower).
"""
from __future__ import annotations

import numpy as np

from .layers import Layer, register


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _window_slices(k: int, stride: int, h_out: int, w_out: int):
    """Yield (offset index, row slice, col slice) for each of the k*k window offsets.

    For offset (di, dj) the slices pick, for every output position (i, j), the input
    element at (i*stride + di, j*stride + dj).
    """
    for di in range(k):
        rows = slice(di, di + stride * (h_out - 1) + 1, stride)
        for dj in range(k):
            cols = slice(dj, dj + stride * (w_out - 1) + 1, stride)
            yield di * k + dj, rows, cols


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as 0/1 bytes: bool -> float casts are slow (Pyodide especially)."""
    return mask.view(np.uint8)


def _route(grad: np.ndarray, won: np.ndarray, outs: list[np.ndarray]) -> None:
    """outs[j] = grad where ``won`` == j, else 0 (one product per j > 0; outs[0] gets what
    is left, grad - those products: exact, as at most one of them is non-zero)."""
    for j in range(1, len(outs)):
        np.multiply(grad, won if len(outs) == 2 else _as_uint8(won == j), out=outs[j])
    np.subtract(grad, outs[1], out=outs[0]) if len(outs) > 1 else np.copyto(outs[0], grad)
    for j in range(2, len(outs)):
        np.subtract(outs[0], outs[j], out=outs[0])


@register
class MaxPool2D(Layer):
    """Max over size x size windows moved by ``stride`` (default: size, non-overlapping).

    x: (N, C, H, W) -> (N, C, (H - size) // stride + 1, (W - size) // stride + 1).
    """

    def __init__(self, size: int = 2, stride: int | None = None):
        self.size = _positive_int(size, "size")
        self.stride = self.size if stride is None else _positive_int(stride, "stride")
        self._x = self._winner = None

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
        pool = self._pool_tiles if s == k else self._pool_offsets
        out, self._winner = pool(x, h_out, w_out, winners=training)
        self._x = x
        return out

    def backward(self, dout):
        x = self._x
        h_out, w_out = dout.shape[2], dout.shape[3]
        tiles = self.stride == self.size
        if self._winner is None:   # forward ran for inference: find the winners now
            pool = self._pool_tiles if tiles else self._pool_offsets
            self._winner = pool(x, h_out, w_out, winners=True)[1]
        reference = self._winner[-1] if tiles else self._winner   # an (N, C, H', W') record
        if np.argsort(dout.strides).tolist() != np.argsort(reference.strides).tolist():
            aligned = np.empty_like(reference, dtype=dout.dtype)   # one copy into x's order
            aligned[...] = dout
            dout = aligned
        return (self._unpool_tiles if tiles else self._unpool_offsets)(dout)

    # ------------------------------------------------------------ windows that tile x

    def _pool_tiles(self, x, h_out: int, w_out: int, winners: bool):
        """(maxima, and with ``winners`` (row won in each window column: (N, C, H', W'*k),
        column won in each window: (N, C, H', W')), else None)."""
        k = self.size
        index = np.uint8 if k <= 256 else np.int32
        rows = [x[:, :, di:k * h_out:k, :k * w_out] for di in range(k)]   # (N, C, H', W'*k)
        col_max, col_row = rows[0], None   # no copy: new arrays keep x's memory order
        for di in range(1, k):
            if winners:   # a later row wins only if strictly greater: the first max wins
                won = _as_uint8(rows[di] > col_max)
                col_row = (won.astype(index) if index is not np.uint8 else won) if di == 1 \
                    else np.maximum(col_row, won * index(di), out=col_row)
            col_max = np.maximum(col_max, rows[di], out=None if di == 1 else col_max)
        if k == 1:
            col_max = col_max.copy(order="K")
            col_row = np.zeros_like(col_max, dtype=index) if winners else None
        cols = [col_max[..., dj::k] for dj in range(k)]                    # (N, C, H', W')
        out, col_won, best_row = cols[0], None, None
        for dj in range(1, k):
            if winners:
                better = cols[dj] > out
                tie = cols[dj] == out
                if tie.any():   # equal maxima: the one in an earlier row comes first
                    best_row = col_row[..., 0::k] if best_row is None else best_row
                    better |= tie & (col_row[..., dj::k] < best_row)
                won = _as_uint8(better)
                col_won = (won.astype(index) if index is not np.uint8 else won) if dj == 1 \
                    else np.maximum(col_won, won * index(dj), out=col_won)
                if dj < k - 1:
                    best_row = np.where(better, col_row[..., dj::k],
                                        col_row[..., 0::k] if best_row is None else best_row)
            out = np.maximum(out, cols[dj], out=None if dj == 1 else out)
        if k == 1:
            out = out.copy(order="K")
            col_won = np.zeros_like(out, dtype=index) if winners else None
        return out, ((col_row, col_won) if winners else None)

    def _unpool_tiles(self, dout):
        k = self.size
        x = self._x
        col_row, col_won = self._winner
        h_out, w_out = col_won.shape[2], col_won.shape[3]
        by_column = np.empty_like(col_row, dtype=dout.dtype)   # dout at each window's column
        _route(dout, col_won, [by_column[..., dj::k] for dj in range(k)])
        exact = x.shape[2] == k * h_out and x.shape[3] == k * w_out
        dx = (np.empty_like if exact else np.zeros_like)(x, dtype=dout.dtype)
        _route(by_column, col_row, [dx[:, :, di:k * h_out:k, :k * w_out] for di in range(k)])
        return dx

    # ------------------------------------------------------------ any other stride

    def _pool_offsets(self, x, h_out: int, w_out: int, winners: bool):
        """(maxima, and with ``winners`` the window offset each came from, else None).

        An offset wins only where it beats every earlier one, so the winner is the last
        offset that raised the running max: its first maximum in row-major order."""
        k, s = self.size, self.stride
        out = winner = None
        for o, rows, cls in _window_slices(k, s, h_out, w_out):
            view = x[:, :, rows, cls]
            if out is None:
                out = view.copy(order="K")
                if winners:
                    winner = np.zeros_like(out, dtype=np.uint8 if k * k <= 256 else np.int32)
                continue
            if winners:
                np.maximum(winner, (view > out) * winner.dtype.type(o), out=winner)
            np.maximum(out, view, out=out)
        return out, winner

    def _unpool_offsets(self, dout):
        k, s = self.size, self.stride
        h_out, w_out = dout.shape[2], dout.shape[3]
        dx = np.zeros_like(self._x, dtype=dout.dtype)
        for o, rows, cls in _window_slices(k, s, h_out, w_out):
            won = _as_uint8(self._winner == o)
            if s > k:   # windows do not overlap: each input element gets at most one value
                np.multiply(dout, won, out=dx[:, :, rows, cls])
            else:
                dx[:, :, rows, cls] += dout * won
        return dx
