"""The Sequential model: end-to-end gradients, predictions, and the model file format."""
import io
import json
from pathlib import Path

import numpy as np
import pytest

import digitnet
from digitnet.layers import LeakyReLU, Linear, Softmax
from digitnet.losses import softmax_cross_entropy
from digitnet.model import FORMAT_VERSION, ModelFileError, Sequential, cnn, dumps, load, loads, mlp, save
from gradcheck import numeric_grad, rel_error

rng = np.random.default_rng(0)


def tiny_net():
    return Sequential([Linear(6, 5, seed=0, dtype=np.float64), LeakyReLU(0.2),
                       Linear(5, 4, seed=1, dtype=np.float64), Softmax()])


def test_whole_network_gradient_through_the_fused_loss():
    net = tiny_net()
    x = rng.standard_normal((3, 6))
    targets = np.eye(4)[[0, 3, 1]]

    def loss(_=None):
        return softmax_cross_entropy(net.logits(x), targets)[0]

    net.zero_grad()
    _, dlogits = softmax_cross_entropy(net.logits(x), targets)
    net.backward(dlogits)
    for p in net.parameters():
        assert rel_error(p.grad, numeric_grad(loss, p.value)) < 1e-6, p.name


def test_forward_is_softmax_of_logits_and_predictions_agree():
    model = mlp(seed=3)
    x = rng.random((5, 784), dtype=np.float32)
    probs = model.predict_proba(x)
    assert probs.shape == (5, 10) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(probs, model.forward(x))
    assert (model.predict(x) == model.logits(x).argmax(axis=1)).all()
    assert model.predict_proba(np.zeros((0, 784))).shape == (0, 10)


def test_mlp_preset_is_the_tutorial_network():
    model = mlp()
    assert [s["type"] for s in model.architecture()] == [
        "Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear", "Softmax"]
    assert [p.value.shape for p in model.parameters()] == [(784, 256), (256,), (256, 128), (128,), (128, 10), (10,)]
    assert model.architecture()[1]["alpha"] == 0.2


@pytest.mark.parametrize("make", [mlp, cnn])
def test_save_load_round_trip_is_bit_exact(make, tmp_path):
    model = make(seed=7)
    for p in model.parameters():  # make the biases non-zero too
        p.value += np.float32(0.01) * rng.standard_normal(p.value.shape).astype(np.float32)
    path = tmp_path / "m.npz"
    save(model, path)
    again = load(path)
    assert again.architecture() == model.architecture()
    for a, b in zip(model.parameters(), again.parameters()):
        assert a.value.dtype == b.value.dtype and np.array_equal(a.value, b.value)
    x = rng.random((4, 784), dtype=np.float32)
    assert np.array_equal(model.predict_proba(x), again.predict_proba(x))
    assert np.array_equal(loads(path.read_bytes()).predict_proba(x), again.predict_proba(x))
    assert dumps(again) == dumps(model)


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def good_arrays(model):
    arrays = {"format": np.array("digitnet-model"), "version": np.array(FORMAT_VERSION),
              "architecture": np.array(json.dumps(model.architecture()))}
    arrays.update({f"p{i}": p.value for i, p in enumerate(model.parameters())})
    return arrays


def test_arrays_helper_builds_a_loadable_file():
    """Control for the rejection tests below: unmodified arrays load fine."""
    loads(npz_bytes(**good_arrays(mlp())))


@pytest.mark.parametrize("mutate,message", [
    (lambda a: a.pop("format"), "not a digitnet model"),
    (lambda a: a.update(format=np.array("something-else")), "not a digitnet model"),
    (lambda a: a.update(version=np.array(99)), "version 99"),
    (lambda a: a.pop("p5"), "needs 6 weight arrays"),
    (lambda a: a.update(p2=np.zeros((128, 256), np.float32)), "p2"),
    (lambda a: a.update(p0=np.full((784, 256), np.nan, np.float32)), "finite"),
    (lambda a: a.update(architecture=np.array("[{\"type\": \"Bogus\"}]")), "unknown layer type"),
    (lambda a: a.update(architecture=np.array("not json")), "invalid architecture"),
])
def test_mismatched_files_are_rejected(mutate, message):
    arrays = good_arrays(mlp())
    mutate(arrays)
    with pytest.raises(ModelFileError, match=message):
        loads(npz_bytes(**arrays))


@pytest.mark.parametrize("cut", [10, 1000, -100])
def test_truncated_files_are_rejected(cut):
    blob = dumps(mlp())
    with pytest.raises(ModelFileError):
        loads(blob[:cut])


def test_foreign_files_are_rejected(tmp_path):
    with pytest.raises(ModelFileError):
        loads(b"hello, I am a text file")
    with pytest.raises(ModelFileError):
        loads(npz_bytes(weights=rng.standard_normal((3, 3))))
    with pytest.raises(ModelFileError, match="(?i)cannot read"):
        load(tmp_path / "missing.npz")
    assert issubclass(ModelFileError, ValueError)


def test_pickled_object_arrays_are_refused():
    blob = npz_bytes(format=np.array([object()], dtype=object))
    with pytest.raises(ModelFileError):
        loads(blob)


def _fail_halfway(monkeypatch):
    """Make Path.write_bytes write half its data, then fail as a full disk would."""
    def write_half(self, data):
        with open(self, "wb") as f:
            f.write(data[:len(data) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", write_half)


@pytest.mark.parametrize("fail", ["write", "replace"])
def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, fail):
    path = tmp_path / "m.npz"
    save(mlp(seed=1), path)
    before = path.read_bytes()
    if fail == "write":
        _fail_halfway(monkeypatch)
    else:
        def refuse(self, target):
            raise OSError(13, "Permission denied")
        monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError):
        save(mlp(seed=2), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    restored = digitnet.load(path)
    for a, b in zip(restored.parameters(), mlp(seed=1).parameters()):
        np.testing.assert_array_equal(a.value, b.value)
