"""Training-time augmentation of digit batches, vectorised over the batch (numpy only).

Images are (N, 28, 28) float32 in [0, 1], ink = 1 (``augment_epoch`` takes and returns
the (N, 784) rows training uses). Every random choice comes from the caller's
``np.random.Generator``, so a seed fixes the result.

- ``random_affine``: rotation, per-axis scale, shear and translation (inverse mapping,
  bilinear sampling, zero outside the field).
- ``elastic``: Simard, Steinkraus & Platt (2003): a uniform random displacement field per
  image, smoothed by a Gaussian of width ``sigma`` and scaled by ``alpha``.
- ``stroke_width``, ``repen`` (from ``strokes``): thicker or thinner strokes; a digit
  thinned to its skeleton and redrawn with a round pen of another width.
- ``continental_styles``: styles MNIST rarely has: a flag and a base on 1s, a crossbar on
  7s, a slash through 0s, a curled tail under 9s, drawn as antialiased lines.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .strokes import dilate, erode, redraw, repen, stroke_width, thin  # noqa: F401 (re-exported)

SIDE = 28
CENTRE = (SIDE - 1) / 2.0  # rotate and scale about the field's middle


# ---------------------------------------------------------------- geometry and sampling

def affine_matrices(n: int, rng: np.random.Generator, rotation: float = 15.0,
                    scale: tuple[float, float] = (0.8, 1.2), shear: float = 0.2,
                    translate: float = 2.0) -> np.ndarray:
    """(N, 2, 3) forward maps [A | t]: a source pixel (row, col) lands at
    A @ ((row, col) - centre) + centre + t. Rotation in degrees (uniform in ±rotation),
    each axis scaled independently within ``scale``, shear factor in ±shear,
    translation in ±translate pixels."""
    theta = np.deg2rad(rng.uniform(-rotation, rotation, n))
    s = rng.uniform(scale[0], scale[1], (n, 2))
    k = rng.uniform(-shear, shear, n)
    t = rng.uniform(-translate, translate, (n, 2))
    cos, sin = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)   # (N, 2, 2)
    shr = np.zeros((n, 2, 2))
    shr[:, 0, 0] = shr[:, 1, 1] = 1.0
    shr[:, 1, 0] = k  # columns move in proportion to the row: a slant
    scl = np.zeros((n, 2, 2))
    scl[:, 0, 0], scl[:, 1, 1] = s[:, 0], s[:, 1]
    a = rot @ shr @ scl
    return np.concatenate([a, t[:, :, None]], axis=2)


# Images warped together: small enough that a chunk's temporaries stay in the CPU's
# cache when other processes share it (32 was fastest on a busy 2-core machine).
CHUNK = 32
INK_CHUNK = 256  # segments inked together (their boxes are small)
# (row, col, 1) of every pixel, row-major: positions linear in them come from one matmul.
GRID = np.stack([np.repeat(np.arange(SIDE), SIDE), np.tile(np.arange(SIDE), SIDE),
                 np.ones(SIDE * SIDE)]).astype(np.float32)                   # (3, 784)


def warp(images: np.ndarray, forward: np.ndarray, displacement: np.ndarray | None = None) -> np.ndarray:
    """Resample (N, 28, 28) images under (N, 2, 3) forward affine maps (see
    ``affine_matrices``) and an optional (N, 2, 28, 28) displacement (rows, cols) of the
    sampling positions. Each output pixel reads the source by inverse mapping with
    bilinear interpolation; positions outside the field read 0."""
    out = np.empty(images.shape, np.float32)
    warp_rows(images, np.arange(len(images)), forward, displacement, out)
    return out


def warp_rows(images: np.ndarray, rows: np.ndarray, forward: np.ndarray,
              displacement: np.ndarray | None, out: np.ndarray) -> None:
    """``out[rows] = warp(images[rows], forward, displacement)`` chunk by chunk, without
    copying the whole subset out and back; ``out`` may be ``images`` (a chunk is read
    before it is written; ``rows`` are distinct)."""
    n, (h, w) = len(rows), images.shape[1:]
    m = min(n, CHUNK)  # buffers reused by every chunk: fresh ones cost page faults
    scratch, index = np.empty(5 * m * h * w, np.float32), np.empty(m * h * w, np.intp)
    padded = np.zeros(m * (h + 2) * (w + 2) + w + 3, np.float32)  # zero border
    chunk = np.empty((m, h * w), np.float32)
    a_inv = np.linalg.inv(forward[:, :, :2])                       # (N, 2, 2), all at once
    # Source position = a_inv @ (pixel - centre - t) + centre, +1 for the padding.
    offset = CENTRE + 1 - a_inv @ (forward[:, :, 2] + CENTRE)[:, :, None]
    coefs = np.concatenate([a_inv, offset], axis=2).astype(np.float32)   # (N, 2, 3)
    for s in range(0, n, CHUNK):
        k = min(s + CHUNK, n) - s
        part = rows[s:s + k]
        _warp(np.take(images, part, axis=0), coefs[s:s + k],
              None if displacement is None else displacement[s:s + k], chunk[:k],
              scratch[:5 * k * h * w].reshape(5, k, h * w), index[:k * h * w].reshape(k, h * w),
              padded)
        out[part] = chunk[:k].reshape(k, h, w)


def _warp(images, coefs, displacement, out, scratch, index, padded):
    """One chunk of ``warp_rows``: (M, 28, 28) square images into (M, 784) ``out``; (M, 2, 3)
    ``coefs`` map an output pixel's (row, col, 1) to its padded source position."""
    m, h, w = images.shape
    pw = w + 2                                                     # padded row length
    pos, whole = scratch[:2], scratch[2:4]                         # rows, cols: (2, M, 784)
    np.matmul(coefs.transpose(1, 0, 2).reshape(2 * m, 3), GRID, out=pos.reshape(2 * m, h * w))
    if displacement is not None:
        pos += displacement.reshape(m, 2, h * w).transpose(1, 0, 2)
    np.clip(pos, 0, h + 1 - 1e-3, out=pos)
    np.floor(pos, out=whole)
    pos -= whole                                                   # fractional parts
    (r, c), (r0, c0), v10 = pos, whole, scratch[4]
    r0 *= pw                                                       # flat index, exact in float32
    r0 += c0
    r0 += (np.arange(m, dtype=np.float32) * ((h + 2) * pw))[:, None]
    np.copyto(index, r0, casting="unsafe")
    padded[:m * (h + 2) * pw].reshape(m, h + 2, pw)[:, 1:-1, 1:-1] = images
    for corner, shift in zip((r0, c0, v10, out), (0, 1, pw, pw + 1)):  # v00, v01, v10, v11
        np.take(padded[shift:], index, out=corner, mode="wrap")  # in range: no clipping needed
    # Bilinear: c0 = v00 + fc (v01 - v00), out = v10 + fc (v11 - v10), out = c0 + fr (out - c0).
    for low, high, f in ((r0, c0, c), (v10, out, c), (c0, out, r)):
        high -= low
        high *= f
        high += low


