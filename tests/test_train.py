"""The training loop: it learns, reports progress, stops on request and on divergence."""
import numpy as np
import pytest

from digitnet import data
from digitnet.model import mlp
from digitnet.optim import SGD, Adam
from digitnet.recipes import get_recipe
from digitnet.train import TrainingDiverged, evaluate, fit


@pytest.fixture(scope="module")
def bundle():
    return data.load_bundle()


def test_tutorial_recipe_learns(bundle, tutorial_mlp):
    """The tutorial's setup with correct maths reaches ~90% after its 5 epochs."""
    model, history = tutorial_mlp
    assert len(history.epochs) == 5
    assert history.epochs[-1]["loss"] < 0.5 * history.epochs[0]["loss"]
    assert history.epochs[-1]["val_accuracy"] >= 0.88
    assert evaluate(model, bundle.x_test, bundle.y_test) == history.epochs[-1]["val_accuracy"]


def test_adam_with_augmentation_learns_a_subset(bundle):
    model = mlp(seed=1)
    # The bundle is grouped by class, so take every 4th image for a balanced subset.
    fit(model, bundle.x_train[::4], bundle.y_train[::4], Adam(model.parameters(), lr=2e-3),
        epochs=4, batch_size=64, augment_shift=2, seed=1, lr_schedule="cosine")
    assert evaluate(model, bundle.x_test, bundle.y_test) >= 0.85


def test_untrained_model_is_at_chance(bundle):
    """Control for the floors above: they are not reachable without training."""
    assert evaluate(mlp(seed=0), bundle.x_test, bundle.y_test) < 0.25


def test_training_is_deterministic_for_a_seed(bundle):
    runs = []
    for _ in range(2):
        model = mlp(seed=4)
        fit(model, bundle.x_train[:512], bundle.y_train[:512], Adam(model.parameters()),
            epochs=2, batch_size=64, augment_shift=2, seed=9)
        runs.append([p.value.copy() for p in model.parameters()])
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def test_callbacks_report_progress(bundle):
    batches, epochs = [], []
    model = mlp()
    history = fit(model, bundle.x_train[:300], bundle.y_train[:300], SGD(model.parameters(), lr=0.1),
                  epochs=2, batch_size=128, x_val=bundle.x_test[:100], y_val=bundle.y_test[:100],
                  on_batch=batches.append, on_epoch=epochs.append)
    assert [(b["epoch"], b["batch"]) for b in batches] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [b["seen"] for b in batches] == [128, 256, 300, 428, 556, 600]
    assert all(b["total"] == 600 and b["batches"] == 3 for b in batches)
    assert all(0 <= b["accuracy"] <= 1 and np.isfinite(b["loss"]) for b in batches)
    elapsed = [b["elapsed"] for b in batches]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert epochs == history.epochs and len(epochs) == 2
    assert epochs[0]["loss"] == pytest.approx(np.mean([b["loss"] for b in batches[:3]]))
    assert 0 <= epochs[1]["val_accuracy"] <= 1


def test_should_stop_cancels_between_batches(bundle):
    model = mlp()
    seen = []
    history = fit(model, bundle.x_train[:1000], bundle.y_train[:1000], SGD(model.parameters(), lr=0.1),
                  epochs=3, batch_size=100, on_batch=seen.append, should_stop=lambda: len(seen) >= 4)
    assert history.stopped and len(seen) == 4 and history.epochs == []
    assert np.isfinite(model.predict_proba(bundle.x_test[:10])).all()


def test_divergence_stops_and_keeps_finite_weights(bundle):
    model = mlp()
    with pytest.raises(TrainingDiverged, match="learning rate"):
        fit(model, bundle.x_train[:2000], bundle.y_train[:2000], SGD(model.parameters(), lr=9.0),
            epochs=3, batch_size=32, loss_reduction="sum")
    assert all(np.isfinite(p.value).all() for p in model.parameters())
    probs = model.predict_proba(bundle.x_test[:20])
    assert np.isfinite(probs).all()


