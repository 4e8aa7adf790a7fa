"""Data-parallel training (digitnet.parallel): share gradients add up to the batch's, and a
run split over N replicas (simulated in one process, exchanging copies as workers do) is
the 1-replica run, which is the CLI's training loop."""
import numpy as np
import pytest

from digitnet import data, loads, mlp
from digitnet.data import one_hot
from digitnet.losses import softmax_cross_entropy
from digitnet.parallel import Replica, flat_gradients, share_bounds, share_gradient
from digitnet.recipes import model_and_optimizer, recipe_for
from digitnet.train import evaluate, training_steps
from digitnet.worker_api import WorkerAPI


@pytest.fixture(scope="module")
def bundle():
    return data.load_bundle()


def run_replicas(bundle, settings, world, max_batches=None):
    """Step `world` replicas together as the page's workers do (each gets the others'
    gradients as byte copies, its own as None); returns the replicas and rank 0's records."""
    reps = [Replica(bundle, settings, k, world) for k in range(world)]
    records = []
    while max_batches is None or len(records) < max_batches:
        outs = [r.compute() for r in reps]
        if outs[0] is None:
            assert all(o is None for o in outs)
            break
        sent = [o["grad"].tobytes() for o in outs]
        losses, corrects = [o["loss"] for o in outs], [o["correct"] for o in outs]
        recs = [r.apply([None if j == k else g for j, g in enumerate(sent)], losses, corrects)
                for k, r in enumerate(reps)]
        if recs[0]["kind"] == "epoch" and world > 1:
            reps[0].validated([rec["val_correct"] for rec in recs])
        records.append(recs[0])
        if recs[0]["kind"] == "diverged":
            assert all(rec["kind"] == "diverged" for rec in recs)
            break
    return reps, records


def test_share_gradients_sum_to_the_batch_gradient():
    rng = np.random.default_rng(3)
    x = rng.random((37, 784))
    t = one_hot(rng.integers(0, 10, 37), dtype=np.float64)
    model = mlp(seed=2, dtype=np.float64)
    flat = flat_gradients(model)
    model.zero_grad()
    logits = model.logits(x, training=True)
    whole_loss, d = softmax_cross_entropy(logits, t, "sum")
    model.backward(d, input_grad=False)
    whole = flat.copy()
    for world in (2, 3):
        total, loss = np.zeros_like(flat), 0.0
        parts = []
        for k in range(world):
            a, b = share_bounds(len(x), k, world)
            share_loss, _ = share_gradient(model, x[a:b], t[a:b])
            parts.append(flat.copy())
            total += flat
            loss += share_loss
        np.testing.assert_allclose(total, whole, rtol=1e-12, atol=1e-14)
        assert loss == pytest.approx(whole_loss * len(x), rel=1e-12)
        assert not np.allclose(parts[0], whole, atol=1e-3)  # one share alone is not the batch's
    # The flat buffer is the parameters' gradients, in parameters() order.
    np.testing.assert_array_equal(flat[:784 * 256].reshape(784, 256), model.parameters()[0].grad)


