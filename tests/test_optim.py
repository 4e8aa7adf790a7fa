"""Optimisers against the textbook update rules, computed independently step by step."""
import numpy as np
import pytest

from digitnet.layers import Param
from digitnet.optim import SGD, Adam


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [Param(rng.standard_normal((3, 4)), "W"), Param(rng.standard_normal(4), "b")]


def grads_for(step, params):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(p.value.shape) for p in params]


def run(optimizer_cls, steps, **kw):
    params = make_params()
    opt = optimizer_cls(params, **kw)
    for t in range(steps):
        for p, g in zip(params, grads_for(t, params)):
            p.grad[...] = g
        opt.step()
    return params


def test_sgd_is_value_minus_lr_grad():
    params = run(SGD, 3, lr=0.1)
    expected = make_params()
    for t in range(3):
        for p, g in zip(expected, grads_for(t, expected)):
            p.value = p.value - 0.1 * g
    for p, e in zip(params, expected):
        assert np.allclose(p.value, e.value, rtol=0, atol=1e-12)


def test_sgd_momentum_matches_heavy_ball():
    params = run(SGD, 4, lr=0.05, momentum=0.9)
    expected = make_params()
    velocity = [np.zeros_like(p.value) for p in expected]
    for t in range(4):
        for i, (p, g) in enumerate(zip(expected, grads_for(t, expected))):
            velocity[i] = 0.9 * velocity[i] + g
            p.value = p.value - 0.05 * velocity[i]
    for p, e in zip(params, expected):
        assert np.allclose(p.value, e.value, rtol=0, atol=1e-12)


def textbook_adam(steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Algorithm 1 of Kingma & Ba (2015), written the long way."""
    params = make_params()
    m = [np.zeros_like(p.value) for p in params]
    v = [np.zeros_like(p.value) for p in params]
    for t in range(1, steps + 1):
        for i, (p, g) in enumerate(zip(params, grads_for(t - 1, params))):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g ** 2
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            p.value = p.value - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params


@pytest.mark.parametrize("steps", [1, 2, 10])
def test_adam_matches_the_textbook_formula(steps):
    for p, e in zip(run(Adam, steps, lr=0.01), textbook_adam(steps, lr=0.01)):
        assert np.allclose(p.value, e.value, rtol=0, atol=1e-12)


def test_adam_updates_big_and_strided_parameters_like_the_textbook():
    """A parameter larger than Adam's update chunk and a non-contiguous one (a transposed
    view) get exactly the textbook update, written into the parameter itself."""
    from digitnet.optim import CHUNK
    rng = np.random.default_rng(5)
    big = Param(rng.standard_normal(2 * CHUNK + 17), "big")
    strided = Param(rng.standard_normal((5, 3)).T, "strided")
    assert not strided.value.flags.c_contiguous
    params = [big, strided]
    start = [p.value.copy() for p in params]
    views = [p.value for p in params]
    opt = Adam(params, lr=0.01)
    m = [np.zeros_like(p.value) for p in params]
    v = [np.zeros_like(p.value) for p in params]
    expected = [s.copy() for s in start]
    for t in range(1, 4):
        for i, p in enumerate(params):
            g = rng.standard_normal(p.value.shape)
            p.grad[...] = g
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g ** 2
            expected[i] = expected[i] - 0.01 * (m[i] / (1 - 0.9 ** t)) / (
                np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
        opt.step()
    for p, e, view in zip(params, expected, views):
        assert p.value is view
        assert np.allclose(p.value, e, rtol=0, atol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr():
    """With bias correction the first step is lr * sign(g) (up to eps): the convnetjs bug check."""
    before = make_params()
    after = run(Adam, 1, lr=0.01)
    g = grads_for(0, before)
    for b, a, gi in zip(before, after, g):
        assert np.allclose(b.value - a.value, 0.01 * np.sign(gi), atol=1e-7)


def test_adam_with_large_eps_still_matches():
    for p, e in zip(run(Adam, 5, lr=0.01, eps=0.1), textbook_adam(5, lr=0.01, eps=0.1)):
        assert np.allclose(p.value, e.value, rtol=0, atol=1e-12)


def test_updates_keep_float32():
    params = [Param(np.ones((2, 2), np.float32), "W")]
    for opt in (SGD(params, lr=0.1, momentum=0.5), Adam(params, lr=0.1)):
        params[0].grad[...] = 0.5
        opt.step()
        assert params[0].value.dtype == np.float32


class Float32Only(np.ndarray):
    """A float32 array that fails any operation taking or giving float64 (a promotion an
    in-place ``value -= update`` would hide by casting back)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        outs = kwargs.get("out", ())
        for x in inputs + tuple(outs):
            if getattr(x, "dtype", None) == np.float64:
                raise AssertionError(f"{ufunc.__name__} got a float64 operand")
        plain = [x.view(np.ndarray) if isinstance(x, Float32Only) else x for x in inputs]
        if outs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Float32Only) else o
                                  for o in outs)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if getattr(result, "dtype", None) == np.float64:
            raise AssertionError(f"{ufunc.__name__} gave a float64 result")
        return outs[0] if outs else result


def test_float64_control_is_caught():
    a = np.ones(3, np.float32).view(Float32Only)
    with pytest.raises(AssertionError):
        a * np.float64(0.5)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: Adam(ps, lr=0.1)], ids=["sgd", "momentum", "adam"])
def test_updates_never_compute_in_float64(make):
    """Every array the step touches is float32, with a learning rate set as the cosine
    schedule sets it (a numpy float64 there would promote each update)."""
    from digitnet.train import cosine_lr
    rng = np.random.default_rng(0)
    params = [Param(rng.standard_normal((3, 4)).astype(np.float32).view(Float32Only), "W")]
    opt = make(params)
    for epoch in range(3):
        opt.lr = cosine_lr(0.1, epoch, 3)
        assert type(opt.lr) is float
        params[0].grad[...] = rng.standard_normal((3, 4)).astype(np.float32)
        opt.step()
    assert params[0].value.dtype == np.float32 and np.isfinite(params[0].value).all()


def test_non_positive_learning_rate_is_rejected():
    for cls in (SGD, Adam):
        with pytest.raises(ValueError):
            cls(make_params(), lr=0)
