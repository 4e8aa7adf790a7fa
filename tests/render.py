"""Render MNIST digits into larger images the way a photo or an upload would hold them."""
import numpy as np
from PIL import Image


def render(digit: np.ndarray, rng: np.random.Generator, size=(240, 320), invert=None,
           scale=None) -> np.ndarray:
    """(784,) digit in [0, 1] -> (H, W) uint8 image: scaled (bicubic), placed anywhere,
    dark ink on light paper (or light on dark when ``invert``), with mild paper noise."""
    height, width = size
    scale = rng.uniform(1.5, 7.0) if scale is None else scale
    side = max(8, int(round(28 * scale)))
    side = min(side, height - 2, width - 2)
    img = Image.fromarray((digit.reshape(28, 28) * 255).astype(np.uint8))
    big = np.asarray(img.resize((side, side), Image.BICUBIC), dtype=np.float64) / 255.0
    canvas = np.zeros((height, width))
    top = rng.integers(1, height - side)
    left = rng.integers(1, width - side)
    canvas[top:top + side, left:left + side] = big
    invert = rng.random() < 0.5 if invert is None else invert
    paper = 0.85 + 0.03 * rng.standard_normal((height, width))
    ink = np.clip(canvas, 0, 1)
    out = ink * 0.9 + (1 - ink) * paper * (0.3 if invert else 1.0) if invert else \
        (1 - ink) * paper + ink * 0.08
    return np.clip(out * 255, 0, 255).astype(np.uint8)