def test_cosine_schedule_decays_the_learning_rate(bundle):
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1)
    lrs = []
    fit(model, bundle.x_train[:64], bundle.y_train[:64], opt, epochs=4, batch_size=64,
        lr_schedule="cosine", on_epoch=lambda r: lrs.append(opt.lr))
    assert lrs == pytest.approx([0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05, 0.1 * (1 + np.cos(3 * np.pi / 4)) / 2])
    assert all(type(lr) is float for lr in lrs)  # a numpy float64 would promote float32 updates


def test_a_recipe_trains_in_float32_end_to_end(bundle):
    """Parameters, gradients and Adam's moments stay float32 through a cosine-scheduled run."""
    from digitnet.recipes import model_and_optimizer
    from digitnet.train import training_steps
    recipe = get_recipe("mlp", "default")
    model, opt = model_and_optimizer(recipe)
    for _ in training_steps(model, bundle.x_train[:256], bundle.y_train[:256], opt, epochs=2,
                            batch_size=128, lr_schedule="cosine"):
        pass
    arrays = [a for p in model.parameters() for a in (p.value, p.grad)] + opt.m + opt.v
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}
    assert type(opt.lr) is float


@pytest.mark.parametrize("kwargs", [dict(epochs=0, batch_size=10), dict(epochs=1, batch_size=0),
                                    dict(epochs=1, batch_size=10_000), dict(epochs=1.5, batch_size=10)])
def test_bad_settings_are_rejected(bundle, kwargs):
    model = mlp()
    with pytest.raises(ValueError):
        fit(model, bundle.x_train[:100], bundle.y_train[:100], SGD(model.parameters()), **kwargs)


def test_training_steps_can_be_driven_a_few_batches_at_a_time(bundle):
    """How the browser trains: pull records in chunks, stop by simply not pulling more."""
    from digitnet.train import training_steps
    model = mlp()
    steps = training_steps(model, bundle.x_train[::8], bundle.y_train[::8], Adam(model.parameters(), lr=3e-3),
                           epochs=2, batch_size=250, x_val=bundle.x_test[::10], y_val=bundle.y_test[::10])
    first = [next(steps) for _ in range(3)]
    assert [r["kind"] for r in first] == ["batch", "batch", "batch"]
    rest = list(steps)
    kinds = [r["kind"] for r in first + rest]
    assert kinds == ["batch"] * 4 + ["epoch"] + ["batch"] * 4 + ["epoch"]
    assert rest[-1]["seen"] == 2000 and rest[-1]["train_time"] <= rest[-1]["elapsed"]
    assert rest[-1]["val_accuracy"] > 0.5



def test_each_epoch_trains_on_augmented_shifted_shuffled_images(bundle, monkeypatch):
    """Each epoch trains on augment_epoch, then random_shift, then a shuffle, drawn from the
    seed's generator in that order epoch after epoch."""
    from digitnet.augment import augment_epoch
    from digitnet.train import training_steps
    x, y = bundle.x_train[::40], bundle.y_train[::40]
    model, seen = mlp(seed=2), []
    logits = model.logits
    monkeypatch.setattr(model, "logits", lambda xb, training=False: (seen.append(xb.copy()),
                                                                     logits(xb, training))[1])
    for _ in training_steps(model, x, y, Adam(model.parameters()), epochs=3, batch_size=64,
                            augment_shift=2, seed=3, augment={"affine": 0.5, "styles": 0.5}):
        pass
    rng, expected = np.random.default_rng(3), []
    for _ in range(3):
        xe = data.random_shift(augment_epoch(x, y, rng, affine=0.5, styles=0.5), 2, rng)
        order = rng.permutation(len(x))
        expected += [xe[order[i:i + 64]] for i in range(0, len(x), 64)]
    assert len(seen) == len(expected) == 3 * -(-len(x) // 64)
    for got, want in zip(seen, expected):
        assert np.array_equal(got, want)
