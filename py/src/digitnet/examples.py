"""A person's own labelled digits ("your examples"): the file the page exports and imports
and the CLI's ``finetune`` reads.

Examples file (``.npz``, no pickles): ``format`` (the string ``"digitnet-examples"``),
``version`` (int), ``images`` uint8 (N, 28, 28) with ink = 255 (MNIST polarity: exactly the
28x28 input the pad classified) and ``labels`` uint8 (N,) in 0-9. ``load_examples`` also
reads a directory of PNG files named ``<label>_<anything>.png`` (28x28 ones as they are,
any other size through `preprocess.to_mnist`; reading PNGs needs Pillow).
"""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

FORMAT_NAME = "digitnet-examples"
FORMAT_VERSION = 1
MAX_EXAMPLES = 10_000
PNG_NAME = re.compile(r"^(\d+)_.*\.png$", re.IGNORECASE)


class ExamplesError(ValueError):
    """Examples that cannot be used: a corrupt file, bad labels or images, or none at all."""


def check_examples(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise: -> images uint8 (N, 28, 28), labels uint8 (N,).

    images may be (N, 28, 28) or (N, 784), uint8 (0-255) or float in [0, 1].
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ExamplesError(f"The examples must be 28x28 images, but these have shape "
                            f"{images.shape[1:] if images.ndim == 3 else images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ExamplesError(f"There are {len(images)} images but {labels.size} labels.")
    if len(images) == 0:
        raise ExamplesError("There are no examples.")
    if len(images) > MAX_EXAMPLES:
        raise ExamplesError(f"There are {len(images):,} examples; at most {MAX_EXAMPLES:,} "
                            "are allowed.")
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9:
        raise ExamplesError("Every label must be a whole number from 0 to 9.")
    if images.dtype.kind == "f":
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise ExamplesError("Image values must lie between 0 and 1.")
        images = np.round(images * 255)
    elif images.dtype.kind not in "iu" or images.min() < 0 or images.max() > 255:
        raise ExamplesError("Image values must be bytes (0 to 255).")
    return images.astype(np.uint8), labels.astype(np.uint8)


def save_examples(images, labels) -> bytes:
    """The examples as ``.npz`` bytes (layout in the module docstring); checked first."""
    images, labels = check_examples(images, labels)
    buf = io.BytesIO()
    np.savez_compressed(buf, format=np.array(FORMAT_NAME), version=np.array(FORMAT_VERSION),
                        images=images, labels=labels)
    return buf.getvalue()


def raw_bytes(buf) -> bytes:
    """bytes of a Python buffer, or of a JavaScript Uint8Array (Pyodide's proxy has to_bytes)."""
    return buf.to_bytes() if hasattr(buf, "to_bytes") else bytes(buf)


def from_buffers(pixels, labels) -> tuple[np.ndarray, np.ndarray]:
    """N*784 image bytes and N label bytes (what the page keeps) -> checked arrays."""
    pixels, labels = (np.frombuffer(raw_bytes(b), np.uint8) for b in (pixels, labels))
    if pixels.size != 784 * labels.size:
        raise ExamplesError(f"There are {labels.size} labels but {pixels.size} pixel bytes, "
                            f"not {784 * labels.size} (28x28 per example).")
    return check_examples(pixels.reshape(-1, 28, 28), labels)


def _from_npz(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise ExamplesError(f"{name} is not a readable examples file ({e}).") from None
    if str(arrays.get("format", "")) != FORMAT_NAME:
        raise ExamplesError(f"{name} is not a digitnet examples file (it has no "
                            f"'{FORMAT_NAME}' format marker).")
    version = arrays.get("version")
    if version is None or version.shape != () or int(version) != FORMAT_VERSION:
        raise ExamplesError(f"{name} has examples file version {version}; this digitnet "
                            f"reads version {FORMAT_VERSION}.")
    if "images" not in arrays or "labels" not in arrays:
        raise ExamplesError(f"{name} has no 'images' or no 'labels' array.")
    try:
        return check_examples(arrays["images"], arrays["labels"])
    except ExamplesError as e:
        raise ExamplesError(f"{name}: {e}") from None


def _png_digit(path: Path) -> np.ndarray:
    from .cli import CLIError, read_gray
    from .preprocess import to_mnist

    try:
        gray = read_gray(str(path))
    except CLIError as e:
        raise ExamplesError(f"{e}.") from None
    if gray.shape == (28, 28):
        return gray
    digit = to_mnist(gray)
    if digit is None:
        raise ExamplesError(f"{path}: no digit found (the image is blank).")
    return np.round(digit * 255).astype(np.uint8)


def _from_png_dir(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise ExamplesError(f"{directory} holds no PNG files named <label>_<name>.png.")
    images, labels = [], []
    for path in files:
        match = PNG_NAME.match(path.name)
        if not match or not 0 <= int(match.group(1)) <= 9:
            raise ExamplesError(f"{path.name}: the file name must start with its label, a digit "
                                "from 0 to 9, and an underscore (like 7_mine.png).")
        images.append(_png_digit(path))
        labels.append(int(match.group(1)))
    return check_examples(np.stack(images), np.array(labels))


def load_examples(source) -> tuple[np.ndarray, np.ndarray]:
    """An examples ``.npz`` (path or bytes) or a directory of ``<label>_*.png`` ->
    (images uint8 (N, 28, 28), labels uint8 (N,)). Raises ExamplesError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_npz(bytes(source), "The examples file")
    path = Path(source)
    if path.is_dir():
        return _from_png_dir(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise ExamplesError(f"Cannot read {path}: {e.strerror or e}.") from None
    return _from_npz(blob, str(path))
