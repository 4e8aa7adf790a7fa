"""Turn a drawn or photographed digit into the 28x28 input MNIST models expect.

MNIST's recipe, reproduced with numpy only: find the ink, crop to it, scale it to fit a
20x20 box keeping its aspect ratio (area averaging, i.e. anti-aliased), then place it in
a 28x28 field so its centre of mass sits at pixel (14, 14) — where MNIST digits have it.
Ink polarity is detected, so dark ink on light paper and light ink on dark both work.
Not a goal: segmenting several digits, deskewing, or removing heavy clutter from photos.
"""
from __future__ import annotations

import numpy as np

FIELD = 28
BOX = 20
CENTRE = 14.0  # mean centre of mass of MNIST digits, in pixel-index coordinates
MIN_CONTRAST = 0.08  # ink weaker than this (in [0, 1]) counts as no ink at all
NOISE_FLOOR = 0.1  # fraction of the peak ink treated as paper texture / sensor noise


def ink_map(gray: np.ndarray) -> np.ndarray | None:
    """(H, W) grayscale -> (H, W) float64 ink strength in [0, 1], or None if there is no ink.

    The background level is the median of the image border; ink is whatever differs
    from it, in whichever direction the border says is "paper". Paper texture and sensor
    noise (estimated from the border's spread) are subtracted before normalising.
    """
    g = np.asarray(gray, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] < 2 or g.shape[1] < 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError("image contains NaN or infinite values")
    if np.asarray(gray).dtype == np.uint8 or g.max() > 1.0:
        g = g / 255.0
    border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    background = float(np.median(border))
    noise = 1.4826 * float(np.median(np.abs(border - background)))  # robust std of the paper
    ink = (background - g if background > 0.5 else g - background) - 3 * noise
    peak = ink.max()
    if peak < MIN_CONTRAST:
        return None
    return np.clip((ink / peak - NOISE_FLOOR) / (1 - NOISE_FLOOR), 0.0, 1.0)


def _area_matrix(n_src: int, n_dst: int) -> np.ndarray:
    """(n_dst, n_src) weights averaging source pixels over each destination pixel's span."""
    edges = np.arange(n_dst + 1) * (n_src / n_dst)  # destination pixel edges in source units
    lo, hi = edges[:-1, None], edges[1:, None]
    src = np.arange(n_src)[None, :]
    overlap = np.clip(np.minimum(hi, src + 1) - np.maximum(lo, src), 0.0, None)
    return overlap / (n_src / n_dst)


def resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample (h, w) -> (height, width) by area averaging (exact box filter)."""
    return _area_matrix(img.shape[0], height) @ img @ _area_matrix(img.shape[1], width).T


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, col) intensity-weighted centre of a 2-D array with positive total mass."""
    total = img.sum()
    rows = (img.sum(axis=1) * np.arange(img.shape[0])).sum() / total
    cols = (img.sum(axis=0) * np.arange(img.shape[1])).sum() / total
    return float(rows), float(cols)


def to_mnist(gray: np.ndarray) -> np.ndarray | None:
    """(H, W) grayscale image of any size -> (28, 28) float32 in [0, 1], ink = 1.

    Returns None when the image holds no ink (blank pad, empty photo).
    """
    ink = ink_map(gray)
    if ink is None:
        return None
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    digit = resize_area(crop, new_h, new_w)
    digit /= digit.max()
    # Integer shift putting the centre of mass nearest (14, 14), kept inside the field.
    com_r, com_c = centre_of_mass(digit)
    top = int(np.clip(round(CENTRE - com_r), 0, FIELD - new_h))
    left = int(np.clip(round(CENTRE - com_c), 0, FIELD - new_w))
    out = np.zeros((FIELD, FIELD), dtype=np.float32)
    out[top:top + new_h, left:left + new_w] = digit
    return out
