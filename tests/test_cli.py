"""Tests for the command line (`python3 -m digitnet train | evaluate | predict`).

Most runs go through ``digitnet.cli.main([...])`` in-process (fast); a few run the real
entry point in a subprocess with ``PYTHONPATH=py/src``. The contract: bad
arguments exit 2 with argparse usage text; missing or corrupt files (and divergence) exit
1 with one ``digitnet: error: ...`` line and no traceback.
"""
from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import digitnet
from cli_runner import REPO, Result, run_cli, run_process
from digitnet import data

EPOCH_LINE = r"Epoch: {}, Loss: \d+\.\d{{4}}, Acc: \d+\.\d{{2}}"
TEST_ACC = re.compile(r"^Test accuracy: (0\.\d{4})$")
EVAL_ACC = re.compile(r"^accuracy: (\d\.\d{4})$")


def assert_one_line_error(r: Result, *needles: str) -> None:
    assert r.code == 1, (r.code, r.err)
    assert "Traceback" not in r.err
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("digitnet: error: "), r.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def epoch_lines(r: Result) -> list[str]:
    return [line for line in r.lines if line.startswith("Epoch:")]


def reported_accuracy(r: Result) -> str:
    m = TEST_ACC.match(r.lines[-1])
    assert m, r.out
    return m.group(1)


# ---------------------------------------------------------------- fixtures

