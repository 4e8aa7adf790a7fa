"""Tests for digitnet.convpool: a thin Conv2D and the 2x2 MaxPool2D after it run as one
layer must give what the two layers give one after the other (outputs, parameter and
input gradients, ties included), pass a gradient check, and be what CPython's training
runs for the CNN's first pair only."""
from __future__ import annotations

import numpy as np
import pytest

from digitnet import backend, convpool
from digitnet.conv import Conv2D, MaxPool2D
from digitnet.model import cnn

from gradcheck import check_layer_grads
from test_conv import conv2d_naive, maxpool_backward_naive, maxpool_naive


def pair(c, f, k, padding, seed=0):
    conv = Conv2D(c, f, k, padding=padding, seed=seed, dtype=np.float64)
    conv.b.value[...] = np.random.default_rng(seed + 1).standard_normal(f)
    return conv, MaxPool2D(2)


def separate(conv, pool, x, dout):
    """Outputs and gradients of the two layers run one after the other."""
    for p in conv.params():
        p.grad[...] = 0
    y = pool.forward(conv.forward(x, training=True), training=True)
    dx = conv.backward(pool.backward(dout))
    return y, dx, conv.W.grad.copy(), conv.b.grad.copy()


def fused(conv, pool, x, dout):
    for p in conv.params():
        p.grad[...] = 0
    layer = convpool.ConvPool(conv, pool)
    with backend.use("numpy"):
        y = layer.forward(x, training=True)
        dx = layer.backward(dout)
    return y, dx, conv.W.grad.copy(), conv.b.grad.copy()


SHAPES = [   # (N, C, H, W, F, k, padding): the last two have odd outputs (the pool drops a row)
    (3, 1, 28, 28, 4, 5, 2), (2, 1, 8, 10, 3, 3, 1), (2, 2, 6, 6, 2, 3, 0), (2, 1, 9, 8, 2, 3, 1),
    (1, 1, 7, 7, 2, 3, 1),
]


@pytest.mark.parametrize("n,c,h,w,f,k,padding", SHAPES)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 20])
def test_convpool_is_conv_then_pool(n, c, h, w, f, k, padding, chunk_bytes, monkeypatch):
    monkeypatch.setattr(convpool, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(40)
    conv, pool = pair(c, f, k, padding)
    x = rng.standard_normal((n, c, h, w))
    want_y = maxpool_naive(conv2d_naive(x, conv.W.value, conv.b.value, 1, padding), 2, 2)
    dout = rng.standard_normal(want_y.shape)
    got, want = fused(conv, pool, x, dout), separate(conv, pool, x, dout)
    np.testing.assert_allclose(got[0], want_y, rtol=1e-12, atol=1e-12)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_convpool_routes_ties_like_maxpool():
    # A zero image makes every conv output equal its bias: all four offsets of every
    # window tie, and the gradient must go to the first one, as MaxPool2D sends it.
    conv, pool = pair(1, 3, 3, 1)
    x = np.zeros((2, 1, 6, 6))
    x[1, 0, 2:4, 2:4] = 1.0
    dout = np.random.default_rng(41).standard_normal((2, 3, 3, 3))
    got, want = fused(conv, pool, x, dout), separate(conv, pool, x, dout)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    dy = maxpool_backward_naive(conv2d_naive(x, conv.W.value, conv.b.value, 1, 1), dout, 2, 2)
    assert np.count_nonzero(dy[0]) == dout[0].size   # one element per window, never more


def test_tie_test_catches_the_last_maximum_winning(monkeypatch):
    """Negative control: routing ties to the last maximum (>= instead of >) fails."""
    def last_max(offsets, out, raised):
        np.copyto(out, offsets[0])
        for o in range(1, 4):
            if raised is not None:
                np.greater_equal(offsets[o], out, out=raised[o - 1])
            np.maximum(out, offsets[o], out=out)
    monkeypatch.setattr(convpool, "_max_of_offsets", last_max)
    with pytest.raises(AssertionError):
        test_convpool_routes_ties_like_maxpool()


def test_convpool_gradients():
    conv, pool = pair(2, 2, 3, 1, seed=3)
    x = np.random.default_rng(42).standard_normal((2, 2, 6, 8))
    with backend.use("numpy"):
        errors = check_layer_grads(convpool.ConvPool(conv, pool), x, training=True)
    assert set(errors) >= {"x", "W", "b"}


def test_backward_params_matches_and_skips_dx():
    conv, pool = pair(1, 4, 5, 2)
    rng = np.random.default_rng(43)
    x, dout = rng.standard_normal((3, 1, 12, 12)), rng.standard_normal((3, 4, 6, 6))
    want = separate(conv, pool, x, dout)
    layer = convpool.ConvPool(conv, pool)
    for p in conv.params():
        p.grad[...] = 0
    with backend.use("numpy"):
        layer.forward(x, training=True)
        assert layer.backward_params(dout) is None
    np.testing.assert_allclose(conv.W.grad, want[2], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(conv.b.grad, want[3], rtol=1e-11, atol=1e-12)


def test_cpython_training_fuses_only_the_thin_first_pair():
    model = cnn(seed=0)
    with backend.use("numpy"):
        names = [type(l).__name__ for l in model._body()]
        assert model._body()[1] is model._body()[1]   # one ConvPool per pair, kept
    assert names[:6] == ["Reshape", "ConvPool", "ReLU", "Conv2D", "MaxPool2D", "ReLU"]
    for name in ("einsum", "sgemm"):   # the page's products: layers run one by one
        with backend.use(name) if backend.available(name) else backend.use("einsum"):
            assert "ConvPool" not in [type(l).__name__ for l in model._body()]
    assert not convpool.wanted("numpy", Conv2D(1, 4, 3), MaxPool2D(3))
    assert not convpool.wanted("numpy", Conv2D(16, 4, 3), MaxPool2D(2))


def test_inference_through_convpool_matches_layers():
    model = cnn(seed=5, dtype=np.float64)
    x = np.random.default_rng(44).uniform(0, 1, (5, 784))
    with backend.use("numpy"):
        fused_probs = model.forward(x)
    with backend.use("einsum"):
        layer_probs = model.forward(x)
    np.testing.assert_allclose(fused_probs, layer_probs, rtol=1e-10, atol=1e-13)


def test_backward_follows_the_layers_forward_ran_even_if_the_backend_changes():
    model = cnn(seed=6, dtype=np.float64)
    reference = cnn(seed=6, dtype=np.float64)
    rng = np.random.default_rng(45)
    x, d = rng.uniform(0, 1, (3, 784)), rng.standard_normal((3, 10))
    with backend.use("numpy"):
        model.logits(x, training=True)      # the first pair runs as a ConvPool
    with backend.use("einsum"):
        model.backward(d)                   # ... and must be undone as one
        reference.logits(x, training=True)
        reference.backward(d)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12)


def test_backward_after_an_inference_forward():
    conv, pool = pair(1, 3, 3, 1, seed=7)
    rng = np.random.default_rng(46)
    x, dout = rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((2, 3, 4, 4))
    want = separate(conv, pool, x, dout)
    for p in conv.params():
        p.grad[...] = 0
    layer = convpool.ConvPool(conv, pool)
    with backend.use("numpy"):
        layer.forward(x)                 # training=False: no winners kept
        dx = layer.backward(dout)
    np.testing.assert_allclose(dx, want[1], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(conv.W.grad, want[2], rtol=1e-11, atol=1e-12)
