"""Pad-like drawings for the non-digit tests: real MNIST digits as the pad would send them,
and generated non-digits (dots, frames, scribbles, lines along the border, noise).

Strokes are drawn like web/js/pad.js: round-capped lines PEN x side wide, antialiased.
Images are uint8; ``light_on_dark`` is the pad's polarity (its snapshot is white on black).
"""
import numpy as np
from PIL import Image

PEN = 0.075


def paint(points_list, side: int, pen: float = PEN) -> np.ndarray:
    """Strokes (lists of (x, y) in [0, 1]) -> (side, side) float ink coverage in [0, 1]."""
    ink = np.zeros((side, side))
    radius = pen * side / 2
    for pts in points_list:
        pts = np.clip(np.asarray(pts, dtype=float), 0, 1) * side
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            # Only pixels within radius + 0.5 of the segment get ink: paint its bounding box.
            rows, cols = segment_span(y0, y1, radius, side), segment_span(x0, x1, radius, side)
            yy, xx = np.mgrid[rows, cols] + 0.5
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
            dist = np.hypot(xx - x0 - t * dx, yy - y0 - t * dy)
            ink[rows, cols] = np.maximum(ink[rows, cols], np.clip(radius - dist + 0.5, 0, 1))
    return ink


def segment_span(a: float, b: float, radius: float, side: int) -> slice:
    """The pixels whose centres lie within radius + 0.5 of [min(a, b), max(a, b)] (and more)."""
    return slice(max(0, int(np.floor(min(a, b) - radius - 1))),
                 min(side, int(np.ceil(max(a, b) + radius + 1)) + 1))


def to_image(ink: np.ndarray, light_on_dark: bool = True) -> np.ndarray:
    return ((ink if light_on_dark else 1 - ink) * 255 + 0.5).astype(np.uint8)


def pad_digit(digit: np.ndarray, rng: np.random.Generator, side: int = 280) -> np.ndarray:
    """(784,) MNIST digit -> (side, side) float ink, drawn as on the pad: its 20x20 box scaled
    to 35-90% of the pad, anywhere inside it, stroke thickness varied by the threshold."""
    img = digit.reshape(28, 28)
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    crop = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = rng.uniform(0.35, 0.9) * side / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    big = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
                     dtype=float) / 255
    level = rng.uniform(0.2, 0.6)           # lower = thicker strokes
    big = np.clip((big - level) / 0.15 + 0.5, 0, 1)
    out = np.zeros((side, side))
    top, left = rng.integers(0, side - h + 1), rng.integers(0, side - w + 1)
    out[top:top + h, left:left + w] = big
    return out


# ---------------------------------------------------------------- non-digits

def dot(rng, side):
    x, y = rng.uniform(0.1, 0.9, 2)
    if rng.random() < 0.5:
        return paint([[(x, y)]], side)
    angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 1.0) * PEN
    return paint([[(x, y), (x + length * np.cos(angle), y + length * np.sin(angle))]], side)


def frame(rng, side):
    inset = rng.uniform(0.0, 0.03, 4)
    l, t, r, b = inset[0], inset[1], 1 - inset[2], 1 - inset[3]
    corners = [(l, t), (r, t), (r, b), (l, b)]
    start, n_sides = rng.integers(0, 4), rng.choice([3, 4])    # a full frame or three sides
    return paint([[corners[(start + i) % 4] for i in range(n_sides + 1)]], side)


def border_line(rng, side):
    inset, length = rng.uniform(0.0, 0.04), rng.uniform(0.5, 1.0)
    a = rng.uniform(0, 1 - length)
    edge = rng.integers(0, 4)
    if edge == 0:
        pts = [(a, inset), (a + length, inset)]
    elif edge == 1:
        pts = [(a, 1 - inset), (a + length, 1 - inset)]
    elif edge == 2:
        pts = [(inset, a), (inset, a + length)]
    else:
        pts = [(1 - inset, a), (1 - inset, a + length)]
    return paint([pts], side)


def scribble(rng, side):
    kind = rng.integers(0, 3)
    if kind == 0:     # random zigzag all over the pad
        pts = rng.uniform(0.02, 0.98, (rng.integers(12, 40), 2))
    elif kind == 1:   # back and forth, row after row
        n = rng.integers(6, 14)
        ys = np.linspace(0.05, 0.95, n)
        pts = [(0.05 if i % 2 else 0.95, y) for i, y in enumerate(ys)]
    else:             # overlapping loops wandering over the pad
        t = np.linspace(0, 2 * np.pi * rng.uniform(4, 9), 90)
        radius = rng.uniform(0.12, 0.3) * (1 + 0.3 * np.sin(t * rng.uniform(0.2, 0.5)))
        drift = np.cumsum(rng.normal(0, 0.015, (len(t), 2)), axis=0)
        pts = np.stack([0.5 + radius * np.cos(t), 0.5 + radius * np.sin(t)], axis=1) + drift
    return paint([list(map(tuple, pts))], side)


def noise(rng, side):
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.random((side, side))
    if kind == 1:
        return (rng.random((side, side)) < rng.uniform(0.02, 0.3)).astype(float)
    blocks = rng.random((side // 8 + 1, side // 8 + 1)) < 0.3
    return np.kron(blocks, np.ones((8, 8)))[:side, :side].astype(float)


NON_DIGITS = {"dot": dot, "frame": frame, "border line": border_line, "scribble": scribble,
              "noise": noise}


def framed_seven(side: int = 280) -> np.ndarray:
    """A 7 drawn inside a frame along the pad's border (float ink)."""
    seven = paint([[(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]], side)
    edge = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
    return np.maximum(seven, paint([edge], side))
