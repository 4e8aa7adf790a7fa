"""Optimisers: small classes holding state aligned with a model's parameter list.

Each ``step()`` reads ``Param.grad`` and updates ``Param.value`` in place. Scalars are
Python floats, so float32 parameters are updated in float32 (a numpy float64 scalar would
promote every update to float64).
"""
from __future__ import annotations

import math

import numpy as np

from .layers import Param


class SGD:
    """value -= lr * grad, with optional (heavy-ball) momentum: v = m*v + grad; value -= lr*v."""

    def __init__(self, params: list[Param], lr: float = 1e-3, momentum: float = 0.0):
        if lr <= 0:
            raise ValueError("learning rate must be positive")
        self.params, self.lr, self.momentum = params, float(lr), float(momentum)
        self.velocity = [np.zeros_like(p.value) for p in params] if momentum else None
        self._scaled = [np.empty_like(p.value) for p in params]  # lr * g, without a new array

    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad
            if self.velocity is not None:
                v = self.velocity[i]
                v *= self.momentum
                v += g
                g = v
            scaled = np.multiply(g, float(self.lr), out=self._scaled[i], casting="same_kind")
            p.value -= scaled


# Adam updates this many elements of a parameter at a time, in two reused buffers: the
# arrays of a block stay in the CPU's cache (whole-array temporaries made a step ~1.5x slower).
CHUNK = 32768


class Adam:
    """Adam (Kingma & Ba, 2015) with bias-corrected first and second moments.

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  value -= lr * m_hat / (sqrt(v_hat) + eps)
    with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), t counting steps from 1.
    ``m`` and ``v`` list the moments, shaped like the parameters.
    """

    def __init__(self, params: list[Param], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        if lr <= 0:
            raise ValueError("learning rate must be positive")
        self.params, self.lr = params, float(lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = [np.zeros_like(p.value) for p in params]
        self.v = [np.zeros_like(p.value) for p in params]
        self._scratch = {}  # dtype -> two (CHUNK,) buffers
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # Fold both bias corrections into one step size (same maths, fewer array passes).
        step = float(self.lr) * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        eps_hat = self.eps * math.sqrt(1 - b2 ** self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            arrays = (p.value, p.grad, m, v)
            if not all(a.flags.c_contiguous for a in arrays):
                self._update(*arrays, np.empty_like(m), np.empty_like(m), step, eps_hat)
                continue
            flat = [a.reshape(-1) for a in arrays]
            tmp, upd = self._buffers(m.dtype)
            for s in range(0, m.size, CHUNK):
                part = [a[s:s + CHUNK] for a in flat]
                n = part[0].size
                self._update(*part, tmp[:n], upd[:n], step, eps_hat)

    def _update(self, value, g, m, v, tmp, upd, step: float, eps_hat: float) -> None:
        """One block: moments from gradient g, then value -= step * m / (sqrt(v) + eps_hat)."""
        b1, b2 = self.beta1, self.beta2
        m *= b1
        m += np.multiply(g, 1 - b1, out=tmp)
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps_hat
        np.multiply(m, step, out=upd)
        upd /= tmp
        value -= upd

    def _buffers(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        if dtype not in self._scratch:
            self._scratch[dtype] = (np.empty(CHUNK, dtype), np.empty(CHUNK, dtype))
        return self._scratch[dtype]


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
