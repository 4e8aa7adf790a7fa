"""Epoch plans (digitnet.epochs): made one epoch ahead in a second process, they are the
plans made in-process, image for image; the process ends with the plans, early or not;
and training on them is the same training."""
import multiprocessing

import numpy as np
import pytest

from digitnet import data, epochs
from digitnet.recipes import get_recipe
from digitnet.train import fit_recipe


@pytest.fixture(scope="module")
def small():
    ds = data.load_bundle()
    return data.Dataset(ds.x_train[::16], ds.y_train[::16], ds.x_test[:200], ds.y_test[:200])


@pytest.fixture
def second_process(monkeypatch):
    """The second process even on a one-core machine (the path under test)."""
    monkeypatch.setattr(epochs, "can_plan_ahead", lambda: True)


def plan_args(ds, n_epochs=3):
    r = get_recipe("mlp", "default")
    return (ds.x_train, ds.y_train, 5, n_epochs, 64, r.augmentation(), r.augment_shift)


def test_plans_made_ahead_are_the_plans_made_here(small, second_process):
    args = plan_args(small)
    assert args[5] and args[6]  # the default recipe augments and shifts: the process is used
    here = [(p.images.copy(), p.where, p.batches) for p in epochs.epoch_plans(*args)]
    ahead = [(p.images.copy(), p.where, p.batches) for p in epochs.plans_ahead(*args)]
    assert len(ahead) == len(here) == 3
    for (xa, wa, ba), (xh, wh, bh) in zip(ahead, here):
        np.testing.assert_array_equal(xa, xh)
        np.testing.assert_array_equal(wa, wh)
        assert len(ba) == len(bh) and all(np.array_equal(a, b) for a, b in zip(ba, bh))
    # Epochs differ (fresh draws): the comparison above can fail.
    assert not np.array_equal(here[1][0], here[2][0])
    assert not multiprocessing.active_children()


def test_the_second_process_ends_when_the_plans_are_dropped_early(small, second_process):
    plans = epochs.plans_ahead(*plan_args(small, n_epochs=5))
    next(plans)
    next(plans)  # from the second process
    assert multiprocessing.active_children()
    plans.close()
    assert not multiprocessing.active_children()


def test_training_on_plans_made_ahead_is_the_same_training(small, second_process):
    recipe = get_recipe("mlp", "default").with_overrides(epochs=2)
    m_here, h_here = fit_recipe(recipe, small)
    m_ahead, h_ahead = fit_recipe(recipe, small, ahead=True)
    for p, q in zip(m_here.parameters(), m_ahead.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    assert [e["loss"] for e in h_ahead.epochs] == [e["loss"] for e in h_here.epochs]
    assert not multiprocessing.active_children()


def test_if_the_second_process_dies_the_same_plans_are_made_here(small, second_process):
    args = plan_args(small, n_epochs=4)
    here = [p.images.copy() for p in epochs.epoch_plans(*args)]
    plans = epochs.plans_ahead(*args)
    got = [next(plans).images.copy()]
    for child in multiprocessing.active_children():
        child.terminate()
    with pytest.warns(RuntimeWarning, match="second process"):
        got += [p.images.copy() for p in plans]
    assert len(got) == 4
    for a, b in zip(got, here):
        np.testing.assert_array_equal(a, b)
    assert not multiprocessing.active_children()
