"""Does the ink look like a digit? Decided from a few explainable image statistics.

The ink map is reduced to at most ``WORK`` pixels a side and thresholded; its connected
pieces (8-connected, found from the runs of each row) are measured:

- pieces that reach the image's edge (``EDGE``) and lie mostly in its outer ``BAND``
  are lines along the border (a frame, a stroke along the pad's edge): they are dropped,
  and if nothing else is left the drawing is not a digit;
- all the ink must cover well under half the image (a dense scribble does not);
- the rest must be longer than a few stroke widths (a dot or a blob is not),
- be mostly one or two pieces rather than many specks (noise), and
- enclose at most two gaps, have a stroke length of a few times its size and be crossed
  only a few times by a row or column (a scribble fails one of these).

The thresholds were set by measuring generated non-digits against real digits drawn as
the pad sends them and rendered like photos (see the tests).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORK = 128          # analysis resolution (longer side, pixels)
INK_LEVEL = 0.3     # a work pixel is ink at this fraction of the peak ink
BAND = 0.12         # the border band, as a fraction of the image's height / width
EDGE = 0.03         # ink this close to the image's edge touches it
MIN_EXTENT = 3.9    # a digit is longer than this many stroke widths
MAX_SHARE = 0.42    # fraction of the image a digit's ink covers at most
MAX_HOLES = 2       # enclosed gaps (an 8 has two)
MAX_LENGTH = 4.5    # stroke length (half the ink's perimeter) over the ink's longer side
MAX_CROSSINGS = 4.5  # strokes crossed by a row / column (90th percentile) in a digit
MAX_PIECES = 5      # separate pieces of ink
MIN_MAIN = 0.6      # share of the ink in the two largest pieces

ALONG_EDGE = "it is only lines along the edge of the image"


@dataclass(frozen=True)
class InkShape:
    """``reason``: why the ink is not a digit ("" if it looks like one). ``keep``: (H, W)
    0/1 mask of the ink to keep (border lines dropped), or None to keep all. ``stats``:
    the measurements, for tests and tuning."""
    reason: str
    keep: np.ndarray | None
    stats: dict


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every horizontal run of True pixels in raster order: (rows, starts, ends), ends exclusive."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rows, starts = np.nonzero(d == 1)
    _, ends = np.nonzero(d == -1)
    return rows, starts, ends


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W) bool -> ((H, W) int labels 1..n with 0 = background, n), 8-connected.

    Works on runs rather than pixels, without a Python loop per run: two runs of adjacent
    rows touch when they overlap, allowing one pixel diagonally; the pieces are the
    connected groups of that run graph, found by propagating the smallest run index."""
    h, w = mask.shape
    rows, starts, ends = _runs(mask)
    # Runs of row r - 1 touching run i: those ending at or after starts[i] and starting at
    # or before ends[i] (exclusive end, so diagonal neighbours count), a contiguous slice.
    span = w + 2
    first = np.searchsorted(rows * span + ends, (rows - 1) * span + starts, side="left")
    last = np.searchsorted(rows * span + starts, (rows - 1) * span + ends, side="right")
    count = np.maximum(last - first, 0)
    a = np.repeat(np.arange(len(rows)), count)
    b = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    root = np.arange(len(rows))
    while True:
        smaller = np.minimum(root[a], root[b])
        new = root.copy()
        np.minimum.at(new, a, smaller)
        np.minimum.at(new, b, smaller)
        new = new[new]                      # jump to the neighbour's label's label
        if np.array_equal(new, root):
            break
        root = new
    roots, piece = np.unique(root, return_inverse=True)   # numbered in raster order
    # Paint the runs: +label at each start, -label at each end, summed along the row.
    steps = np.zeros((h, w + 1), dtype=np.int32)
    steps[rows, starts] += piece + 1
    steps[rows, ends] -= piece + 1
    return np.cumsum(steps, axis=1)[:, :w], len(roots)


