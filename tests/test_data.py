"""Tests for digitnet.data: one-hot, batching, shift augmentation, the bundled subset
(integrity checks, the fixed stratified split) and the MNIST IDX reader on generated
fixtures, good and bad."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from digitnet import data
from digitnet.data import DataFileError


# ---------------------------------------------------------------- helpers

def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """A uint8 array -> IDX bytes (magic 0x0000080<ndim>, big-endian dims, raw data)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | arr.ndim
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write(path, payload: bytes, gz: bool = False):
    path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0) if gz else payload)
    return path


def corrupt_deflate(blob: bytes) -> bytes:
    """A gzip stream whose first deflate block header says BTYPE=11 (reserved/invalid).

    gzip.compress writes a 10-byte header (no file name), so byte 10 starts the deflate
    data; its low three bits are BFINAL and BTYPE. BTYPE 11 is always a format error.
    """
    assert blob[:2] == b"\x1f\x8b" and blob[3] == 0  # no optional header fields
    b = bytearray(blob)
    b[10] = (b[10] & ~0b111) | 0b111
    return bytes(b)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def bundle():
    return data.load_bundle()


@pytest.fixture(scope="module")
def bundle_raw():
    """(images uint8 (N, 784), labels uint8 (N,), gzip blob) of the real bundle."""
    blob = data.bundle_path().read_bytes()
    images, labels = data.decode_bundle(blob)
    return images, labels, blob


# ---------------------------------------------------------------- one_hot

def test_one_hot_shape_dtype_and_columns():
    labels = np.array([3, 0, 9, 3, 7])
    out = data.one_hot(labels)
    assert out.shape == (5, 10)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.sum(axis=1), np.ones(5))
    np.testing.assert_array_equal(out.argmax(axis=1), labels)
    # the single 1 is exactly at the label's column, everything else is 0
    assert np.count_nonzero(out) == 5
    assert all(out[i, c] == 1 for i, c in enumerate(labels))


def test_one_hot_other_class_count_and_dtype():
    out = data.one_hot(np.array([0, 2, 1]), n_classes=3, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])


def test_one_hot_empty():
    assert data.one_hot(np.array([], dtype=np.int64)).shape == (0, 10)


@pytest.mark.parametrize("labels", [[0, 10], [-1, 3], [12]])
def test_one_hot_rejects_labels_out_of_range(labels):
    with pytest.raises(ValueError, match="labels"):
        data.one_hot(np.array(labels))


# ---------------------------------------------------------------- batches

