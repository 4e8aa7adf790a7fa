"""A training run in time slices, evaluation and model checks (digitnet.session), and the
training settings they accept (digitnet.recipes)."""
import numpy as np
import pytest

from digitnet import ModelFileError, backend, data, dumps, mlp
from digitnet.recipes import LIMITS, RECIPES, SettingError, page_spec, recipe_for
from digitnet.session import TrainingSession, check_model, describe, evaluate_model


@pytest.fixture(scope="module")
def small():
    """A balanced 1/8 of the bundle (it is grouped by class), 200 test digits."""
    ds = data.load_bundle()
    return data.Dataset(ds.x_train[::8], ds.y_train[::8], ds.x_test[::10], ds.y_test[::10])


# ---- settings

def test_recipes_fill_the_settings():
    tutorial = recipe_for({"recipe": "tutorial"})
    assert (tutorial.optimizer, tutorial.lr, tutorial.batch_size, tutorial.epochs) == ("sgd", 1e-3, 256, 5)
    assert recipe_for({}) == RECIPES[("mlp", "default")]
    assert recipe_for({"model": "cnn", "recipe": "tutorial"}) == RECIPES[("cnn", "tutorial")]
    r = recipe_for({"recipe": "default", "epochs": 3, "batch_size": 32, "lr": 0.01,
                    "optimizer": "sgd", "augment": False, "seed": 4})
    assert (r.epochs, r.batch_size, r.lr, r.optimizer, r.augment_shift, r.seed) == (3, 32, 0.01, "sgd", 0, 4)


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("epochs", 1.5), ("epochs", -2), ("epochs", LIMITS["epochs"]["max"] + 1),
    ("epochs", True), ("batch_size", 0), ("batch_size", 8001), ("lr", 0), ("lr", -1),
    ("lr", 10.5), ("lr", float("nan")), ("lr", "fast"), ("optimizer", "rmsprop"),
    ("recipe", "seed"), ("recipe", "best"), ("model", "rnn"), ("augment", "yes"), ("seed", -1),
    ("preset", "tutorial")])
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(SettingError, match=f"^{field}: ") as e:
        recipe_for({field: value}, n_train=8000)
    assert e.value.field == field


def test_limits_are_the_edges_of_what_is_accepted():
    top = LIMITS["epochs"]["max"]
    assert recipe_for({"epochs": top}).epochs == top
    assert recipe_for({"lr": LIMITS["lr"]["max"]}).lr == LIMITS["lr"]["max"]
    assert recipe_for({"batch_size": 8000}, n_train=8000).batch_size == 8000
    assert recipe_for({"batch_size": 9000}).batch_size == 9000   # no data known: no upper bound


def test_page_spec_lists_every_recipe_with_its_settings():
    spec = page_spec()
    assert spec["models"] == ["cnn", "mlp"] and spec["optimizers"] == ["sgd", "adam"]
    assert spec["limits"] is LIMITS
    for (model, name), r in RECIPES.items():
        assert spec["recipes"][model][name] == {"epochs": r.epochs, "batch_size": r.batch_size,
                                                "lr": r.lr, "optimizer": r.optimizer,
                                                "augment": r.augment_shift > 0}


def test_a_recipe_init_the_model_cannot_use_is_refused():
    from digitnet.recipes import model_and_optimizer
    with pytest.raises(ValueError, match="init"):
        model_and_optimizer(RECIPES[("cnn", "default")].with_overrides(init="uniform"))
    he = model_and_optimizer(RECIPES[("mlp", "tutorial")].with_overrides(init="he"))[0]
    assert he.layers[0].init == "he"


# ---- session

def test_session_steps_to_the_end_with_epoch_records(small):
    s = TrainingSession(small, {"recipe": "default", "epochs": 2, "batch_size": 50})
    reports = []
    while s.state == "running":
        reports.append(s.step(0.02))
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
    s = TrainingSession(small, {"recipe": "tutorial", "optimizer": "sgd", "lr": 9, "epochs": 1})
    while s.state == "running":
        s.step(0.05)
    assert s.state == "diverged"
    assert "diverged" in s.message and "learning rate" in s.message
    with pytest.raises(RuntimeError):
        s.results()


def test_session_uses_its_backend_only_inside_slices(small, monkeypatch):
    calls = []

    def counting(a, b):
        calls.append(1)
        return np.matmul(a, b)

    original = backend.product
    monkeypatch.setattr(backend, "product",
                        lambda name: counting if name == "counting" else original(name))
    s = TrainingSession(small, {"recipe": "default", "epochs": 1, "batch_size": 100}, "counting")
    s.step(0.0)
    assert calls and backend.current() == backend.DEFAULT
    n = len(calls)
    s.model.predict_proba(small.x_test[:2])   # outside a slice: the default product
    assert len(calls) == n


def test_a_batch_larger_than_the_data_is_refused(small):
    with pytest.raises(SettingError, match="batch_size"):
        TrainingSession(small, {"batch_size": len(small.x_train) + 1})
    with pytest.raises(SettingError, match="batch_size"):   # the recipe's own 256 > 200
        TrainingSession(data.Dataset(small.x_train[:200], small.y_train[:200],
                                     small.x_test, small.y_test), {"recipe": "tutorial"})


def test_training_with_blas_matches_numpy(small):
    pytest.importorskip("scipy")
    runs = []
    for name in (None, "sgemm"):
        s = TrainingSession(small, {"recipe": "tutorial", "epochs": 1}, name)
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