def _work_map(ink: np.ndarray) -> np.ndarray:
    """Block-average the ink so the longer side is at most ``WORK``, then threshold."""
    f = -(-max(ink.shape) // WORK)
    if f > 1:
        h, w = -(-ink.shape[0] // f) * f, -(-ink.shape[1] // f) * f
        padded = np.zeros((h, w))
        padded[:ink.shape[0], :ink.shape[1]] = ink
        ink = padded.reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    return ink >= INK_LEVEL * ink.max()


def _border_pieces(labels: np.ndarray, n: int) -> list[int]:
    h, w = labels.shape
    bh, bw = max(1, round(BAND * h)), max(1, round(BAND * w))
    inner = np.zeros((h, w), dtype=bool)
    inner[bh:h - bh, bw:w - bw] = True
    eh, ew = max(1, round(EDGE * h)), max(1, round(EDGE * w))
    edge = np.ones((h, w), dtype=bool)
    edge[eh:h - eh, ew:w - ew] = False
    area = np.bincount(labels.ravel(), minlength=n + 1)
    inside = np.bincount(labels[inner], minlength=n + 1)
    touching = np.bincount(labels[edge], minlength=n + 1)
    return [i for i in range(1, n + 1) if touching[i] and inside[i] <= 0.25 * area[i]]


def measure(mask: np.ndarray) -> dict:
    """Statistics of a non-empty ink mask (the pieces that are not border lines)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    area = int(box.sum())
    padded = np.pad(box, 1).astype(np.int8)
    perimeter = int(np.abs(np.diff(padded, axis=0)).sum() + np.abs(np.diff(padded, axis=1)).sum())
    stroke = 2.0 * area / perimeter
    # Strokes crossed by each row and column: the number of background-to-ink steps.
    crossings = np.concatenate([(np.diff(padded, axis=1) == 1).sum(axis=1)[1:-1],
                                (np.diff(padded, axis=0) == 1).sum(axis=0)[1:-1]])
    labels, n = label(box)
    sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
    # Holes: background pieces (of at least 2 pixels) that do not reach the box's edge.
    gaps, n_gaps = label(~np.pad(box, 1))
    gap_sizes = np.bincount(gaps.ravel(), minlength=n_gaps + 1)
    holes = int((gap_sizes[2:] >= 2).sum())   # label 1 is the outside (it holds pixel 0, 0)
    return {"extent": max(box.shape) / stroke, "fill": area / box.size, "holes": holes,
            "length": perimeter / (2 * max(box.shape)),
            "crossings": float(np.percentile(crossings, 90)), "main": float(sizes[:2].sum() / area),
            "pieces": n}


def analyse(ink: np.ndarray) -> InkShape:
    """(H, W) ink map in [0, 1] with some ink -> InkShape."""
    mask = _work_map(ink)
    labels, n = label(mask)
    border = _border_pieces(labels, n)
    dropped = np.isin(labels, border)
    rest = mask & ~dropped
    keep = None
    if border:
        grown = dropped.copy()   # one work pixel more, to take the lines' faint edges too
        grown[1:] |= dropped[:-1]
        grown[:-1] |= dropped[1:]
        grown[:, 1:] |= dropped[:, :-1]
        grown[:, :-1] |= dropped[:, 1:]
        r = (np.arange(ink.shape[0]) * mask.shape[0]) // ink.shape[0]
        c = (np.arange(ink.shape[1]) * mask.shape[1]) // ink.shape[1]
        keep = (~grown[r][:, c]).astype(ink.dtype)
    share = float(mask.mean())
    if not rest.any():
        return InkShape(ALONG_EDGE, keep,
                        {"border_pieces": len(border), "share": share})
    stats = measure(rest)
    stats.update(border_pieces=len(border), share=share)
    if share > MAX_SHARE:
        reason = "it covers too much of the image"
    elif stats["extent"] < MIN_EXTENT:
        reason = "it is a dot or a blob, not a stroke"
    elif stats["main"] < MIN_MAIN or stats["pieces"] > MAX_PIECES:
        reason = "it is scattered pieces (noise)"
    elif (stats["holes"] > MAX_HOLES or stats["length"] > MAX_LENGTH
          or stats["crossings"] > MAX_CROSSINGS):
        reason = "it is a scribble"
    else:
        reason = ""
    return InkShape(reason, keep, stats)