@pytest.mark.parametrize("n,bs", [(10, 3), (10, 5), (10, 10), (10, 64), (1, 1), (257, 256)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_every_index_once(n, bs, shuffle):
    rng = np.random.default_rng(0) if shuffle else None
    got = list(data.batches(n, bs, rng))
    assert len(got) == -(-n // bs)
    assert all(len(b) == bs for b in got[:-1])
    assert len(got[-1]) == n - bs * (len(got) - 1)  # the remainder, never dropped
    flat = np.concatenate(got)
    np.testing.assert_array_equal(np.sort(flat), np.arange(n))


def test_batches_unshuffled_is_in_order():
    got = list(data.batches(7, 3))
    assert [b.tolist() for b in got] == [[0, 1, 2], [3, 4, 5], [6]]


def test_batches_shuffled_order_differs_and_changes_per_epoch():
    rng = np.random.default_rng(5)
    first = np.concatenate(list(data.batches(100, 32, rng)))
    second = np.concatenate(list(data.batches(100, 32, rng)))
    assert not np.array_equal(first, np.arange(100))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(second), np.arange(100))


def test_batches_zero_examples_yields_nothing():
    assert list(data.batches(0, 4)) == []


@pytest.mark.parametrize("bs", [0, -3])
def test_batches_rejects_batch_size_below_one(bs):
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(10, bs))


# ---------------------------------------------------------------- random_shift

def one_pixel_images(coords):
    x = np.zeros((len(coords), 28, 28), dtype=np.float32)
    for i, (r, c) in enumerate(coords):
        x[i, r, c] = 0.75
    return x.reshape(len(coords), 784)


def test_random_shift_zero_is_identity(bundle, rng):
    x = bundle.x_test[:50]
    out = data.random_shift(x, 0, rng)
    np.testing.assert_array_equal(out, x)
    assert out is not x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_shift_shape_and_dtype(dtype, rng):
    x = np.random.default_rng(0).random((6, 784)).astype(dtype)
    out = data.random_shift(x, 2, rng)
    assert out.shape == (6, 784)
    assert out.dtype == dtype


@pytest.mark.parametrize("max_shift", [1, 2, 3])
def test_random_shift_moves_a_pixel_by_at_most_max_shift(max_shift, rng):
    # pixels far enough from the border that no shift can push them out
    coords = [(r, c) for r in (5, 14, 22) for c in (4, 13, 23)] * 60
    x = one_pixel_images(coords)
    out = data.random_shift(x, max_shift, rng).reshape(-1, 28, 28)
    offsets = set()
    for (r, c), img in zip(coords, out):
        nz = np.argwhere(img)
        assert len(nz) == 1, "the pixel must survive, exactly once"
        (r2, c2), = nz
        assert img[r2, c2] == 0.75
        assert abs(r2 - r) <= max_shift and abs(c2 - c) <= max_shift
        offsets.add((r2 - r, c2 - c))
    # 540 images: every offset in [-s, s]^2 (both ends included) should turn up
    assert offsets == {(dy, dx) for dy in range(-max_shift, max_shift + 1)
                       for dx in range(-max_shift, max_shift + 1)}


def test_random_shift_pixel_shifted_out_is_lost(rng):
    # a pixel in the corner is dropped by shifts that push it out; nothing wraps around
    x = one_pixel_images([(0, 0)] * 200)
    out = data.random_shift(x, 2, rng).reshape(-1, 28, 28)
    assert (out[:, 26:, :] == 0).all() and (out[:, :, 26:] == 0).all()  # no wrap-around
    kept = out.reshape(200, -1).sum(axis=1)
    assert set(np.round(kept, 6)) == {0.0, 0.75}


def test_random_shift_preserves_centred_digits(bundle, rng):
    s = 2
    imgs = bundle.x_test.reshape(-1, 28, 28)
    border = np.ones((28, 28), bool)
    border[s:-s, s:-s] = False
    centred = imgs[~(imgs[:, border] > 0).any(axis=1)][:100]  # no ink within s of the edge
    assert len(centred) == 100
    out = data.random_shift(centred.reshape(-1, 784), s, rng).reshape(-1, 28, 28)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), centred.sum(axis=(1, 2)), rtol=1e-6)
    # each output is exactly its input translated (np.roll is safe: nothing reaches the edge)
    for src, dst in zip(centred, out):
        assert any(np.array_equal(np.roll(src, (dy, dx), axis=(0, 1)), dst)
                   for dy in range(-s, s + 1) for dx in range(-s, s + 1))


def test_random_shift_gives_images_their_own_offsets(rng):
    x = one_pixel_images([(14, 14)] * 50)
    out = data.random_shift(x, 2, rng)
    positions = {int(np.argmax(row)) for row in out}
    assert len(positions) > 5  # 50 identical inputs, 25 possible offsets


def test_random_shift_does_not_modify_input(bundle, rng):
    x = bundle.x_test[:20].copy()
    data.random_shift(x, 2, rng)
    np.testing.assert_array_equal(x, bundle.x_test[:20])


# ---------------------------------------------------------------- the bundled subset

def test_bundle_loads_with_the_fixed_split(bundle):
    assert bundle.x_train.shape == (8000, 784)
    assert bundle.x_test.shape == (2000, 784)
    assert bundle.y_train.shape == (8000,) and bundle.y_test.shape == (2000,)
    for x in (bundle.x_train, bundle.x_test):
        assert x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert x.max() == 1.0  # scaled by 255, not left as 0-255 or 0-1/255
    for y in (bundle.y_train, bundle.y_test):
        assert np.issubdtype(y.dtype, np.integer)
        assert set(np.unique(y)) == set(range(10))


