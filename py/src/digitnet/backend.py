"""The compute backend: which matrix product every layer uses, chosen in one place.

Dense and convolution layers call `matmul(a, b)`; this module decides how it is computed:

- ``"numpy"``:  ``np.matmul`` (BLAS-backed in CPython: the fastest choice there).
- ``"einsum"``: ``np.einsum("ik,kj->ij")``. Pyodide's numpy has no BLAS: its matmul is a
  naive loop, while einsum's sum-of-products kernels measured 1.5-2.5x faster on the
  MLP's and the CNN's shapes. (No ``optimize=True``: that routes back to matmul.)
- ``"sgemm"``:  scipy's BLAS ``sgemm`` for 2-D float32 operands, numpy otherwise; only
  when scipy imports (the browser loads it for training).

The default is einsum in Pyodide and numpy elsewhere; ``with use("sgemm"): ...`` switches
for a block and restores the previous product. Every backend returns float32 for float32
inputs and float64 for float64 inputs (gradient checks).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

NAMES = ("numpy", "einsum", "sgemm")
DEFAULT = "einsum" if sys.platform == "emscripten" else "numpy"


def einsum_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, k) @ (k, n) through einsum; other shapes go to numpy."""
    if a.ndim != 2 or b.ndim != 2:
        return np.matmul(a, b)
    return np.einsum("ik,kj->ij", a, b)


def blas_matmul() -> Callable | None:
    """A float32 ``a @ b`` through scipy's BLAS ``sgemm``, or None without scipy.

    No input copies for C- or F-contiguous operands (a transposed view such as ``x.T``
    is F-contiguous: it is passed with BLAS's transpose flag instead of being copied);
    the result is C-contiguous. Anything but two 2-D float32 arrays goes to numpy.
    """
    try:
        from scipy.linalg.blas import sgemm
    except ImportError:
        return None

    def operand(m: np.ndarray):
        """(array sgemm reads as Fortran-ordered, trans flag) such that op(array) = m.T."""
        if m.flags.f_contiguous:     # m.T is C-contiguous: give m, ask BLAS to transpose
            return m, 1
        if not m.flags.c_contiguous:
            m = np.ascontiguousarray(m)
        return m.T, 0                 # m.T of a C-contiguous m is F-contiguous: no copy

    def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if (a.ndim != 2 or b.ndim != 2 or a.dtype != np.float32 or b.dtype != np.float32
                or 0 in a.shape or 0 in b.shape):
            return np.matmul(a, b)
        # (a @ b).T = b.T @ a.T, computed Fortran-ordered: its transpose is C-ordered a @ b.
        x, trans_x = operand(b)
        y, trans_y = operand(a)
        return sgemm(1.0, x, y, trans_a=trans_x, trans_b=trans_y).T

    return matmul


def product(name: str) -> Callable:
    """The matrix product called ``name``; ValueError if unknown or unavailable."""
    if name == "numpy":
        return np.matmul
    if name == "einsum":
        return einsum_matmul
    if name == "sgemm":
        fn = blas_matmul()
        if fn is None:
            raise ValueError("the sgemm backend needs scipy, which is not available here")
        return fn
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(NAMES)}")


def available(name: str) -> bool:
    try:
        product(name)
    except ValueError:
        return False
    return True


_current = {"name": DEFAULT, "fn": product(DEFAULT)}


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` with the current backend, written into ``out`` if given."""
    if out is None:
        return _current["fn"](a, b)
    if _current["fn"] is np.matmul:
        return np.matmul(a, b, out=out)
    np.copyto(out, _current["fn"](a, b))
    return out


def current() -> str:
    """The name of the backend `matmul` uses now."""
    return _current["name"]


@contextmanager
def use(name: str) -> Iterator[str]:
    """Compute every product with backend ``name`` inside the block, then restore."""
    fn = product(name)
    saved = dict(_current)
    _current.update(name=name, fn=fn)
    try:
        yield name
    finally:
        _current.update(saved)
