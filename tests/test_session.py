"""The browser worker's Python glue (digitnet.session), run in CPython."""
import json

import numpy as np
import pytest

from digitnet import ModelFileError, data, dumps, layers, mlp
from digitnet.session import (TrainingSession, blas_matmul, check_model, describe,
                              evaluate_model, recipe_for)


@pytest.fixture(scope="module")
def small():
    """A balanced 1/8 of the bundle (it is grouped by class), 200 test digits."""
    ds = data.load_bundle()
    return data.Dataset(ds.x_train[::8], ds.y_train[::8], ds.x_test[::10], ds.y_test[::10])


# ---- settings

def test_recipe_names_fill_the_settings():
    tutorial = recipe_for({"recipe": "seed"})
    assert (tutorial.optimizer, tutorial.lr, tutorial.batch_size, tutorial.epochs) == ("sgd", 1e-3, 256, 5)
    assert recipe_for({"recipe": "default"}).optimizer == "adam"
    r = recipe_for({"recipe": "default", "epochs": 3, "batch_size": 32, "lr": 0.01,
                    "optimizer": "sgd", "augment": False})
    assert (r.epochs, r.batch_size, r.lr, r.optimizer, r.augment_shift) == (3, 32, 0.01, "sgd", 0)


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("epochs", 1.5), ("epochs", -2), ("batch_size", 0), ("batch_size", 8001),
    ("lr", 0), ("lr", -1), ("lr", 10.5), ("lr", float("nan")), ("optimizer", "rmsprop"),
    ("recipe", "fast"), ("recipe", "best")])
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        recipe_for({field: value})


# ---- session

def test_session_steps_to_the_end_with_epoch_records(small):
    s = TrainingSession(small, {"recipe": "default", "epochs": 2, "batch_size": 50})
    reports = []
    while s.state == "running":
        reports.append(json.loads(s.step_json(0.02)))
    assert s.state == "done"
    epochs = [e for r in reports for e in r["epochs"]]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(0 <= e["val_accuracy"] <= 1 and e["loss"] > 0 for e in epochs)
    last = reports[-1]
    assert last["seen"] == last["total"] == 2 * len(small.x_train) and last["progress"] == 1
    assert last["examples_per_s"] > 0 and last["eta_s"] == 0
    slices = [r for r in reports if r["batches"]]
    assert sum(r["batches"] for r in reports) == 2 * 20
    assert all(r["loss"] > 0 and 0 <= r["accuracy"] <= 1 for r in slices)
    # An epoch's end closes its slice, so the page can log it at once.
    assert [len(r["epochs"]) for r in reports].count(1) == 2
    res = s.results()
    assert res["accuracy"] == epochs[-1]["val_accuracy"]
    assert res["accuracy"] > 0.5
    assert np.array(res["confusion"]).sum() == len(small.y_test)
    assert np.trace(np.array(res["confusion"])) == round(res["accuracy"] * len(small.y_test))
    confs = [m["confidence"] for m in res["mistakes"]]
    assert confs == sorted(confs, reverse=True)
    assert all(m["label"] != m["predicted"] and len(m["pixels"]) == 784 for m in res["mistakes"])


def test_stop_keeps_a_usable_partly_trained_model(small):
    s = TrainingSession(small, {"recipe": "default", "epochs": 5, "batch_size": 25})
    r = s.step(0.0)  # one batch
    assert r["batches"] == 1 and s.state == "running"
    s.stop()
    assert s.state == "stopped"
    assert s.step()["batches"] == 0  # a stopped session does nothing
    model = check_model(s.model_bytes())
    assert model.predict_proba(small.x_test[:3]).shape == (3, 10)
    assert 0 <= s.results()["accuracy"] <= 1


def test_divergence_is_reported_not_raised(small):
    s = TrainingSession(small, {"recipe": "seed", "optimizer": "sgd", "lr": 9, "epochs": 1})
    while s.state == "running":
        s.step(0.05)
    assert s.state == "diverged"
    assert "diverged" in s.message and "learning rate" in s.message
    with pytest.raises(RuntimeError):
        s.results()


def test_session_restores_numpy_matmul_between_slices(small):
    calls = []

    def counting(a, b):
        calls.append(1)
        return np.matmul(a, b)

    s = TrainingSession(small, {"recipe": "default", "epochs": 1, "batch_size": 100}, matmul=counting)
    s.step(0.0)
    assert calls and layers._matmul is np.matmul


# ---- BLAS matmul