def test_bundle_split_is_stratified(bundle):
    train_counts = np.bincount(bundle.y_train, minlength=10)
    test_counts = np.bincount(bundle.y_test, minlength=10)
    total = train_counts + test_counts
    assert total.sum() == 10000
    assert np.all(np.abs(test_counts - 0.2 * total) < 1), test_counts
    assert test_counts.sum() == 2000


def test_bundle_is_deterministic(bundle):
    again = data.load_bundle()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, name), getattr(bundle, name))


def test_bundle_split_indices_partition_the_bundle(bundle_raw, bundle):
    images, labels, _ = bundle_raw
    train, test = data.stratified_split(labels)
    assert len(train) == 8000 and len(test) == 2000
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(10000))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    # the loader really uses these indices
    np.testing.assert_array_equal(bundle.x_test, images[test].astype(np.float32) / 255)
    np.testing.assert_array_equal(bundle.y_train, labels[train])
    # and no test image also appears as a train image
    train_rows = {row.tobytes() for row in images[train]}
    assert not any(row.tobytes() in train_rows for row in images[test])


def test_stratified_split_sums_exactly_for_awkward_counts():
    labels = np.repeat(np.arange(7), [13, 1, 7, 29, 2, 5, 11])  # 68 labels
    for fraction in (0.2, 0.33, 0.5):
        train, test = data.stratified_split(labels, fraction, seed=3)
        assert len(test) == round(len(labels) * fraction)
        assert len(train) + len(test) == len(labels)
        assert len(np.intersect1d(train, test)) == 0
        counts = np.bincount(labels[test], minlength=7)
        assert np.all(np.abs(counts - fraction * np.bincount(labels)) < 1)


def test_stratified_split_depends_on_seed():
    labels = np.tile(np.arange(10), 50)
    a = data.stratified_split(labels, seed=1)[1]
    b = data.stratified_split(labels, seed=1)[1]
    c = data.stratified_split(labels, seed=2)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_encode_bundle_layout():
    images = np.arange(3 * 784).reshape(3, 784).astype(np.uint8)
    labels = np.array([7, 0, 9])
    blob = data.encode_bundle(images, labels)
    assert blob == data.encode_bundle(images, labels)  # reproducible bytes (mtime 0)
    raw = gzip.decompress(blob)
    assert raw == b"DGNMNIST" + (3).to_bytes(4, "little") + images.tobytes() + bytes([7, 0, 9])


def test_decode_bundle_matches_the_documented_layout(bundle_raw):
    images, labels, blob = bundle_raw
    raw = gzip.decompress(blob)
    assert raw[:8] == b"DGNMNIST" and int.from_bytes(raw[8:12], "little") == 10000
    assert images.shape == (10000, 784) and labels.shape == (10000,)
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert images.tobytes() == raw[12:12 + 10000 * 784]
    assert labels.tobytes() == raw[12 + 10000 * 784:]
    assert set(np.unique(labels)) == set(range(10))