def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) \
        + arr.tobytes()


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.round(x * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def bundle():
    return data.load_bundle()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real `train --epochs 1 --out F` run, shared by the tests that need weights."""
    path = tmp_path_factory.mktemp("trained") / "mlp.npz"
    return path, run_cli("train", "--epochs", "1", "--out", path)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory, bundle):
    """300 train / 100 test bundle digits written as the four MNIST IDX files."""
    g = np.random.default_rng(11)
    tr = np.sort(g.choice(len(bundle.y_train), 300, replace=False))
    te = np.sort(g.choice(len(bundle.y_test), 100, replace=False))
    d = tmp_path_factory.mktemp("mnist")
    files = {
        "train-images-idx3-ubyte.gz": to_u8(bundle.x_train[tr]).reshape(-1, 28, 28),
        "train-labels-idx1-ubyte.gz": bundle.y_train[tr],
        "t10k-images-idx3-ubyte": to_u8(bundle.x_test[te]).reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": bundle.y_test[te],
    }
    for name, arr in files.items():
        blob = idx_bytes(arr)
        (d / name).write_bytes(gzip.compress(blob, mtime=0) if name.endswith(".gz") else blob)
    x_test = files["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 255
    return d, x_test, bundle.y_test[te]


# ---------------------------------------------------------------- BLAS threads

BLAS_PROBE = """
import os, runpy, sys
import digitnet
before = 'numpy' in sys.modules
sys.argv = ['digitnet', '--help']
try:
    runpy.run_module('digitnet', run_name='__main__')
except SystemExit:
    pass
print(before, os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("2", "2")])
def test_the_cli_uses_one_blas_thread_unless_told_otherwise(preset, expected):
    """Importing digitnet does not load numpy, so ``python -m digitnet`` can choose one
    OpenBLAS thread before it does; a value in the environment is kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "OPENBLAS_NUM_THREADS")}
    env["PYTHONPATH"] = str(REPO / "py" / "src")
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    p = subprocess.run([sys.executable, "-c", BLAS_PROBE], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.stderr.strip().splitlines()[-1] == f"False {expected} True", p.stderr


# ---------------------------------------------------------------- train

def test_train_prints_header_one_epoch_line_and_test_accuracy(trained):
    path, r = trained
    assert r.code == 0, r.err
    assert r.err == ""
    assert r.lines[0] == ("Training mlp (default recipe) on 8,000 images: adam, lr 0.002, "
                          "batch 128, 1 epoch, shift augmentation 2 px, affine 0.5, styles 0.5")
    epochs = epoch_lines(r)
    assert len(epochs) == 1 and re.fullmatch(EPOCH_LINE.format(0), epochs[0]), r.out
    acc = float(reported_accuracy(r))
    assert acc > 0.5  # it learned: chance is 0.1
    assert f"Saved model to {path}" in r.lines


def test_trained_model_file_loads_and_evaluates_to_the_reported_accuracy(trained):
    path, r = trained
    model = digitnet.load(path)
    assert isinstance(model, digitnet.Sequential)
    x = np.zeros((2, 784), np.float32)
    assert model.predict_proba(x).shape == (2, 10)
    ev = run_cli("evaluate", "--weights", path)
    assert ev.code == 0, ev.err
    m = EVAL_ACC.match(ev.lines[-1])
    assert m, ev.out
    assert m.group(1) == reported_accuracy(r)
    assert "2,000 images from the bundled test split" in ev.out


def test_entry_point_in_a_subprocess(trained):
    path, r = trained
    ev = run_process("evaluate", "--weights", path)
    assert ev.code == 0, ev.err
    assert ev.lines[-1] == f"accuracy: {reported_accuracy(r)}"


def test_tutorial_recipe_two_epochs():
    r = run_cli("train", "--recipe", "tutorial", "--epochs", "2")
    assert r.code == 0, r.err
    assert r.lines[0] == ("Training mlp (tutorial recipe) on 8,000 images: sgd, lr 0.001, "
                          "batch 256, 2 epochs, shift augmentation 0 px")
    epochs = epoch_lines(r)
    assert len(epochs) == 2
    assert re.fullmatch(EPOCH_LINE.format(0), epochs[0])
    assert re.fullmatch(EPOCH_LINE.format(1), epochs[1])
    losses = [float(re.search(r"Loss: (\S+),", e).group(1)) for e in epochs]
    assert losses[1] < losses[0]
    assert float(reported_accuracy(r)) > 0.8


def test_overrides_are_used_and_reported(mnist_dir):
    d, _, _ = mnist_dir  # small data keeps this fast; the flags are what is under test
    r = run_cli("train", "--data", d, "--epochs", "1", "--optimizer", "sgd", "--lr", "0.1",
                "--no-augment", "--batch-size", "50", "--seed", "3")
    assert r.code == 0, r.err
    assert r.lines[0] == ("Training mlp (default recipe) on 300 images: sgd, lr 0.1, "
                          "batch 50, 1 epoch, shift augmentation 0 px")
    assert len(epoch_lines(r)) == 1
    reported_accuracy(r)
    r = run_cli("train", "--data", d, "--recipe", "tutorial", "--epochs", "1", "--augment",
                "--optimizer", "adam")
    assert r.code == 0, r.err
    assert r.lines[0] == ("Training mlp (tutorial recipe) on 300 images: adam, lr 0.001, "
                          "batch 256, 1 epoch, shift augmentation 2 px")


def test_train_on_idx_dir_reports_accuracy_on_its_test_files(mnist_dir, tmp_path):
    d, x_test, y_test = mnist_dir
    out = tmp_path / "small.npz"
    r = run_cli("train", "--data", d, "--epochs", "3", "--out", out)
    assert r.code == 0, r.err
    assert r.lines[0].startswith("Training mlp (default recipe) on 300 images: ")
    assert [e.split(",")[0] for e in epoch_lines(r)] == ["Epoch: 0", "Epoch: 1", "Epoch: 2"]
    acc = reported_accuracy(r)
    assert acc.endswith("00")  # k / 100: measured on the 100 test images
    model = digitnet.load(out)
    assert float(acc) == pytest.approx(np.mean(model.predict(x_test) == y_test))
    ev = run_cli("evaluate", "--weights", out, "--images", d / "t10k-images-idx3-ubyte",
                 "--labels", d / "t10k-labels-idx1-ubyte")
    assert ev.code == 0, ev.err
    assert ev.lines[-1] == f"accuracy: {acc}"


def test_train_cnn_on_idx_dir(mnist_dir):
    d, _, _ = mnist_dir
    r = run_cli("train", "--model", "cnn", "--data", d, "--epochs", "1", "--batch-size", "100")
    assert r.code == 0, r.err
    assert r.lines[0] == ("Training cnn (default recipe) on 300 images: adam, lr 0.001, "
                          "batch 100, 1 epoch, shift augmentation 2 px, affine 0.25")
    assert len(epoch_lines(r)) == 1 and re.fullmatch(EPOCH_LINE.format(0), epoch_lines(r)[0])
    assert reported_accuracy(r).endswith("00")


# ---------------------------------------------------------------- evaluate

def test_evaluate_on_idx_files(trained, bundle, tmp_path):
    path, _ = trained
    model = digitnet.load(path)
    x = bundle.x_test[::20][:100]
    u8 = to_u8(x)
    pred = model.predict(u8.astype(np.float32) / 255)
    # labels agree with the model on exactly the first 37 images -> accuracy 0.3700
    labels = np.where(np.arange(100) < 37, pred, (pred + 1) % 10)
    (tmp_path / "img.gz").write_bytes(gzip.compress(idx_bytes(u8.reshape(-1, 28, 28))))
    (tmp_path / "lab").write_bytes(idx_bytes(labels))
    r = run_cli("evaluate", "--weights", path, "--images", tmp_path / "img.gz",
                "--labels", tmp_path / "lab")
    assert r.code == 0, r.err
    assert r.lines[-1] == "accuracy: 0.3700"
    assert f"100 images from {tmp_path / 'img.gz'}" in r.lines[0]


def test_evaluate_images_without_labels_is_refused(trained, tmp_path):
    path, _ = trained
    r = run_cli("evaluate", "--weights", path, "--images", tmp_path / "img")
    assert r.code == 2
    assert "Traceback" not in r.err and "--labels" in r.err


# ---------------------------------------------------------------- predict

def render(digit28: np.ndarray, *, size: int, canvas: tuple[int, int], at: tuple[int, int],
           invert: bool = False):
    """An MNIST digit as a photo-like image: dark ink on white, scaled up, off-centre."""
    from PIL import Image

    ink = np.round(digit28.reshape(28, 28) * 255).astype(np.uint8)
    img = Image.fromarray(ink if invert else 255 - ink).resize((size, size), Image.BILINEAR)
    page = Image.new("L", canvas, 0 if invert else 255)
    page.paste(img, at)
    return page


@pytest.fixture(scope="module")
def digit_images(trained, bundle, tmp_path_factory):
    """Bundled test digits of four classes the model gets right, as PNG/JPEG files."""
    pytest.importorskip("PIL")
    from PIL import Image

    path, _ = trained
    model = digitnet.load(path)
    proba = model.predict_proba(bundle.x_test)
    chosen = []
    for cls in (3, 7, 1, 4):
        ok = np.flatnonzero((bundle.y_test == cls) & (proba.argmax(1) == cls)
                            & (proba.max(1) > 0.9))
        chosen.append(int(ok[0]))
    d = tmp_path_factory.mktemp("images")
    files = []
    for k, i in enumerate(chosen):
        img = render(bundle.x_test[i], size=140 + 10 * k, canvas=(360, 260),
                     at=(15 + 50 * k, 100 - 25 * k), invert=(k == 2))
        f = d / f"digit{k}.{'png' if k % 2 == 0 else 'jpg'}"
        img.save(f)
        files.append((f, int(bundle.y_test[i])))
    # transparent background with opaque dark ink: transparency must count as paper
    ink = np.asarray(render(bundle.x_test[chosen[0]], size=140, canvas=(200, 200), at=(30, 30)))
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[..., 3] = 255 - ink  # alpha = ink strength, colour black
    f = d / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(f)
    files.append((f, int(bundle.y_test[chosen[0]])))
    blank = d / "blank.png"
    Image.new("L", (120, 90), 255).save(blank)
    return path, files, blank


def test_predict_prints_one_line_per_image_in_order(digit_images):
    path, files, blank = digit_images
    order = [files[2], files[0], files[4], files[3], files[1]]
    r = run_cli("predict", "--weights", path, *[f for f, _ in order[:2]], blank,
                *[f for f, _ in order[2:]])
    assert r.code == 0, r.err
    assert len(r.lines) == len(order) + 1
    assert re.fullmatch(re.escape(str(blank)) + r": no digit found.*", r.lines[2])
    predicted = []
    for line, (f, _) in zip(r.lines[:2] + r.lines[3:], order):
        m = re.fullmatch(re.escape(str(f)) + r": (\d) \((\d\.\d\d)\)", line)
        assert m, line
        assert 0.0 <= float(m.group(2)) <= 1.0
        predicted.append(int(m.group(1)))
    truth = [label for _, label in order]
    assert sum(p == t for p, t in zip(predicted, truth)) >= 4, (predicted, truth)


def test_predict_blank_image_only(digit_images):
    path, _, blank = digit_images
    r = run_cli("predict", "--weights", path, blank)
    assert r.code == 0, r.err
    assert r.lines == [f"{blank}: no digit found (the image is blank)"]


def test_predict_says_not_a_digit_for_a_dot_and_a_frame(digit_images, tmp_path):
    from PIL import Image
    path, files, _ = digit_images
    dot = np.full((200, 200), 255, np.uint8)
    dot[95:110, 95:110] = 0
    frame = np.full((200, 200), 255, np.uint8)
    frame[:12], frame[-12:], frame[:, :12], frame[:, -12:] = 0, 0, 0, 0
    paths = [tmp_path / "dot.png", tmp_path / "frame.png"]
    for f, img in zip(paths, (dot, frame)):
        Image.fromarray(img).save(f)
    r = run_cli("predict", "--weights", path, *paths, files[0][0])
    assert r.code == 0, r.err
    assert r.lines[0] == f"{paths[0]}: not a digit (it is a dot or a blob, not a stroke)"
    assert r.lines[1] == f"{paths[1]}: not a digit (it is only lines along the edge of the image)"
    assert re.fullmatch(re.escape(str(files[0][0])) + r": \d \(\d\.\d\d\)", r.lines[2])


# ---------------------------------------------------------------- bad arguments: exit 2

@pytest.mark.parametrize("argv", [
    [],
    ["fit"],
    ["train", "--epochs", "0"],
    ["train", "--epochs", "abc"],
    ["train", "--epochs", "-2"],
    ["train", "--batch-size", "0"],
    ["train", "--lr", "-1"],
    ["train", "--lr", "0"],
    ["train", "--lr", "50"],
    ["train", "--lr", "nan"],
    ["train", "--lr", "fast"],
    ["train", "--model", "foo"],
    ["train", "--recipe", "best"],
    ["train", "--recipe", "bogus"],
    ["train", "--epochs", "501"],
    ["train", "--epochs", "1.5"],
    ["train", "--optimizer", "rmsprop"],
    ["train", "--bogus"],
    ["evaluate"],
    ["predict", "x.png"],
    ["predict", "--weights", "w.npz"],
], ids=lambda a: " ".join(a) or "no-args")
def test_bad_arguments_exit_2_with_usage(argv):
    r = run_cli(*argv)
    assert r.code == 2, (r.code, r.err)
    assert "usage: digitnet" in r.err
    assert "Traceback" not in r.err
    assert r.out == ""


def test_bad_arguments_exit_2_in_a_real_process():
    r = run_process("train", "--epochs", "0")
    assert r.code == 2
    assert r.err.startswith("usage: digitnet train")
    assert "argument --epochs: must be a whole number from 1 to 500, not '0'" in r.err


def test_negative_seed_is_a_usage_error():
    r = run_cli("train", "--seed", "-1", "--epochs", "1")
    assert r.code == 2 and "usage: digitnet" in r.err


# ---------------------------------------------------------------- bad files: exit 1

@pytest.fixture
def bad_files(trained, tmp_path):
    path, _ = trained
    blob = path.read_bytes()
    files = {
        "missing": tmp_path / "missing.npz",
        "truncated": tmp_path / "truncated.npz",
        "text": tmp_path / "notes.npz",
        "foreign": tmp_path / "foreign.npz",
        "empty": tmp_path / "empty.npz",
        "not-an-image": tmp_path / "notes.png",
        "bad-idx": tmp_path / "bad-idx",
    }
    files["truncated"].write_bytes(blob[: len(blob) // 2])
    files["text"].write_text("these are not weights\n")
    g = np.random.default_rng(0)
    np.savez(files["foreign"], W=g.random((784, 256)), b=g.random(256))
    files["empty"].write_bytes(b"")
    files["not-an-image"].write_text("not a picture\n")
    files["bad-idx"].write_bytes(struct.pack(">IIII", 0x0803_0000, 1, 28, 28) + bytes(784))
    return path, files


@pytest.mark.parametrize("case", ["missing", "truncated", "text", "foreign", "empty"])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_bad_weights_file_is_one_line_error(bad_files, case, command):
    _, files = bad_files
    extra = [files["not-an-image"]] if command == "predict" else []
    r = run_cli(command, "--weights", files[case], *extra)
    assert_one_line_error(r, "model file" if case != "foreign" else "digitnet model")
    assert r.out == ""


def test_missing_weights_message_names_the_file(bad_files):
    _, files = bad_files
    r = run_cli("evaluate", "--weights", files["missing"])
    assert_one_line_error(r, str(files["missing"]), "No such file")


def test_predict_non_image_is_one_line_error(bad_files):
    path, files = bad_files
    r = run_cli("predict", "--weights", path, files["not-an-image"])
    assert_one_line_error(r, str(files["not-an-image"]), "not a readable image")


def test_predict_missing_image_is_one_line_error(bad_files, tmp_path):
    path, _ = bad_files
    r = run_cli("predict", "--weights", path, tmp_path / "nope.png")
    assert_one_line_error(r, str(tmp_path / "nope.png"))


def test_evaluate_bad_idx_is_one_line_error(bad_files):
    path, files = bad_files
    r = run_cli("evaluate", "--weights", path, "--images", files["bad-idx"],
                "--labels", files["bad-idx"])
    assert_one_line_error(r, "magic number 0x08030000")


def test_evaluate_corrupt_gzip_idx_is_one_line_error(trained, tmp_path):
    path, _ = trained
    blob = bytearray(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)), mtime=0))
    blob[10] |= 0b111  # first deflate block: BTYPE 11 (reserved) -> invalid
    (tmp_path / "img.gz").write_bytes(bytes(blob))
    (tmp_path / "lab").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    r = run_cli("evaluate", "--weights", path, "--images", tmp_path / "img.gz",
                "--labels", tmp_path / "lab")
    assert_one_line_error(r, "gzip")


def test_train_missing_data_dir_is_one_line_error(tmp_path):
    r = run_cli("train", "--data", tmp_path / "no-such-dir", "--epochs", "1")
    assert_one_line_error(r, "no-such-dir", "not a directory")
    assert r.out == ""


def test_train_data_dir_missing_a_file_is_one_line_error(mnist_dir, tmp_path):
    d, _, _ = mnist_dir
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in d.iterdir():
        if not f.name.startswith("t10k-labels"):
            (partial / f.name).write_bytes(f.read_bytes())
    r = run_cli("train", "--data", partial, "--epochs", "1")
    assert_one_line_error(r, "t10k-labels-idx1-ubyte")


def test_train_batch_larger_than_training_set_is_one_line_error():
    # exit 1, not 2: whether a batch size fits depends on the data (--data DIR may hold 60,000)
    r = run_cli("train", "--batch-size", "9000", "--epochs", "1")
    assert_one_line_error(r, "--batch-size", "9000", "8000")
    assert "Epoch:" not in r.out


@pytest.fixture(scope="module")
def diverged():
    """A real process whose SGD step is far too large: the loss overflows within an epoch."""
    return run_process("train", "--epochs", "1", "--optimizer", "sgd", "--lr", "9", "--no-augment")


def test_divergence_is_an_error_that_mentions_the_learning_rate(diverged):
    r = diverged
    assert r.code == 1, r.err
    assert "Traceback" not in r.err
    errors = [line for line in r.err.splitlines() if line.startswith("digitnet: error: ")]
    assert len(errors) == 1, r.err
    assert "diverged" in errors[0] and "learning rate" in errors[0]
    assert "Test accuracy" not in r.out


def test_divergence_is_exactly_one_stderr_line(diverged):
    # numpy overflow warnings must not leak onto stderr around the error line
    assert_one_line_error(diverged, "learning rate")