def test_blas_matmul_matches_numpy_without_copies():
    pytest.importorskip("scipy")
    mm = blas_matmul()
    rng = np.random.default_rng(0)
    a = rng.random((37, 53), dtype=np.float32)
    b = rng.random((53, 29), dtype=np.float32)
    cases = [(a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)),
             (np.ascontiguousarray(a.T).T, np.ascontiguousarray(b.T).T),  # transposed views
             (a[:, :20], b[:20]),                                          # non-contiguous
             (a[:1], b)]                                                   # one row (predict)
    for x, y in cases:
        got = mm(x, y)
        want = x.astype(np.float64) @ y.astype(np.float64)
        assert got.shape == want.shape and got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # float64 (gradient checks) and 1-D operands fall back to numpy.
    np.testing.assert_array_equal(mm(a.astype(np.float64), b.astype(np.float64)),
                                  a.astype(np.float64) @ b.astype(np.float64))


def test_training_with_blas_matches_numpy(small):
    pytest.importorskip("scipy")
    runs = []
    for mm in (None, blas_matmul()):
        s = TrainingSession(small, {"recipe": "seed", "epochs": 1}, matmul=mm)
        while s.state == "running":
            s.step(1.0)
        runs.append([p.value for p in s.model.parameters()])
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


# ---- model files

def test_check_model_accepts_digitnet_models_and_refuses_others(small):
    model = check_model(dumps(mlp(seed=3)))
    assert describe(model) == "MLP 784-256-128-10, 235,146 parameters"
    good = dumps(mlp())
    with pytest.raises(ModelFileError):
        check_model(good[: len(good) // 2])  # truncated
    with pytest.raises(ModelFileError):
        check_model(b"PK\x03\x04 not really a zip")  # foreign
    import io
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros(3))
    with pytest.raises(ModelFileError):
        check_model(buf.getvalue())  # an npz, but not a model
    from digitnet.layers import Linear, Softmax
    from digitnet.model import Sequential
    with pytest.raises(ModelFileError, match="784|10"):
        check_model(dumps(Sequential([Linear(100, 10), Softmax()])))  # wrong input size
    with pytest.raises(ModelFileError, match="10"):
        check_model(dumps(Sequential([Linear(784, 7), Softmax()])))  # wrong output size


def test_evaluate_model_reports_accuracy(small):
    res = evaluate_model(mlp(seed=0), small)
    assert 0 <= res["accuracy"] < 0.3 and res["n_test"] == len(small.y_test)


def test_backward_without_input_grad_gives_the_same_parameter_grads():
    """Training skips the first layer's input gradient (digitnet.model.Sequential.backward)."""
    from digitnet import cnn
    rng = np.random.default_rng(0)
    x = rng.random((4, 784)).astype(np.float32)
    d = rng.standard_normal((4, 10)).astype(np.float32)
    for make in (mlp, cnn):
        grads = []
        for input_grad in (True, False):
            m = make(seed=1)
            m.zero_grad()
            m.logits(x, training=True)
            dx = m.backward(d, input_grad=input_grad)
            assert (dx is None) == (not input_grad)
            grads.append([p.grad.copy() for p in m.parameters()])
        for a, b in zip(*grads):
            np.testing.assert_array_equal(a, b)


def test_conv_products_use_an_installed_matmul_even_in_pyodide_mode(monkeypatch):
    """conv.py uses einsum in Pyodide (numpy there has no BLAS), but once training installs
    scipy's sgemm through layers.set_matmul the conv products go through it too."""
    from digitnet import cnn, conv

    monkeypatch.setattr(conv, "USE_EINSUM", True)
    rng = np.random.default_rng(0)
    x = rng.random((3, 784)).astype(np.float32)
    d = rng.standard_normal((3, 10)).astype(np.float32)
    outs = []
    for fn in (None, "counting"):
        calls = []

        def counting(a, b):
            calls.append(a.shape)
            return np.matmul(a, b)

        m = cnn(seed=2)
        layers.set_matmul(counting if fn else None)
        try:
            m.zero_grad()
            logits = m.logits(x, training=True)
            m.backward(d)
        finally:
            layers.set_matmul()
        conv_calls = [s for s in calls if s[0] in (16, 32) or s[1] in (16 * 25, 32 * 25) or s[0] == 25]
        assert bool(conv_calls) == bool(fn)
        outs.append((logits, [p.grad.copy() for p in m.parameters()]))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(outs[0][1], outs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_without_scipy_there_is_no_blas_matmul_and_training_uses_numpy(monkeypatch, small):
    import sys
    monkeypatch.setitem(sys.modules, "scipy.linalg.blas", None)  # import fails
    assert blas_matmul() is None
    s = TrainingSession(small, {"recipe": "seed", "epochs": 1}, matmul=blas_matmul())
    s.step(0.0)
    assert s.state == "running" and layers.matmul_is_default()