def test_encode_bundle_output_decodes_to_the_same_digits():
    images = np.random.default_rng(5).integers(0, 256, (3, 784), dtype=np.uint8)
    labels = np.array([4, 0, 9], np.uint8)
    got_images, got_labels = data.decode_bundle(data.encode_bundle(images, labels))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def _gz_bundle(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def test_decode_bundle_refuses_a_header_that_is_cut_short():
    with pytest.raises(DataFileError, match="shorter than its 12-byte header"):
        data.decode_bundle(_gz_bundle(b"DGNMNIST\x01"))


def test_decode_bundle_refuses_wrong_magic_bytes():
    raw = gzip.decompress(data.encode_bundle(np.zeros((2, 784), np.uint8), np.arange(2)))
    with pytest.raises(DataFileError, match="wrong magic bytes"):
        data.decode_bundle(_gz_bundle(b"NOTMNIST" + raw[8:]))


@pytest.mark.parametrize("delta", [-1, 1, 785])
def test_decode_bundle_refuses_a_length_that_disagrees_with_the_count(delta):
    raw = gzip.decompress(data.encode_bundle(np.zeros((2, 784), np.uint8), np.arange(2)))
    raw = raw[:delta] if delta < 0 else raw + bytes(delta)
    with pytest.raises(DataFileError, match="should hold 2 images"):
        data.decode_bundle(_gz_bundle(raw))


def test_decode_bundle_checks_a_pinned_sha256_only_when_asked(bundle_raw):
    blob = data.encode_bundle(np.zeros((3, 784), np.uint8), np.arange(3))
    data.decode_bundle(blob)  # a well-formed bundle of other digits
    with pytest.raises(DataFileError, match="sha256"):
        data.decode_bundle(blob, expected_sha256=data.BUNDLE_SHA256)
    _, _, shipped = bundle_raw
    images, _ = data.decode_bundle(shipped, expected_sha256=data.BUNDLE_SHA256)
    assert len(images) == 10000


def test_load_bundle_refuses_a_well_formed_bundle_of_other_digits(tmp_path):
    path = tmp_path / "bundle.u8.gz"
    path.write_bytes(data.encode_bundle(np.zeros((3, 784), np.uint8), np.arange(3)))
    with pytest.raises(DataFileError, match="sha256"):
        data.load_bundle(path)


@pytest.mark.parametrize("where, message", [("pixel", "sha256"), ("label", "sha256"),
                                            ("count", "should hold")])
def test_bundle_with_one_changed_byte_is_rejected(bundle_raw, tmp_path, where, message):
    _, _, blob = bundle_raw
    raw = bytearray(gzip.decompress(blob))
    pos = {"pixel": 12 + 784 * 5000 + 400, "label": len(raw) - 1, "count": 8}[where]
    raw[pos] ^= 0x01
    path = write(tmp_path / "bundle.u8.gz", bytes(raw), gz=True)
    with pytest.raises(DataFileError, match=message):
        data.load_bundle(path)


@pytest.mark.parametrize("keep, message", [(0, "shorter than its 12-byte header"), (5, "gzip"),
                                           (100, "gzip"), (800_000, "gzip"), (-4, "gzip")])
def test_truncated_bundle_is_rejected(bundle_raw, tmp_path, keep, message):
    _, _, blob = bundle_raw
    path = write(tmp_path / "bundle.u8.gz", blob[:keep])
    with pytest.raises(DataFileError, match=message):
        data.load_bundle(path)


def test_bundle_with_bad_gzip_checksum_is_rejected(bundle_raw):
    _, _, blob = bundle_raw
    b = bytearray(blob)
    b[-6] ^= 0xFF  # inside the CRC32 trailer
    with pytest.raises(DataFileError, match="gzip"):
        data.decode_bundle(bytes(b))


def test_bundle_with_corrupt_deflate_stream_is_rejected(bundle_raw):
    _, _, blob = bundle_raw
    with pytest.raises(DataFileError, match="gzip"):
        data.decode_bundle(corrupt_deflate(blob))


def test_missing_bundle_says_how_to_build_it(tmp_path):
    with pytest.raises(DataFileError, match="build.py build"):
        data.load_bundle(tmp_path / "nope.u8.gz")


def test_bundle_ships_in_the_package():
    path = data.bundle_path()
    assert path.name == data.BUNDLE_NAME and path.is_file()


# ---------------------------------------------------------------- IDX reader

@pytest.fixture
def fixture_arrays():
    g = np.random.default_rng(7)
    images = g.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = g.integers(0, 10, size=5, dtype=np.uint8)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, fixture_arrays, gz):
    images, labels = fixture_arrays
    pi = write(tmp_path / "img", idx_bytes(images), gz)
    pl = write(tmp_path / "lab", idx_bytes(labels), gz)
    got_i, got_l = data.read_idx(pi), data.read_idx(pl)
    assert got_i.dtype == np.uint8 and got_i.shape == (5, 28, 28)
    assert got_l.dtype == np.uint8 and got_l.shape == (5,)
    np.testing.assert_array_equal(got_i, images)
    np.testing.assert_array_equal(got_l, labels)


