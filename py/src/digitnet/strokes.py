"""Stroke-level augmentation of (N, H, W) digit batches, vectorised over the batch (numpy only).

- ``stroke_width``: thicker or thinner strokes by blending with a 3x3 grey dilation/erosion.
- ``repen``: thin a digit to its skeleton (``thin``) and redraw it (``redraw``) with a round
  pen of another width.
"""
from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------- stroke width

def _neighbourhood(images: np.ndarray, reduce) -> np.ndarray:
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2), dtype=images.dtype)
    padded[:, 1:-1, 1:-1] = images
    out = images.copy()
    for dy in range(3):
        for dx in range(3):
            reduce(out, padded[:, dy:dy + h, dx:dx + w], out=out)
    return out


def dilate(images: np.ndarray) -> np.ndarray:
    """(N, H, W) grey dilation: each pixel becomes the max of its 3x3 neighbourhood."""
    return _neighbourhood(images, np.maximum)


def erode(images: np.ndarray) -> np.ndarray:
    """(N, H, W) grey erosion: the min of the 3x3 neighbourhood (outside counts as 0)."""
    return _neighbourhood(images, np.minimum)


def stroke_width(images: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """(N, 28, 28) and (N,) amounts in [-1, 1] -> strokes blended towards the erosion
    (amount < 0) or the dilation (amount > 0); 0 leaves an image as it is."""
    a = np.asarray(amounts, dtype=np.float32)[:, None, None]
    target = np.where(a > 0, dilate(images), erode(images))
    return images + np.abs(a) * (target - images)


# ---------------------------------------------------------------- re-drawing with a pen

def thin(binary: np.ndarray, max_iterations: int = 20) -> np.ndarray:
    """(N, H, W) bool -> (N, H, W) bool one-pixel-wide skeletons (Zhang & Suen 1984),
    all images thinned together."""
    img = np.pad(binary.astype(bool), ((0, 0), (1, 1), (1, 1)))
    h, w = binary.shape[1:]
    for _ in range(max_iterations):
        changed = False
        for step in (0, 1):
            n = lambda dy, dx: img[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]  # noqa: E731
            # Neighbours P2..P9, clockwise from the one above.
            p = [n(-1, 0), n(-1, 1), n(0, 1), n(1, 1), n(1, 0), n(1, -1), n(0, -1), n(-1, -1)]
            count = sum(q.astype(np.int8) for q in p)
            transitions = sum((~p[k] & p[(k + 1) % 8]).astype(np.int8) for k in range(8))
            if step == 0:
                sides = ~(p[0] & p[2] & p[4]) & ~(p[2] & p[4] & p[6])
            else:
                sides = ~(p[0] & p[2] & p[6]) & ~(p[0] & p[4] & p[6])
            centre = img[:, 1:-1, 1:-1]
            remove = centre & (count >= 2) & (count <= 6) & (transitions == 1) & sides
            if remove.any():
                centre &= ~remove
                changed = True
        if not changed:
            break
    return img[:, 1:-1, 1:-1].copy()


def redraw(skeletons: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(N, H, W) bool skeletons and (N,) pen radii in pixels -> (N, H, W) float32 ink of a
    round pen run along them (antialiased: clip(radius + 0.5 - distance, 0, 1))."""
    n, h, w = skeletons.shape
    reach = int(np.ceil(np.max(radii) + 0.5))
    padded = np.pad(skeletons.astype(np.float32), ((0, 0), (reach, reach), (reach, reach)))
    out = np.zeros((n, h, w), np.float32)
    r = np.asarray(radii, np.float32)[:, None, None]
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            weight = np.clip(r + 0.5 - np.hypot(dy, dx), 0.0, 1.0)
            shifted = padded[:, reach + dy:reach + dy + h, reach + dx:reach + dx + w]
            np.maximum(out, shifted * weight, out=out)
    return out


def repen(images: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> the digits thinned to their skeletons and redrawn with a uniform
    round pen of the given (N,) radii, as the page's pad draws."""
    return redraw(thin(images > 0.5), radii)