def random_affine(images: np.ndarray, rng: np.random.Generator, **limits) -> np.ndarray:
    """(N, 28, 28) -> (N, 28, 28), each image under its own random affine map
    (``limits`` as in ``affine_matrices``)."""
    return warp(images, affine_matrices(len(images), rng, **limits))


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) G with G @ v = v convolved with a normalised Gaussian, zero outside."""
    radius = int(np.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    norm = np.exp(-offsets ** 2 / (2 * sigma ** 2)).sum()
    d = np.arange(size)[:, None] - np.arange(size)[None, :]
    g = np.where(np.abs(d) <= radius, np.exp(-d ** 2 / (2 * sigma ** 2)), 0.0) / norm
    return g.astype(np.float32)


def smooth(fields: np.ndarray, sigma: float) -> np.ndarray:
    """(..., H, W) -> same shape, each field convolved with a 2-D Gaussian (separably)."""
    h, w = fields.shape[-2:]
    gh, gw = gaussian_matrix(h, sigma), gaussian_matrix(w, sigma)
    # Two large 2-D products (rows, then columns) instead of many tiny batched ones.
    along_w = (fields.reshape(-1, w) @ gw.T).reshape(fields.shape)
    along_h = (np.swapaxes(along_w, -1, -2).reshape(-1, h) @ gh.T).reshape(
        fields.shape[:-2] + (w, h))
    return np.ascontiguousarray(np.swapaxes(along_h, -1, -2))


def elastic_fields(n: int, rng: np.random.Generator, alpha: float = 34.0,
                   sigma: float = 4.0) -> np.ndarray:
    """(N, 2, 28, 28) smoothed displacement fields (rows, cols) in pixels."""
    raw = rng.uniform(-1.0, 1.0, (n, 2, SIDE, SIDE)).astype(np.float32)
    return alpha * smooth(raw, sigma)


def elastic(images: np.ndarray, rng: np.random.Generator, alpha: float = 34.0,
            sigma: float = 4.0) -> np.ndarray:
    """(N, 28, 28) -> (N, 28, 28) under random elastic distortions."""
    identity = np.zeros((len(images), 2, 3))
    identity[:, 0, 0] = identity[:, 1, 1] = 1.0
    return warp(images, identity, elastic_fields(len(images), rng, alpha, sigma))


# ---------------------------------------------------------------- drawn styles

def draw_segments(images: np.ndarray, segments: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Ink antialiased straight lines onto (N, 28, 28) images (a new array).

    segments: (N, S, 2, 2) end points ((row, col), (row, col)) per image; widths: (N,) in
    pixels. A pixel at distance d from a line gets ink clip(width/2 + 0.5 - d, 0, 1)."""
    out = np.array(images, dtype=np.float32)
    _ink_segments(out, segments, widths)
    return out


