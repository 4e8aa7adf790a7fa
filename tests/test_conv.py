"""Tests for digitnet.conv: naive-loop oracles for the forward passes, finite-difference
gradient checks (float64) with a negative control, spec round trips and dtype."""
from __future__ import annotations

import json

import numpy as np
import pytest

from digitnet import backend, conv
from digitnet.conv import Conv2D, Flatten, MaxPool2D, Reshape
from digitnet.layers import Layer, Linear, ReLU, build_layer

from gradcheck import check_layer_grads


# ---------------------------------------------------------------- naive oracles

def conv2d_naive(x, w, b, stride, padding):
    """Direct loop cross-correlation: x (N, C, H, W), w (F, C, k, k), b (F,)."""
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (wd + 2 * padding - k) // stride + 1
    out = np.zeros((n, f, h_out, w_out), dtype=np.float64)
    for i_n in range(n):
        for i_f in range(f):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[i_n, :, i * stride:i * stride + k, j * stride:j * stride + k]
                    out[i_n, i_f, i, j] = np.sum(window * w[i_f]) + b[i_f]
    return out


def maxpool_naive(x, size, stride):
    n, c, h, w = x.shape
    h_out, w_out = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def maxpool_backward_naive(x, dout, size, stride):
    """Per window, the whole upstream gradient goes to its first maximum (row-major)."""
    dx = np.zeros(x.shape)
    for n, c, i, j in np.ndindex(*dout.shape):
        window = x[n, c, i * stride:i * stride + size, j * stride:j * stride + size]
        di, dj = np.unravel_index(np.argmax(window), window.shape)   # argmax: first max
        dx[n, c, i * stride + di, j * stride + dj] += dout[n, c, i, j]
    return dx


