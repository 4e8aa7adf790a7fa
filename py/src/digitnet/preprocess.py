"""Turn a drawn or photographed digit into the 28x28 input MNIST models expect.

MNIST's recipe, reproduced with numpy only: find the ink, crop to it, scale it to fit a
20x20 box keeping its aspect ratio (area averaging, i.e. anti-aliased), then place it in
a 28x28 field so its centre of mass sits at pixel (14, 14) — where MNIST digits have it.
Ink polarity is detected, so dark ink on light paper and light ink on dark both work.

``prepare`` tells three outcomes apart: a digit image, nothing drawn (blank or tiny
images), and ink that does not look like a digit (see `inkshape` for the rules: dots,
frames and lines along the border, scribbles, noise). Lines along the image's border are
dropped before cropping, so a digit drawn inside a frame is still read.
Not a goal: segmenting several digits, deskewing, or removing heavy clutter from photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import inkshape

FIELD = 28
BOX = 20
CENTRE = 14.0  # mean centre of mass of MNIST digits, in pixel-index coordinates
MIN_CONTRAST = 0.08  # ink weaker than this (in [0, 1]) counts as no ink at all
NOISE_FLOOR = 0.1  # fraction of the peak ink treated as paper texture / sensor noise
MIN_SIDE = 8  # images smaller than this on a side cannot hold a readable digit
PAPER_BAND = 0.15  # pixels this close to the paper level count as paper
MIN_PAPER = 0.4  # a drawing leaves at least this share of the image as plain paper

DIGIT, EMPTY, NOT_A_DIGIT = "digit", "empty", "not a digit"


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` found.

    ``outcome``: DIGIT, EMPTY or NOT_A_DIGIT. ``image``: (28, 28) float32 in [0, 1],
    ink = 1, for DIGIT, and the same framing of the ink for NOT_A_DIGIT (for a preview);
    None for EMPTY. ``reason``: a short clause ("the image is blank") for EMPTY and
    NOT_A_DIGIT, "" for a digit. ``border_dropped``: lines along the image's border (a
    frame) were left out of ``image`` and of the decision.
    """
    outcome: str
    image: np.ndarray | None
    reason: str = ""
    border_dropped: bool = False

    @property
    def message(self) -> str:
        """One sentence for the user ("" for a digit)."""
        if self.outcome == EMPTY:
            return f"No digit found: {self.reason}."
        if self.outcome == NOT_A_DIGIT:
            return f"That doesn't look like a digit: {self.reason}."
        return ""


def _gray(gray: np.ndarray) -> np.ndarray:
    g = np.asarray(gray, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError("image contains NaN or infinite values")
    if np.asarray(gray).dtype == np.uint8 or g.max() > 1.0:
        g = g / 255.0
    return g


def _median_of_counts(steps: np.ndarray) -> float:
    """np.median of an array of non-negative ints, by counting them (no sort)."""
    counts = np.cumsum(np.bincount(steps.ravel()))
    n = int(counts[-1])
    lo = int(np.searchsorted(counts, (n - 1) // 2, side="right"))
    hi = int(np.searchsorted(counts, n // 2, side="right"))
    return (lo + hi) / 2


def _paper(g: np.ndarray, eight_bit: np.ndarray | None = None) -> tuple[float, float, float]:
    """(paper level, paper noise, share of pixels near the paper level) of an image;
    ``eight_bit``: the same image as uint8, if it came as such (its medians are counted).

    The paper level is the image's median: ink covers less than half of any drawing,
    even when it runs along the border (a frame), so the median is paper whichever the
    polarity. The noise is a robust spread of the pixels near that level.
    """
    if eight_bit is not None:   # the same medians as below, up to rounding, in O(n)
        twice = 2 * eight_bit.astype(np.int32)
        middle = int(2 * _median_of_counts(eight_bit))        # twice the paper level
        background = middle / 510
        near = np.abs(g - background)
        paper = near < 0.25
        noise = 1.4826 * _median_of_counts(np.abs(twice[paper] - middle)) / 510 if paper.any() else 0.0
        return background, noise, float((near < PAPER_BAND).mean())
    background = float(np.median(g))
    near = np.abs(g - background)
    paper = near[near < 0.25]
    noise = 1.4826 * float(np.median(paper)) if paper.size else 0.0
    return background, noise, float((near < PAPER_BAND).mean())


def ink_map(gray: np.ndarray) -> np.ndarray | None:
    """(H, W) grayscale -> (H, W) float64 ink strength in [0, 1], or None if there is no ink.

    Ink is whatever differs from the paper level (see ``_paper``), in the direction
    (darker or lighter) that differs most. Paper texture and sensor noise are subtracted
    before normalising.
    """
    g = _gray(gray)
    if min(g.shape) < 2:
        raise ValueError(f"expected an image at least 2x2 pixels, got shape {g.shape}")
    return _ink(g, _paper(g, _eight_bit(gray)))


def _eight_bit(gray) -> np.ndarray | None:
    return gray if isinstance(gray, np.ndarray) and gray.dtype == np.uint8 else None


def _ink(g: np.ndarray, paper: tuple[float, float, float]) -> np.ndarray | None:
    """``ink_map`` of a checked float image whose ``_paper`` statistics are known."""
    background, noise, _ = paper
    dark, light = background - g - 3 * noise, g - background - 3 * noise
    ink = dark if dark.max() > light.max() else light
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


def frame_ink(ink: np.ndarray) -> np.ndarray:
    """(H, W) ink map with some ink -> (28, 28) float32 MNIST framing."""
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


def prepare(gray: np.ndarray) -> Prepared:
    """(H, W) grayscale image of any size and polarity -> a Prepared outcome.

    Raises ValueError only for input that is not an image (not 2-D, NaN/inf values).
    """
    g = _gray(gray)
    if min(g.shape) < MIN_SIDE:
        return Prepared(EMPTY, None, f"the image is only {g.shape[1]}x{g.shape[0]} pixels")
    paper = _paper(g, _eight_bit(gray))
    ink = _ink(g, paper)
    if paper[2] < MIN_PAPER:
        return Prepared(NOT_A_DIGIT, None if ink is None else frame_ink(ink),
                        "it covers too much of the image")
    if ink is None:
        return Prepared(EMPTY, None, "the image is blank")
    shape = inkshape.analyse(ink)
    kept = ink * shape.keep if shape.keep is not None else ink
    if not kept.any():
        kept = ink
    image = frame_ink(kept)
    dropped = shape.keep is not None
    if shape.reason:
        return Prepared(NOT_A_DIGIT, image, shape.reason, dropped)
    return Prepared(DIGIT, image, border_dropped=dropped)


def to_mnist(gray: np.ndarray) -> np.ndarray | None:
    """(H, W) grayscale image of any size -> (28, 28) float32 in [0, 1], ink = 1.

    Returns None when the image holds no ink (blank pad, empty photo, tiny image). Ink
    that does not look like a digit is still framed; ``prepare`` says which it is.
    """
    return prepare(gray).image