def _ink_segments(images, segments, widths, targets=None):
    """``draw_segments`` in place on C-contiguous float32 ``images``, segments[i] onto
    image ``targets[i]`` (default i). A segment equal to the image's previous one adds
    nothing (ink is a maximum), so it is not drawn again. Each segment is drawn only in
    the box its ink can reach, in chunks of boxes of similar size."""
    if not images.flags.c_contiguous:  # ink goes in through a flat view
        raise ValueError("segments are drawn onto C-contiguous images only")
    n, flat = len(segments), images.reshape(-1)
    targets = np.arange(n) if targets is None else targets
    reach = np.asarray(widths, np.float32) / 2 + 0.5
    for k in range(segments.shape[1]):
        rows = (np.arange(n) if k == 0 else
                np.flatnonzero(np.any(segments[:, k] != segments[:, k - 1], axis=(1, 2))))
        seg = segments[rows, k].astype(np.float32)                       # (R, 2, 2)
        # Pixels the ink can reach: within ``reach`` of the segment's box, inside the field.
        low = np.clip(np.ceil(seg.min(axis=1) - reach[rows, None]), 0, SIDE - 1).astype(int)
        high = np.clip(np.floor(seg.max(axis=1) + reach[rows, None]), 0, SIDE - 1).astype(int)
        size = np.maximum(high - low + 1, 1)                               # (R, 2) rows, cols
        order = np.argsort(size[:, 0] * size[:, 1], kind="stable")
        for s in range(0, len(rows), INK_CHUNK):
            part = order[s:s + INK_CHUNK]
            box = size[part].max(axis=0)
            origin = np.minimum(low[part], SIDE - box)                   # box inside the field
            ink = _segment_ink(seg[part], reach[rows[part]], origin, box)
            index = ((targets[rows[part]] * SIDE + origin[:, 0]) * SIDE + origin[:, 1])[:, None] + \
                _box_offsets(*box)
            flat[index] = np.maximum(flat[index], ink)


def _box_offsets(h: int, w: int) -> np.ndarray:
    """(h * w,) flat offsets in a 28-wide image of an h x w box's pixels, row-major."""
    return (np.arange(h)[:, None] * SIDE + np.arange(w)).reshape(-1)


def _segment_ink(segment, reach, origin, box):
    """(M, 2, 2) segments ((row, col) ends) and (M,) float32 ink reaches -> (M, h * w) ink
    of each segment on the (h, w) = ``box`` pixels from (M, 2) ``origin`` on, row-major."""
    h, w = box
    a = segment[:, 0]                                                      # (M, 2)
    d = segment[:, 1] - a
    length2 = np.maximum((d * d).sum(axis=1), 1e-6)[:, None]
    # pixel - a, exactly (integers minus float32 values below 32), so a pixel's ink does
    # not depend on where its box starts.
    start = a - origin.astype(np.float32)                                  # exact
    to_pixel = (np.arange(h, dtype=np.float32)[None, :, None] - start[:, 0, None, None],
                np.arange(w, dtype=np.float32)[None, None, :] - start[:, 1, None, None])
    to_pixel = [np.broadcast_to(v, (len(a), h, w)).reshape(len(a), h * w) for v in to_pixel]
    t = to_pixel[0] * d[:, 0, None]
    t += to_pixel[1] * d[:, 1, None]
    t /= length2
    np.clip(t, 0.0, 1.0, out=t)                                            # nearest point
    dist2 = None
    for axis in (0, 1):  # (a + t d - pixel)^2 along rows, then columns
        part = t * d[:, axis, None]
        part -= to_pixel[axis]
        part *= part
        dist2 = part if dist2 is None else np.add(dist2, part, out=dist2)
    ink = np.sqrt(dist2, out=dist2)
    np.subtract(reach[:, None], ink, out=ink)
    return np.clip(ink, 0.0, 1.0, out=ink)