def distinct_values(shape, seed=0):
    """Random array whose entries differ pairwise by >= 0.01, so max-pool's choice is
    stable under finite-difference steps (no kink is crossed)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.01 - 1.0).reshape(shape)


class Stack(Layer):
    """Minimal sequential container, only for checking layers together here."""

    def __init__(self, layers):
        self.layers = layers

    def params(self):
        return [p for layer in self.layers for p in layer.params()]

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


def rename_params(layers):
    for i, layer in enumerate(layers):
        for p in layer.params():
            p.name = f"{i}.{type(layer).__name__}.{p.name}"
    return layers


@pytest.fixture(params=backend.NAMES)
def product_path(request):
    """Run a test with each matrix-product backend (sgemm only where scipy imports)."""
    if not backend.available(request.param):
        pytest.skip(f"backend {request.param} is not available")
    with backend.use(request.param):
        yield request.param


# ---------------------------------------------------------------- forward vs oracle

CONV_CONFIGS = [
    # (N, C, H, W, F, k, stride, padding)
    (2, 1, 8, 8, 3, 3, 1, 0),
    (2, 3, 8, 8, 4, 3, 1, 1),
    (2, 2, 9, 7, 3, 3, 2, 1),     # non-square, stride 2
    (3, 2, 10, 11, 2, 5, 1, 2),   # 5x5 "same"
    (1, 3, 11, 9, 4, 5, 2, 2),
    (2, 2, 7, 6, 3, 5, 2, 0),
    (2, 4, 6, 5, 5, 3, 2, 2),     # padding larger than needed
    (1, 1, 28, 28, 16, 5, 1, 2),  # the CNN's first layer
]


@pytest.mark.parametrize("n,c,h,w,f,k,stride,padding", CONV_CONFIGS)
def test_conv_forward_matches_naive(n, c, h, w, f, k, stride, padding, product_path):
    rng = np.random.default_rng(1)
    layer = Conv2D(c, f, k, stride=stride, padding=padding, seed=2, dtype=np.float64)
    layer.b.value[...] = rng.standard_normal(f)
    x = rng.standard_normal((n, c, h, w))
    got = layer.forward(x)
    want = conv2d_naive(x, layer.W.value, layer.b.value, stride, padding)
    assert got.shape == want.shape == (n, f) + layer.output_shape(h, w)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_conv_accepts_non_contiguous_input():
    rng = np.random.default_rng(3)
    layer = Conv2D(3, 2, 3, padding=1, seed=0, dtype=np.float64)
    x = rng.standard_normal((6, 3, 8, 10))[::2, :, :, ::2]   # strided view
    np.testing.assert_allclose(layer.forward(x),
                               conv2d_naive(x, layer.W.value, layer.b.value, 1, 1), atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_window_view_matches_loop(stride):
    a = np.random.default_rng(13).standard_normal((2, 9, 8, 3))
    k = 3
    h_out, w_out = (9 - k) // stride + 1, (8 - k) // stride + 1
    view = conv.window_view(a, k, stride, h_out, w_out)
    want = np.zeros((2, h_out, w_out, k, k, 3))
    for n, i, j, di, dj in np.ndindex(2, h_out, w_out, k, k):
        want[n, i, j, di, dj] = a[n, i * stride + di, j * stride + dj]
    np.testing.assert_array_equal(view, want)
    assert not view.flags.writeable and np.shares_memory(view, a)


@pytest.mark.parametrize("n,c,h,w,f,k,stride,padding", [
    (5, 2, 6, 5, 3, 3, 1, 1), (5, 2, 7, 6, 2, 3, 2, 1), (3, 1, 8, 7, 2, 5, 2, 3)])
def test_conv_in_chunks_matches_naive_and_gradients(n, c, h, w, f, k, stride, padding,
                                                    monkeypatch, product_path):
    # Chunks of two examples (the last one shorter) instead of the whole small batch.
    layer = Conv2D(c, f, k, stride=stride, padding=padding, seed=3, dtype=np.float64)
    h_out, w_out = layer.output_shape(h, w)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 2 * h_out * w_out * k * k * c * 8)
    rng = np.random.default_rng(14)
    layer.b.value[...] = rng.standard_normal(f)
    x = rng.standard_normal((n, c, h, w))
    np.testing.assert_allclose(layer.forward(x), conv2d_naive(x, layer.W.value, layer.b.value,
                                                              stride, padding), atol=1e-12)
    assert conv._chunk_size(conv.window_view(layer._xp, k, stride, h_out, w_out)) == 2
    check_layer_grads(layer, x)


def test_conv_backward_params_skips_only_dx():
    rng = np.random.default_rng(15)
    a, b = Conv2D(2, 3, 3, padding=1, seed=4, dtype=np.float64), Conv2D(2, 3, 3, padding=1, seed=4,
                                                                        dtype=np.float64)
    x, dout = rng.standard_normal((3, 2, 6, 6)), rng.standard_normal((3, 3, 6, 6))
    a.forward(x), b.forward(x)
    assert a.backward(dout).shape == x.shape and b.backward_params(dout) is None
    for p, q in zip(a.params(), b.params()):
        np.testing.assert_array_equal(p.grad, q.grad)
        assert np.abs(q.grad).sum() > 0


def test_conv_he_init_and_seed():
    a, b = Conv2D(16, 32, 5, seed=7), Conv2D(16, 32, 5, seed=7)
    np.testing.assert_array_equal(a.W.value, b.W.value)
    assert not np.array_equal(a.W.value, Conv2D(16, 32, 5, seed=8).W.value)
    assert a.W.value.shape == (32, 16, 5, 5) and a.b.value.shape == (32,)
    assert abs(a.W.value.std() - np.sqrt(2 / 400)) < 0.01
    assert not a.b.value.any()


def test_conv_rejects_bad_input():
    layer = Conv2D(2, 3, 3)
    with pytest.raises(ValueError):
        layer.forward(np.zeros((1, 3, 8, 8), np.float32))   # wrong channel count
    with pytest.raises(ValueError):
        layer.forward(np.zeros((1, 2, 2, 2), np.float32))   # smaller than the kernel
    with pytest.raises(ValueError):
        Conv2D(2, 3, 0)


POOL_CONFIGS = [
    # (N, C, H, W, size, stride)
    (2, 3, 8, 8, 2, None),
    (2, 2, 7, 9, 2, None),   # odd sizes: trailing row/column dropped
    (1, 2, 9, 8, 3, 2),      # overlapping windows
    (2, 1, 8, 7, 2, 3),      # gaps between windows
    (2, 2, 9, 9, 3, None),
]


@pytest.mark.parametrize("n,c,h,w,size,stride", POOL_CONFIGS)
def test_maxpool_forward_matches_naive(n, c, h, w, size, stride):
    x = np.random.default_rng(4).standard_normal((n, c, h, w))
    got = MaxPool2D(size, stride).forward(x)
    np.testing.assert_array_equal(got, maxpool_naive(x, size, size if stride is None else stride))


@pytest.mark.parametrize("n,c,h,w,size,stride", POOL_CONFIGS)
def test_maxpool_backward_matches_naive_with_ties(n, c, h, w, size, stride):
    # Few distinct values, so most windows tie; x is channel-last in memory (as a Conv2D
    # output is) while the upstream gradient is C-ordered (as Flatten's backward gives).
    rng = np.random.default_rng(16)
    x = rng.integers(0, 3, (n, h, w, c)).astype(np.float64).transpose(0, 3, 1, 2)
    stride = size if stride is None else stride
    pool = MaxPool2D(size, stride)
    out = pool.forward(x)
    dout = rng.standard_normal(out.shape)
    # (overlapping windows add in another order than the loop: rounding only)
    np.testing.assert_allclose(pool.backward(dout), maxpool_backward_naive(x, dout, size, stride),
                               rtol=1e-14, atol=1e-15)


def test_maxpool_ties_route_gradient_to_one_element():
    pool = MaxPool2D(2)
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 3.0], [3.0, 3.0]]   # a three-way tie in the last window
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    assert dx.sum() == 4                            # one unit per window, never more
    assert dx[0, 0, 0, 0] == 1 and dx[0, 0, 0, 2] == 1 and dx[0, 0, 2, 0] == 1  # all-zero windows
    assert dx[0, 0, 2, 3] == 1 and dx[0, 0, 3, 2] == 0 and dx[0, 0, 3, 3] == 0


def test_maxpool_overlapping_gradient_accumulates():
    # With overlapping windows one element can be the max of several windows.
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    pool = MaxPool2D(2, stride=1)
    np.testing.assert_array_equal(pool.forward(x), np.full((1, 1, 2, 2), 5.0))
    dx = pool.backward(np.arange(1.0, 5.0).reshape(1, 1, 2, 2))
    assert dx[0, 0, 1, 1] == 10 and dx.sum() == 10


def test_flatten_and_reshape_shapes():
    x = np.arange(2 * 784, dtype=np.float32).reshape(2, 784)
    img = Reshape((1, 28, 28)).forward(x)
    assert img.shape == (2, 1, 28, 28) and img[1, 0, 27, 27] == x[1, 783]
    flat = Flatten()
    assert flat.forward(img).shape == (2, 784)
    assert flat.backward(np.ones((2, 784))).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError):
        Reshape((1, 27, 27)).forward(x)


# ---------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("n,c,h,w,f,k,stride,padding", [
    (2, 2, 6, 5, 3, 3, 1, 0),
    (2, 2, 6, 5, 3, 3, 1, 1),
    (2, 3, 7, 6, 2, 3, 2, 1),
    (1, 2, 7, 7, 2, 5, 1, 2),
    (2, 1, 8, 7, 2, 5, 2, 2),
    (1, 2, 5, 6, 2, 3, 2, 2),
])
def test_conv_gradients(n, c, h, w, f, k, stride, padding, product_path):
    rng = np.random.default_rng(5)
    layer = Conv2D(c, f, k, stride=stride, padding=padding, seed=6, dtype=np.float64)
    layer.b.value[...] = rng.standard_normal(f)
    errors = check_layer_grads(layer, rng.standard_normal((n, c, h, w)))
    assert set(errors) >= {"x", "W", "b"}


@pytest.mark.parametrize("n,c,h,w,size,stride", POOL_CONFIGS)
def test_maxpool_gradients(n, c, h, w, size, stride):
    check_layer_grads(MaxPool2D(size, stride), distinct_values((n, c, h, w), seed=h * w))


def test_flatten_and_reshape_gradients():
    rng = np.random.default_rng(8)
    check_layer_grads(Flatten(), rng.standard_normal((3, 2, 4, 5)))
    check_layer_grads(Reshape((2, 3, 4)), rng.standard_normal((3, 24)))


def test_small_cnn_gradients_end_to_end(product_path):
    # Exercises the layers on each other's (possibly non-contiguous) outputs.
    layers = rename_params([
        Reshape((1, 10, 10)),
        Conv2D(1, 3, 3, padding=1, seed=1, dtype=np.float64), ReLU(), MaxPool2D(2),
        Conv2D(3, 4, 3, padding=1, seed=2, dtype=np.float64), ReLU(), MaxPool2D(2),
        Flatten(), Linear(4 * 2 * 2, 5, seed=3, dtype=np.float64),
    ])
    rng = np.random.default_rng(9)
    for layer in layers:
        for p in layer.params():
            if p.name.endswith(".b"):
                p.value[...] = 0.1 * rng.standard_normal(p.value.shape)
    check_layer_grads(Stack(layers), rng.uniform(0, 1, (2, 100)))


class ConvForgetsLastOffset(Conv2D):
    """Deliberately wrong: col2im drops the contribution of the last kernel offset to dx."""

    def backward(self, dout):
        dx = super().backward(dout)
        k, p = self.kernel_size, self.padding
        w_last = self.W.value[:, :, k - 1, k - 1]                      # (F, C)
        # Subtract that offset's term again: dx[n, c, i + k-1 - p, j + k-1 - p] -= sum_f ...
        term = np.einsum("fc,nfij->ncij", w_last, dout)
        dx = np.array(dx)
        h_out, w_out = dout.shape[2:]
        for i in range(h_out):
            for j in range(w_out):
                r, s = i * self.stride + k - 1 - p, j * self.stride + k - 1 - p
                if 0 <= r < dx.shape[2] and 0 <= s < dx.shape[3]:
                    dx[:, :, r, s] -= term[:, :, i, j]
        return dx


class ConvWithoutBiasGrad(Conv2D):
    """Deliberately wrong: never accumulates the bias gradient."""

    def backward(self, dout):
        saved = self.b.grad.copy()
        dx = super().backward(dout)
        self.b.grad[...] = saved
        return dx


class ConvOverwritesGrads(Conv2D):
    """Deliberately wrong: assigns Param.grad instead of adding to it."""

    def backward(self, dout):
        for p in self.params():
            p.grad[...] = 0
        return super().backward(dout)


@pytest.mark.parametrize("bad_cls,culprit", [
    (ConvForgetsLastOffset, "'x'"),
    (ConvWithoutBiasGrad, "'b'"),
    (ConvOverwritesGrads, "(accumulated)"),
])
def test_gradient_check_catches_wrong_backward(bad_cls, culprit):
    rng = np.random.default_rng(10)
    layer = bad_cls(2, 3, 3, stride=1, padding=1, seed=0, dtype=np.float64)
    with pytest.raises(AssertionError, match="gradient check failed") as info:
        check_layer_grads(layer, rng.standard_normal((2, 2, 5, 5)))
    assert culprit in str(info.value).split("; all:")[0]


# ---------------------------------------------------------------- specs and dtypes

@pytest.mark.parametrize("layer", [
    Conv2D(3, 8, 5, stride=2, padding=2),
    MaxPool2D(3, stride=2),
    MaxPool2D(),
    Flatten(),
    Reshape((1, 28, 28)),
])
def test_spec_round_trip(layer):
    spec = json.loads(json.dumps(layer.spec()))    # specs must survive JSON
    rebuilt = build_layer(spec)
    assert type(rebuilt) is type(layer)
    assert rebuilt.spec() == layer.spec()
    for p, q in zip(layer.params(), rebuilt.params()):
        assert p.value.shape == q.value.shape and q.value.dtype == np.float32
        q.value[...] = p.value
    shape = {Conv2D: (2, 3, 9, 9), Reshape: (2, 784)}.get(type(layer), (2, 3, 8, 8))
    x = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))


def test_build_layer_float64_and_bad_spec():
    layer = build_layer({"type": "Conv2D", "in_channels": 1, "out_channels": 2,
                         "kernel_size": 3}, dtype=np.float64)
    assert layer.W.value.dtype == np.float64
    with pytest.raises(ValueError):
        build_layer({"type": "Conv2D", "in_channels": 1, "kernel_size": 3})
    with pytest.raises(ValueError):
        build_layer({"type": "MaxPool2D", "size": 0})


def test_float32_stays_float32(product_path):
    layers = [Reshape((1, 28, 28)), Conv2D(1, 4, 5, padding=2, seed=0), ReLU(), MaxPool2D(2),
              Conv2D(4, 6, 5, padding=2, seed=1), ReLU(), MaxPool2D(2), Flatten(),
              Linear(6 * 7 * 7, 10, seed=2)]
    x = np.random.default_rng(12).uniform(0, 1, (3, 784)).astype(np.float32)
    for layer in layers:
        x = layer.forward(x, training=True)
        assert x.dtype == np.float32, type(layer).__name__
    assert x.shape == (3, 10)
    d = np.ones_like(x)
    for layer in reversed(layers):
        d = layer.backward(d)
        assert d.dtype == np.float32, type(layer).__name__
        for p in layer.params():
            assert p.value.dtype == p.grad.dtype == np.float32
    assert d.shape == (3, 784)
