"""Handwriting styles MNIST under-represents, as stroke lists, and a numpy renderer.

Strokes are lists of (x, y) points in [0, 1] of a square pad (the shape `helpers.draw_mouse`
draws in the browser). ``render`` paints them like web/js/pad.js (round pen 7.5% of the
side, on a 112 px square) and returns the 28x28 input `preprocess.to_mnist` makes of it.
"""
from __future__ import annotations

import math

import numpy as np

PEN = 0.075


def _line(a, b, n=10):
    return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(n + 1)]


def _ellipse(cx, cy, rx, ry, n=40):
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n))
            for i in range(n + 3)]


def flag_one():
    """A 1 with a long flag (one stroke): the shipped MLP reads it as a 7."""
    return [_line((0.20, 0.42), (0.58, 0.12)) + _line((0.58, 0.12), (0.58, 0.88))[1:]]


def box_zero():
    """A 0 drawn as a box (one stroke): read as a 9."""
    return [_line((0.3, 0.15), (0.7, 0.15)) + _line((0.7, 0.15), (0.7, 0.85))[1:]
            + _line((0.7, 0.85), (0.3, 0.85))[1:] + _line((0.3, 0.85), (0.3, 0.15))[1:]]


def crossed_two():
    """A Z-shaped 2 with a crossbar: read as a 3."""
    return [_line((0.25, 0.18), (0.75, 0.18)) + _line((0.75, 0.18), (0.25, 0.84))[1:]
            + _line((0.25, 0.84), (0.78, 0.84))[1:], _line((0.32, 0.5), (0.68, 0.5))]


# name -> (the digit meant, stroke maker)
STYLES = {"flag_one": (1, flag_one), "box_zero": (0, box_zero),
          "crossed_two": (2, crossed_two)}


def jitter(strokes, rng: np.random.Generator, amount: float = 1.0):
    """A fresh drawing of the same style: small rotation, scale, slant, shift and wobble."""
    angle = math.radians(rng.uniform(-7, 7) * amount)
    sx, sy = 1 + rng.uniform(-0.1, 0.1) * amount, 1 + rng.uniform(-0.1, 0.1) * amount
    shear = rng.uniform(-0.12, 0.12) * amount
    dx, dy = rng.uniform(-0.05, 0.05, 2) * amount
    c, s = math.cos(angle), math.sin(angle)
    out = []
    for stroke in strokes:
        pts = []
        for x, y in stroke:
            x, y = (x - 0.5) * sx, (y - 0.5) * sy
            x += shear * y
            x, y = c * x - s * y, s * x + c * y
            wobble = rng.normal(0, 0.004 * amount, 2)
            pts.append((float(np.clip(0.5 + x + dx + wobble[0], 0.02, 0.98)),
                        float(np.clip(0.5 + y + dy + wobble[1], 0.02, 0.98))))
        out.append(pts)
    return out


def render(strokes, size: int = 112) -> np.ndarray:
    """Strokes -> (28, 28) uint8 MNIST input (ink = 255), as the page would classify them."""
    from digitnet.preprocess import to_mnist

    r = PEN * size / 2
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dist = np.full((size, size), np.inf)
    for stroke in strokes:
        p = np.asarray(stroke, dtype=np.float64) * size
        a, b = p[:-1] if len(p) > 1 else p, p[1:] if len(p) > 1 else p
        for (ax, ay), (bx, by) in zip(a, b):
            vx, vy = bx - ax, by - ay
            t = np.clip(((xx - ax) * vx + (yy - ay) * vy) / max(vx * vx + vy * vy, 1e-12), 0, 1)
            dist = np.minimum(dist, np.hypot(xx - ax - t * vx, yy - ay - t * vy))
    ink = np.clip(r + 0.5 - dist, 0, 1)
    digit = to_mnist((ink * 255).astype(np.uint8))
    return np.round(digit * 255).astype(np.uint8)
