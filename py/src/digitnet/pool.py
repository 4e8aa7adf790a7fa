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
is k + k masked products. Inference and other strides loop over the k*k window offsets
(in Pyodide that is faster without winners to record; a reshape + ``max(axis=(3, 5))``
measured ~40x slower). With CPython's BLAS (the ``"numpy"`` backend) the tiled path works
a few examples at a time, so its passes stay in cache; in Pyodide, where each numpy call
costs more, whole batches (measured: the CNN's first pool trains 10% faster there).
"""
from __future__ import annotations

import numpy as np

from .backend import current
from .layers import Layer, register


def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is no integer >= minimum."""
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
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


CHUNK_BYTES = 1 << 19   # input bytes pooled at a time: a chunk's passes stay in cache


def _chunks(x: np.ndarray):
    """Yield (start, stop) over x's examples, about CHUNK_BYTES of x at a time with the
    ``"numpy"`` backend, else all of them at once."""
    step = max(1, CHUNK_BYTES // max(1, x[:1].size * x.itemsize)) if current() == "numpy" \
        else max(1, len(x))
    for start in range(0, len(x), step):
        yield start, min(start + step, len(x))


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
        self.size = positive_int(size, "size")
        self.stride = self.size if stride is None else positive_int(stride, "stride")
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
        pool = self._pool_tiles if training and self._tiles() else self._pool_offsets
        out, self._winner = pool(x, h_out, w_out, winners=training)
        self._x = x
        return out

    def backward(self, dout):
        x = self._x
        h_out, w_out = dout.shape[2], dout.shape[3]
        tiles = self._tiles()
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

    def _tiles(self) -> bool:
        """Whether windows tile the input (then the two-stage path is taken)."""
        return self.stride == self.size <= 255   # row/column indices fit in uint8

    def _pool_tiles(self, x, h_out: int, w_out: int, winners: bool):
        """(maxima, and with ``winners`` (row won in each window column: (N, C, H', W'*k),
        column won in each window: (N, C, H', W')) as uint8, else None)."""
        k = self.size
        # New arrays keep x's memory order (empty_like of a view: order "K").
        out = np.empty_like(x[:, :, :h_out, :w_out])
        col_row = np.empty_like(x[:, :, :h_out, :k * w_out], dtype=np.uint8) if winners else None
        col_won = np.empty_like(out, dtype=np.uint8) if winners else None
        for i, j in _chunks(x):
            self._pool_tile_chunk(x[i:j], out[i:j], None if col_row is None else col_row[i:j],
                                  None if col_won is None else col_won[i:j])
        return out, ((col_row, col_won) if winners else None)

    def _pool_tile_chunk(self, x, out, col_row, col_won) -> None:
        """Fill ``out`` (and, unless None, ``col_row`` and ``col_won``) for examples x."""
        k = self.size
        h_out, w_out = out.shape[2], out.shape[3]
        rows = [x[:, :, di:k * h_out:k, :k * w_out] for di in range(k)]   # (n, C, H', W'*k)
        if k == 1:
            out[...] = rows[0]
            if col_row is not None:
                col_row[...] = 0
                col_won[...] = 0
            return
        # Stage 1, down each window column: a later row wins only if strictly greater.
        if col_row is not None:
            np.greater(rows[1], rows[0], out=col_row.view(bool))
        col_max = np.maximum(rows[0], rows[1])
        for di in range(2, k):
            if col_row is not None:
                np.maximum(col_row, _as_uint8(rows[di] > col_max) * np.uint8(di), out=col_row)
            np.maximum(col_max, rows[di], out=col_max)
        # Stage 2, across the column maxima: among equal maxima the earlier row wins.
        cols = [col_max[..., dj::k] for dj in range(k)]                    # (n, C, H', W')
        best, best_row = cols[0], None
        for dj in range(1, k):
            if col_row is not None:
                better = cols[dj] > best
                tie = cols[dj] == best
                if tie.any():
                    best_row = col_row[..., 0::k] if best_row is None else best_row
                    better |= tie & (col_row[..., dj::k] < best_row)
                if dj == 1:
                    np.copyto(col_won, _as_uint8(better))
                else:
                    np.maximum(col_won, _as_uint8(better) * np.uint8(dj), out=col_won)
                if dj < k - 1:
                    best_row = np.where(better, col_row[..., dj::k],
                                        col_row[..., 0::k] if best_row is None else best_row)
            best = np.maximum(best, cols[dj], out=out)

    def _unpool_tiles(self, dout):
        k = self.size
        x = self._x
        col_row, col_won = self._winner
        h_out, w_out = col_won.shape[2], col_won.shape[3]
        exact = x.shape[2] == k * h_out and x.shape[3] == k * w_out
        dx = (np.empty_like if exact else np.zeros_like)(x, dtype=dout.dtype)
        for i, j in _chunks(x):
            # dout routed to each window's winning column, then to that column's winning row
            by_column = np.empty_like(col_row[i:j], dtype=dout.dtype)
            _route(dout[i:j], col_won[i:j], [by_column[..., dj::k] for dj in range(k)])
            _route(by_column, col_row[i:j],
                   [dx[i:j, :, di:k * h_out:k, :k * w_out] for di in range(k)])
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