def test_read_idx_images_are_row_major(tmp_path):
    images = np.zeros((1, 28, 28), np.uint8)
    images[0, 3, 17] = 200
    got = data.read_idx(write(tmp_path / "img", idx_bytes(images)))
    assert got[0, 3, 17] == 200 and got.sum() == 200


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_pair_scales_to_unit_float32(tmp_path, fixture_arrays, gz):
    images, labels = fixture_arrays
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    pi = write(tmp_path / "img", idx_bytes(images), gz)
    pl = write(tmp_path / "lab", idx_bytes(labels), gz)
    x, y = data.load_idx_pair(pi, pl)
    assert x.shape == (5, 784) and x.dtype == np.float32
    assert y.shape == (5,) and np.issubdtype(y.dtype, np.integer)
    assert x[0, 0] == 0.0 and x[0, 1] == 1.0
    np.testing.assert_allclose(x, images.reshape(5, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("magic", [0x00000804, 0x00000D03, 0x08030000, 0xDEADBEEF])
def test_read_idx_rejects_bad_magic(tmp_path, fixture_arrays, magic):
    images, _ = fixture_arrays
    path = write(tmp_path / "img", idx_bytes(images, magic=magic))
    with pytest.raises(DataFileError, match=f"magic number {magic:#010x}"):
        data.read_idx(path)


@pytest.mark.parametrize("cut", ["empty", "magic only", "header cut", "header only",
                                 "data cut", "one byte short"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_short_files(tmp_path, fixture_arrays, cut, gz):
    images, _ = fixture_arrays
    full = idx_bytes(images)
    keep = {"empty": 0, "magic only": 4, "header cut": 10, "header only": 16,
            "data cut": 16 + 784 * 2 + 100, "one byte short": len(full) - 1}[cut]
    path = write(tmp_path / "img", full[:keep], gz)
    with pytest.raises(DataFileError, match="short|truncated|should hold"):
        data.read_idx(path)


def test_read_idx_rejects_trailing_bytes(tmp_path, fixture_arrays):
    _, labels = fixture_arrays
    path = write(tmp_path / "lab", idx_bytes(labels) + b"\x00")
    with pytest.raises(DataFileError, match="should hold 5 bytes"):
        data.read_idx(path)


def test_read_idx_rejects_truncated_gzip(tmp_path, fixture_arrays):
    images, _ = fixture_arrays
    blob = gzip.compress(idx_bytes(images), mtime=0)
    path = write(tmp_path / "img.gz", blob[: len(blob) // 2])
    with pytest.raises(DataFileError, match="gzip"):
        data.read_idx(path)


def test_read_idx_rejects_gzip_with_bad_checksum(tmp_path, fixture_arrays):
    images, _ = fixture_arrays
    b = bytearray(gzip.compress(idx_bytes(images), mtime=0))
    b[-8] ^= 0xFF  # CRC32 trailer
    path = write(tmp_path / "img.gz", bytes(b))
    with pytest.raises(DataFileError, match="gzip"):
        data.read_idx(path)


def test_read_idx_rejects_corrupt_deflate_stream(tmp_path, fixture_arrays):
    images, _ = fixture_arrays
    blob = corrupt_deflate(gzip.compress(idx_bytes(images), mtime=0))
    path = write(tmp_path / "img.gz", blob)
    with pytest.raises(DataFileError, match="gzip"):
        data.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="cannot read"):
        data.read_idx(tmp_path / "absent")


def test_load_idx_pair_rejects_mismatched_counts(tmp_path, fixture_arrays):
    images, labels = fixture_arrays
    pi = write(tmp_path / "img", idx_bytes(images))
    pl = write(tmp_path / "lab", idx_bytes(labels[:4]))
    with pytest.raises(DataFileError, match="5 images.*4 labels"):
        data.load_idx_pair(pi, pl)


def test_load_idx_pair_rejects_swapped_files(tmp_path, fixture_arrays):
    images, labels = fixture_arrays
    pi = write(tmp_path / "img", idx_bytes(images))
    pl = write(tmp_path / "lab", idx_bytes(labels))
    with pytest.raises(DataFileError):
        data.load_idx_pair(pl, pi)


def test_load_idx_pair_rejects_wrong_image_size(tmp_path, fixture_arrays):
    _, labels = fixture_arrays
    pi = write(tmp_path / "img", idx_bytes(np.zeros((5, 10, 10), np.uint8)))
    pl = write(tmp_path / "lab", idx_bytes(labels))
    with pytest.raises(DataFileError, match="28x28"):
        data.load_idx_pair(pi, pl)


def test_load_idx_pair_rejects_labels_above_nine(tmp_path, fixture_arrays):
    images, labels = fixture_arrays
    labels[2] = 10
    pi = write(tmp_path / "img", idx_bytes(images))
    pl = write(tmp_path / "lab", idx_bytes(labels))
    with pytest.raises(DataFileError, match="0-9"):
        data.load_idx_pair(pi, pl)


def write_mnist_dir(directory, n_train=6, n_test=4, gz=(False, True, False, True), seed=0):
    g = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": g.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": g.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": g.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": g.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(exist_ok=True)
    for (name, arr), z in zip(arrays.items(), gz):
        write(directory / (name + (".gz" if z else "")), idx_bytes(arr), z)
    return arrays


@pytest.mark.parametrize("gz", [(False,) * 4, (True,) * 4, (False, True, True, False)])
def test_load_mnist_dir_finds_the_four_files(tmp_path, gz):
    arrays = write_mnist_dir(tmp_path / "mnist", gz=gz)
    ds = data.load_mnist_dir(tmp_path / "mnist")
    assert ds.x_train.shape == (6, 784) and ds.x_test.shape == (4, 784)
    assert ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train * 255, arrays["train-images-idx3-ubyte"].reshape(6, 784),
                               atol=1e-3)
    np.testing.assert_allclose(ds.x_test * 255, arrays["t10k-images-idx3-ubyte"].reshape(4, 784),
                               atol=1e-3)
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("missing", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_load_mnist_dir_names_the_missing_file(tmp_path, missing):
    write_mnist_dir(tmp_path / "mnist", gz=(True,) * 4)
    (tmp_path / "mnist" / (missing + ".gz")).unlink()
    with pytest.raises(DataFileError, match=missing):
        data.load_mnist_dir(tmp_path / "mnist")


def test_load_mnist_dir_rejects_a_missing_directory(tmp_path):
    with pytest.raises(DataFileError, match="not a directory"):
        data.load_mnist_dir(tmp_path / "nowhere")


def test_random_shift_matches_a_per_image_loop():
    """Oracle: each image moved by its own (dy, dx), drawn in the same order, zero-filled."""
    rng_data = np.random.default_rng(5)
    x = rng_data.random((300, 784), dtype=np.float32)
    got = data.random_shift(x, 2, np.random.default_rng(11))
    draws = np.random.default_rng(11)
    dy = draws.integers(-2, 3, size=300)
    dx = draws.integers(-2, 3, size=300)
    for i in range(300):
        expected = np.zeros((28, 28), np.float32)
        for r in range(28):
            for c in range(28):
                if 0 <= r - dy[i] < 28 and 0 <= c - dx[i] < 28:
                    expected[r, c] = x[i].reshape(28, 28)[r - dy[i], c - dx[i]]
        assert np.array_equal(got[i].reshape(28, 28), expected), i


@pytest.mark.parametrize("max_shift", [1, 2])
def test_grouped_shift_holds_random_shifts_images_grouped_by_offset(max_shift):
    """Same draws and images as random_shift; each offset's images are one block of rows."""
    x = np.random.default_rng(6).random((500, 784), dtype=np.float32)
    out, where = data.grouped_shift(x, max_shift, np.random.default_rng(12))
    np.testing.assert_array_equal(out[where], data.random_shift(x, max_shift, np.random.default_rng(12)))
    assert sorted(where) == list(range(500))
    draws = np.random.default_rng(12)
    dy, dx = (draws.integers(-max_shift, max_shift + 1, size=500) for _ in range(2))
    offset_of_row = np.empty((500, 2), int)
    offset_of_row[where] = np.stack([dy, dx], 1)
    changes = np.any(offset_of_row[1:] != offset_of_row[:-1], axis=1).sum()
    assert changes == len({(a, b) for a, b in zip(dy, dx)}) - 1
