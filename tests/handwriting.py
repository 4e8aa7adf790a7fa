"""Handwriting styles MNIST under-represents, as stroke lists, and a numpy renderer.

Strokes are lists of (x, y) points in [0, 1] of a square pad (the shape `helpers.draw_mouse`
draws in the browser). ``render`` paints them as web/js/pad.js sends them (fitted to a
112 px square, round pen 14% of the drawing's extent) and returns the 28x28 input
`preprocess.to_mnist` makes of it.
"""
from __future__ import annotations

import math

import numpy as np

from drawings import segment_span

SEND_PEN = 0.14  # web/js/pad.js: the pen of the image sent, as a fraction of the extent


def _line(a, b, n=10):
    return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(n + 1)]


def _ellipse(cx, cy, rx, ry, n=40):
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n))
            for i in range(n + 3)]


def _mirrored(strokes):
    return [[(1 - x, y) for x, y in stroke] for stroke in strokes]


def mirrored_seven():
    """A 7 written mirror-wise (the bar, then the stem down to the left): read as a 5."""
    return _mirrored([_line((0.25, 0.15), (0.75, 0.15)) + _line((0.75, 0.15), (0.4, 0.88))[1:]])


def mirrored_three():
    """A 3 written mirror-wise, like an epsilon: read as an 8."""
    top, bottom = _ellipse(0.5, 0.3, 0.2, 0.15, n=40), _ellipse(0.5, 0.68, 0.22, 0.18, n=40)
    return _mirrored([top[30:] + top[:25] + bottom[35:] + bottom[:22]])


def boxy_six():
    """A 6 drawn with straight strokes, like a digital display: read as a 5."""
    return [_line((0.7, 0.15), (0.3, 0.15)) + _line((0.3, 0.15), (0.3, 0.85))[1:]
            + _line((0.3, 0.85), (0.7, 0.85))[1:] + _line((0.7, 0.85), (0.7, 0.5))[1:]
            + _line((0.7, 0.5), (0.3, 0.5))[1:]]


# name -> (the digit meant, stroke maker): styles the shipped MLP misreads (a person's own
# habits MNIST has none of), for the "teach it your handwriting" tests.
STYLES = {"mirrored_seven": (7, mirrored_seven), "mirrored_three": (3, mirrored_three),
          "boxy_six": (6, boxy_six)}


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
    """Strokes -> (28, 28) uint8 MNIST input (ink = 255), as the page would classify them:
    like web/js/pad.js's paintFitted, the drawing scaled and centred to fill the square,
    with a pen of SEND_PEN of its extent (straight segments instead of the pad's curves)."""
    from digitnet.preprocess import to_mnist

    pts = np.concatenate([np.asarray(s, dtype=np.float64) for s in strokes])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = max(float((hi - lo).max()), 0.01)
    scale = 0.9 * size / (extent * (1 + SEND_PEN))
    centre = (lo + hi) / 2
    r = SEND_PEN * extent * scale / 2
    ink = np.zeros((size, size))
    for stroke in strokes:
        p = (np.asarray(stroke, dtype=np.float64) - centre) * scale + size / 2
        a, b = p[:-1] if len(p) > 1 else p, p[1:] if len(p) > 1 else p
        for (ax, ay), (bx, by) in zip(a, b):
            # Only pixels within r + 0.5 of the segment get ink: paint its bounding box.
            rows, cols = segment_span(ay, by, r, size), segment_span(ax, bx, r, size)
            yy, xx = np.mgrid[rows, cols] + 0.5
            vx, vy = bx - ax, by - ay
            t = np.clip(((xx - ax) * vx + (yy - ay) * vy) / max(vx * vx + vy * vy, 1e-12), 0, 1)
            dist = np.hypot(xx - ax - t * vx, yy - ay - t * vy)
            ink[rows, cols] = np.maximum(ink[rows, cols], np.clip(r + 0.5 - dist, 0, 1))
    digit = to_mnist((ink * 255).astype(np.uint8))
    return np.round(digit * 255).astype(np.uint8)
