"""The examples file: round trips (bytes, path, PNG directory) and every refusal."""
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from digitnet import mlp
from digitnet.examples import (FORMAT_NAME, ExamplesError, check_examples, from_buffers,
                               load_examples, save_examples)
from digitnet.model import dumps


def sample(n=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_round_trip_bytes_and_path(tmp_path):
    images, labels = sample()
    blob = save_examples(images, labels)
    for source in (blob, tmp_path / "ex.npz"):
        if not isinstance(source, bytes):
            source.write_bytes(blob)
        got_images, got_labels = load_examples(source)
        assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
        assert got_images.shape == (6, 28, 28)
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)


def test_file_layout_has_marker_and_version():
    with np.load(io.BytesIO(save_examples(*sample())), allow_pickle=False) as f:
        assert str(f["format"]) == FORMAT_NAME and int(f["version"]) == 1
        assert f["images"].dtype == np.uint8 and f["labels"].dtype == np.uint8


def test_float_and_flat_images_are_normalised():
    images, labels = sample(3)
    got, _ = check_examples(images.reshape(3, 784) / 255.0, labels)
    np.testing.assert_array_equal(got, images)


def test_from_buffers_matches_arrays():
    images, labels = sample(4)
    got_images, got_labels = from_buffers(images.tobytes(), labels.tobytes())
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(ExamplesError, match="4 labels but 3135 pixel bytes"):
        from_buffers(images.tobytes()[:-1], labels.tobytes())


@pytest.mark.parametrize("blob, message", [
    (b"not a zip at all", "not a readable examples file"),
    (save_examples(*sample())[:200], "not a readable examples file"),
    (dumps(mlp()), "not a digitnet examples file"),
    (npz(format=np.array(FORMAT_NAME), version=np.array(2), images=sample()[0], labels=sample()[1]),
     "version 2"),
    (npz(format=np.array(FORMAT_NAME), version=np.array(1), images=sample()[0]), "no 'images' or no 'labels'"),
    (npz(format=np.array(FORMAT_NAME), version=np.array(1), images=sample()[0],
         labels=np.array([0, 1, 2, 3, 4, 10], np.uint8)), "from 0 to 9"),
    (npz(format=np.array(FORMAT_NAME), version=np.array(1), images=np.zeros((2, 27, 27), np.uint8),
         labels=np.array([0, 1], np.uint8)), "28x28"),
    (npz(format=np.array(FORMAT_NAME), version=np.array(1), images=np.zeros((0, 28, 28), np.uint8),
         labels=np.zeros(0, np.uint8)), "no examples"),
    (npz(format=np.array(FORMAT_NAME), version=np.array(1), images=np.zeros((3, 28, 28), np.uint8),
         labels=np.array([0, 1], np.uint8)), "3 images but 2 labels"),
])
def test_bad_files_are_refused_with_one_sentence(blob, message):
    with pytest.raises(ExamplesError, match=message) as err:
        load_examples(blob)
    assert "\n" not in str(err.value)


def test_pickled_arrays_are_refused():
    buf = io.BytesIO()
    np.savez(buf, format=np.array(FORMAT_NAME), version=np.array(1),
             images=np.array([object()], dtype=object), labels=np.array([1]))
    with pytest.raises(ExamplesError):
        load_examples(buf.getvalue())


def test_save_refuses_bad_arrays():
    images, labels = sample()
    with pytest.raises(ExamplesError, match="from 0 to 9"):
        save_examples(images, labels + 10)
    with pytest.raises(ExamplesError, match="28x28"):
        save_examples(images[:, :20, :20], labels)
    with pytest.raises(ExamplesError, match="no examples"):
        save_examples(images[:0], labels[:0])
    with pytest.raises(ExamplesError, match="between 0 and 1"):
        save_examples(images / 100.0, labels)


def test_missing_path(tmp_path):
    with pytest.raises(ExamplesError, match="Cannot read"):
        load_examples(tmp_path / "nope.npz")


def png(path, gray):
    Image.fromarray(gray).save(path)


def test_png_directory(tmp_path):
    images, _ = sample(2)
    png(tmp_path / "3_first.png", images[0])
    png(tmp_path / "7_b.png", images[1])
    big = np.full((120, 90), 255, np.uint8)   # dark ink on white paper, any size
    big[20:100, 40:50] = 0
    png(tmp_path / "1_big.png", big)
    (tmp_path / "notes.txt").write_text("ignored")
    got_images, got_labels = load_examples(tmp_path)
    assert got_labels.tolist() == [1, 3, 7]              # sorted by file name
    np.testing.assert_array_equal(got_images[1], images[0])  # 28x28: as it is
    np.testing.assert_array_equal(got_images[2], images[1])
    one = got_images[0].astype(float)
    assert one.max() == 255 and one[:, :8].sum() == 0     # preprocessed: a centred bar, ink = 255
    assert abs((one.sum(axis=0) * np.arange(28)).sum() / one.sum() - 14) < 1


@pytest.mark.parametrize("name, message", [("12_x.png", "from 0 to 9"), ("seven.png", "from 0 to 9")])
def test_png_directory_bad_names(tmp_path, name, message):
    png(tmp_path / name, np.zeros((28, 28), np.uint8))
    with pytest.raises(ExamplesError, match=message):
        load_examples(tmp_path)


def test_png_directory_empty_blank_and_corrupt(tmp_path):
    with pytest.raises(ExamplesError, match="no PNG files"):
        load_examples(tmp_path)
    png(tmp_path / "4_blank.png", np.full((50, 50), 255, np.uint8))
    with pytest.raises(ExamplesError, match="no digit found"):
        load_examples(tmp_path)
    (tmp_path / "4_blank.png").unlink()
    (tmp_path / "5_bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ExamplesError, match="not a readable image"):
        load_examples(tmp_path)


def test_zip_that_is_not_npz():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ExamplesError, match="not a digitnet examples file"):
        load_examples(buf.getvalue())