def test_shares_cover_every_batch_once():
    for batch in (1, 5, 64, 255, 256):
        for world in (1, 2, 3, 4):
            bounds = [share_bounds(batch, k, world) for k in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == batch
            assert all(b[1] == c[0] for b, c in zip(bounds, bounds[1:]))
    model = mlp(seed=0)
    flat = flat_gradients(model)
    flat += 1
    assert share_gradient(model, np.zeros((0, 784), np.float32), np.zeros((0, 10), np.float32)) == (0.0, 0)
    assert not flat.any()  # an empty share contributes a zero gradient


def test_one_replica_is_the_cli_training_loop(bundle):
    for settings in ({"recipe": "tutorial", "epochs": 1}, {"recipe": "default", "epochs": 1}):
        (rep,), records = run_replicas(bundle, settings, 1)
        recipe = recipe_for(settings, len(bundle.x_train))
        model, opt = model_and_optimizer(recipe)
        steps = training_steps(model, bundle.x_train, bundle.y_train, opt, epochs=1,
                               batch_size=recipe.batch_size, augment_shift=recipe.augment_shift,
                               seed=recipe.seed, lr_schedule=recipe.lr_schedule,
                               loss_reduction=recipe.loss_reduction, augment=recipe.augmentation())
        cli = [rec for rec in steps if rec["kind"] == "batch"]
        assert len(records) == len(cli) == rep.n_batches
        assert [r["loss"] for r in records[:-1]] == pytest.approx([r["loss"] for r in cli[:-1]], rel=1e-5)
        for p, q in zip(rep.model.parameters(), model.parameters()):
            np.testing.assert_allclose(p.value, q.value, rtol=0, atol=1e-6)
        assert rep.state == "done" and rep.seen == len(bundle.x_train)


@pytest.mark.parametrize("settings, atol", [
    # SGD on mean and on summed gradients: rounding differences stay rounding-sized.
    ({"recipe": "default", "epochs": 1, "seed": 4, "optimizer": "sgd", "lr": 0.1}, 1e-6),
    ({"recipe": "tutorial", "epochs": 1, "seed": 4}, 1e-6),
    # Adam divides by sqrt(v): a gradient rounded differently near zero changes a step's
    # sign, so weights drift further (seed 4: ~0.5% in norm after an epoch; seed 0: 1e-6).
    ({"recipe": "default", "epochs": 1, "seed": 4}, None),
])
def test_two_replicas_train_like_one(bundle, settings, atol):
    (one,), rec1 = run_replicas(bundle, settings, 1)
    two, rec2 = run_replicas(bundle, settings, 2)
    for p0, p1 in zip(two[0].model.parameters(), two[1].model.parameters()):
        np.testing.assert_array_equal(p0.value, p1.value)  # replicas stay identical
    for p, q in zip(one.model.parameters(), two[0].model.parameters()):
        if atol is not None:
            np.testing.assert_allclose(p.value, q.value, rtol=0, atol=atol)
        assert np.linalg.norm(p.value - q.value) <= 0.01 * np.linalg.norm(p.value)
    acc1 = evaluate(one.model, bundle.x_test, bundle.y_test)
    acc2 = evaluate(two[0].model, bundle.x_test, bundle.y_test)
    assert acc1 > 0.5 and abs(acc1 - acc2) <= 0.003
    assert rec2[-1]["kind"] == "epoch" and rec2[-1]["val_accuracy"] == acc2
    assert rec2[-1]["loss"] == pytest.approx(rec1[-1]["loss"], rel=1e-3)
    # A different seed is a different run (the comparison above can fail).
    (other,), _ = run_replicas(bundle, {**settings, "seed": 5}, 1)
    assert not np.allclose(other.model.parameters()[0].value, one.model.parameters()[0].value, atol=1e-3)


def test_divergence_ends_every_replica_at_the_same_batch(bundle):
    reps, records = run_replicas(bundle, {"recipe": "tutorial", "epochs": 1, "lr": 9,
                                          "optimizer": "sgd"}, 2)
    assert records[-1]["kind"] == "diverged" and "learning rate" in records[-1]["message"]
    assert all(r.state == "diverged" for r in reps)
    assert all(np.isfinite(p.value).all() for p in reps[0].model.parameters())
    with pytest.raises(RuntimeError):
        reps[0].model_bytes()


def test_worker_api_runs_a_replica_pair_and_stops(bundle):
    """Two WorkerAPIs as two page workers: bytes in, records out; Stop after 5 batches."""
    apis = [WorkerAPI(bundle), WorkerAPI(bundle)]
    for k, a in enumerate(apis):
        a.start_replica({"recipe": "tutorial", "epochs": 2}, k, 2)
    for _ in range(5):
        outs = [a.replica_compute() for a in apis]
        sent = [bytearray(a.replica_gradient().tobytes()) for a in apis]
        for k, a in enumerate(apis):
            rec = a.replica_apply([None if j == k else g for j, g in enumerate(sent)],
                                  [o["loss"] for o in outs], [o["correct"] for o in outs])
            assert rec["kind"] == "batch"
    report = apis[0].replica_report()
    assert report["seen"] == 5 * 256 and report["batches"] == 5 and report["workers"] == 2
    assert report["state"] == "running" and 0 < report["progress"] < 1
    with pytest.raises(RuntimeError):
        apis[0].finish_replica()  # still running
    for a in apis:
        a.replica_stop()
        assert a.replica_compute() is None
    out = apis[0].finish_replica()
    model = loads(out["bytes"])
    for p, q in zip(model.parameters(), apis[1].replica.model.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    assert out["results"]["accuracy"] == evaluate(model, bundle.x_test, bundle.y_test)
    assert apis[0].replica is None
