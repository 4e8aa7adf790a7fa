"""Finite-difference gradient checking for any layer that follows the contract in
`digitnet.layers` (forward caches, backward returns dx and *adds* into Param.grad).

Use float64 layers and inputs: central differences with eps=1e-6 are accurate to about
1e-9 relative in float64, but meaningless in float32.
"""
from __future__ import annotations

import numpy as np


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f(x)`` with respect to array ``x``.

    ``x`` is perturbed in place, one element at a time, and restored afterwards, so ``f``
    may also ignore its argument and read ``x`` through a closure (e.g. a layer's
    ``Param.value``).
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(*x.shape):
        old = x[i].item()
        x[i] = old + eps
        f_plus = float(f(x))
        x[i] = old - eps
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(max |a|, max |n|): scale-aware, robust to near-zero entries."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise AssertionError(f"gradient shape {analytic.shape} != expected {numeric.shape}")
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0), 1e-12)
    return float(np.abs(analytic - numeric).max(initial=0.0) / scale)


def check_layer_grads(layer, x: np.ndarray, *, tol: float = 1e-6, eps: float = 1e-6,
                      seed: int = 0, training: bool = False,
                      check_input: bool = True) -> dict[str, float]:
    """Compare ``layer``'s analytic gradients with finite differences.

    The scalar loss is ``sum(layer.forward(x) * R)`` with a fixed random ``R``, so the
    upstream gradient is ``R``. Checks dx (unless ``check_input`` is False) and every
    ``Param.grad``; also checks that ``backward`` *accumulates* into ``Param.grad``
    (a second call doubles it). Raises AssertionError naming the first failure; returns
    ``{name: relative error}`` ("x" for the input, then each param's name).
    """
    x = np.array(x, dtype=np.float64)    # private copy: perturbed in place below
    out = layer.forward(x, training=training)
    r = np.random.default_rng(seed).standard_normal(out.shape)

    def loss(_=None) -> float:
        return float(np.sum(layer.forward(x, training=training) * r))

    params = layer.params()
    for p in params:
        p.grad[...] = 0
    layer.forward(x, training=training)
    dx = layer.backward(r.copy())
    analytic = {p.name: p.grad.copy() for p in params}
    if len(analytic) != len(params):
        raise AssertionError("parameter names must be unique within a layer")

    errors: dict[str, float] = {}
    if check_input:
        if dx.shape != x.shape:
            raise AssertionError(f"dx shape {dx.shape} != x shape {x.shape}")
        errors["x"] = rel_error(dx, numeric_grad(loss, x, eps))
    for p in params:
        errors[p.name] = rel_error(analytic[p.name], numeric_grad(loss, p.value, eps))

    # Accumulation: a second backward (after a fresh forward) adds the same amount again.
    layer.forward(x, training=training)
    layer.backward(r.copy())
    for p in params:
        errors[p.name + " (accumulated)"] = rel_error(p.grad, 2 * analytic[p.name])
        p.grad[...] = 0

    bad = {k: v for k, v in errors.items() if not v < tol}
    if bad:
        raise AssertionError(f"gradient check failed for {type(layer).__name__} "
                             f"(tol {tol:g}): {bad}; all: {errors}")
    return errors