@dataclass
class Outline:
    """Where (N, 28, 28) digits' ink (pixels > 0.3) is: (N,) first and last inked row and
    column and inked pixel count; (N, 28) per row, the inked pixels and their column sum."""
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    area: np.ndarray
    row_count: np.ndarray
    row_colsum: np.ndarray

    def take(self, idx: np.ndarray) -> "Outline":
        return Outline(*(getattr(self, f.name)[idx] for f in fields(self)))

    def column_at(self, rows: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """Mean inked column of each image's row ``rows[i]`` (``fallback`` if it has none)."""
        at = (np.arange(len(rows)), np.clip(rows, 0, SIDE - 1))
        count = self.row_count[at]
        return np.where(count > 0, self.row_colsum[at] / np.maximum(count, 1), fallback)


def outline(images: np.ndarray) -> Outline:
    """The ``Outline`` of (N, 28, 28) images."""
    ink = images > 0.3
    any_row, any_col = ink.any(axis=2), ink.any(axis=1)
    row_count = ink.sum(axis=2)
    return Outline(np.argmax(any_row, axis=1), SIDE - 1 - np.argmax(any_row[:, ::-1], axis=1),
                   np.argmax(any_col, axis=1), SIDE - 1 - np.argmax(any_col[:, ::-1], axis=1),
                   row_count.sum(axis=1), row_count, (ink * np.arange(SIDE)).sum(axis=2))


STYLED = (0, 1, 7, 9)


def continental_styles(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                       fraction: float = 0.5) -> np.ndarray:
    """Restyle about ``fraction`` of the 0s, 1s, 7s and 9s of (N, 28, 28) images: a slash
    on 0s, a flag (and half the time a base) on 1s, a crossbar on 7s, a tail curling left
    under 9s. Returns a new array."""
    out = images.copy()
    _restyle(out, labels, rng, fraction)
    return out


def _restyle(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, fraction: float,
             outlines: Outline | None = None):
    """``continental_styles`` in place on C-contiguous float32 ``images``, whose
    ``outline`` may be given (it is then not measured again)."""
    idx = np.flatnonzero(np.isin(labels, STYLED) & (rng.random(len(labels)) < fraction))
    if idx.size == 0:
        return
    lab, n = labels[idx], len(idx)
    shape = outlines.take(idx) if outlines is not None else outline(np.take(images, idx, axis=0))
    top, bottom, left, right = shape.top, shape.bottom, shape.left, shape.right
    height = np.maximum(bottom - top, 1).astype(np.float32)
    width = np.maximum(right - left, 1).astype(np.float32)
    mid = (left + right) / 2.0
    # Stroke width ~ ink area / ink length; the height stands in for the length.
    pen = np.clip(shape.area / (height * 1.5), 1.5, 3.0) * rng.uniform(0.8, 1.1, n)
    j = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    pt = lambda row, col: np.stack([row, col], -1)  # noqa: E731
    seg = lambda a, b: np.stack([a, b], 1)  # noqa: E731
    c_top = shape.column_at(top + 1, mid)
    c_bot = shape.column_at(bottom - 1, mid)
    # 1: flag from the top down-left; base across the foot (zero length when absent).
    flag_end = pt(top + height * j(0.2, 0.4), c_top - height * j(0.2, 0.4))
    half = height * j(0.2, 0.32) * (rng.random(n) < 0.5)
    one = [seg(pt(top, c_top), flag_end), seg(pt(bottom, c_bot - half), pt(bottom, c_bot + half))]
    # 7: a short bar across the stem a little below the middle.
    r_bar = top + height * j(0.45, 0.6)
    c_bar = shape.column_at(np.round(r_bar).astype(int), mid)
    bar_half, tilt = height * j(0.18, 0.28), height * j(-0.04, 0.04)
    seven = [seg(pt(r_bar + tilt, c_bar - bar_half), pt(r_bar - tilt, c_bar + bar_half))]
    # 0: a slash from the lower left to the upper right, inside the loop's box.
    zero = [seg(pt(bottom - height * j(0.0, 0.15), left + width * j(0.1, 0.3)),
                pt(top + height * j(0.0, 0.15), right - width * j(0.1, 0.3)))]
    # 9: from low on the stem, a half-turn down and round to the left (3 chords).
    rr, rc = height * j(0.1, 0.18), width * j(0.25, 0.4)
    cr, cc = bottom - rr, c_bot - rc
    arc = [pt(cr + rr * np.sin(a), cc + rc * np.cos(a)) for a in np.radians([0, 60, 120, 190])]
    nine = [seg(arc[k], arc[k + 1]) for k in range(3)]
    segs = np.zeros((n, 3, 2, 2), dtype=np.float32)
    for digit, lines in ((1, one), (7, seven), (0, zero), (9, nine)):
        rows = lab == digit
        for k in range(3):
            segs[rows, k] = lines[min(k, len(lines) - 1)][rows]  # repeat the last line
    _ink_segments(images, segs, pen, idx)


# ---------------------------------------------------------------- one epoch's batch

FIELD_POOL = 256  # smoothing is the costly part of elastic distortion: share the fields


def _shared_fields(n: int, rng: np.random.Generator, alpha: float) -> np.ndarray:
    """(n, 2, 28, 28) elastic fields drawn from a fresh pool of FIELD_POOL, each used
    with a random sign and possibly transposed, so n fields cost FIELD_POOL smoothings."""
    pool = elastic_fields(min(n, FIELD_POOL), rng, alpha)
    pick = rng.integers(0, len(pool), n)
    fields = pool[pick] * rng.choice(np.float32([-1, 1]), (n, 1, 1, 1))
    flip = rng.random(n) < 0.5
    fields[flip] = np.swapaxes(fields[flip], -1, -2)[:, ::-1]  # transpose the field
    return fields

def augment_epoch(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, *,
                  affine: float = 0.0, elastic_alpha: float = 0.0, stroke: float = 0.0,
                  styles: float = 0.0, repen_fraction: float = 0.0,
                  skeletons: np.ndarray | None = None,
                  outlines: Outline | None = None) -> np.ndarray:
    """(N, 784) rows and (N,) labels -> (N, 784) augmented rows (float32).

    ``styles``: fraction of 0s/1s/7s/9s given another style; ``repen_fraction``: fraction
    redrawn along their skeleton with a uniform pen (radius 0.8-1.6 px), using
    ``skeletons`` ((N, 28, 28) bool, ``thin`` of the rows > 0.5) if given; ``stroke``:
    fraction of images made thicker or thinner; ``affine``: fraction warped by a random
    affine map (with, if ``elastic_alpha`` > 0, an elastic distortion of that strength).
    ``outlines`` (``outline`` of the rows, if given) spares styling measuring the digits
    again (unused when some are redrawn first). Zeros everywhere returns the rows
    unchanged."""
    n = len(x)
    if not (affine > 0 or stroke > 0 or styles > 0 or repen_fraction > 0):
        return np.ascontiguousarray(x, dtype=np.float32).reshape(n, SIDE * SIDE)
    imgs = np.array(x, dtype=np.float32).reshape(n, SIDE, SIDE)  # the one copy: never write into x
    if repen_fraction > 0:
        idx = np.flatnonzero(rng.random(n) < repen_fraction)
        if idx.size:
            sk = skeletons[idx] if skeletons is not None else thin(imgs[idx] > 0.5)
            imgs[idx] = redraw(sk, rng.uniform(0.8, 1.6, idx.size))
    if styles > 0:
        _restyle(imgs, np.asarray(y), rng, styles, None if repen_fraction > 0 else outlines)
    if stroke > 0:
        amounts = rng.uniform(-0.6, 1.0, n) * (rng.random(n) < stroke)
        imgs = stroke_width(imgs, amounts)
    if affine > 0:
        idx = np.flatnonzero(rng.random(n) < affine)
        if idx.size:
            disp = _shared_fields(idx.size, rng, elastic_alpha) if elastic_alpha > 0 else None
            # Translation is left to the training loop's random shift.
            warp_rows(imgs, idx, affine_matrices(idx.size, rng, translate=0.0), disp, imgs)
    return imgs.reshape(n, SIDE * SIDE)
