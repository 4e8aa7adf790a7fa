"""Tests for digitnet.fftconv, the FFT path Conv2D takes with the sgemm backend: a naive
loop as the oracle, float64 gradient checks through the path with a negative control,
and agreement with the im2col path in float32 at the CNN's shapes."""
from __future__ import annotations

import numpy as np
import pytest

from digitnet import backend, fftconv, model
from digitnet.conv import Conv2D

from gradcheck import check_layer_grads
from test_conv import conv2d_naive

pytestmark = pytest.mark.skipif(not backend.available("sgemm"),
                                reason="the FFT path needs scipy's BLAS")


@pytest.fixture
def fft_everywhere(monkeypatch):
    """Take the FFT path for any stride-1 layer and batch size, under sgemm."""
    monkeypatch.setattr(fftconv, "MIN_IN_CHANNELS", 1)
    monkeypatch.setattr(fftconv, "MIN_BATCH", 1)
    with backend.use("sgemm"):
        yield


STRIDE1_CONFIGS = [
    # (N, C, H, W, F, k, padding)
    (2, 1, 8, 8, 3, 3, 0),
    (2, 3, 8, 8, 4, 3, 1),
    (3, 2, 10, 11, 2, 5, 2),      # non-square, 5x5 "same"
    (2, 4, 6, 5, 5, 3, 2),        # padding larger than needed
    (1, 2, 7, 6, 3, 5, 0),
    (2, 2, 5, 6, 2, 3, 3),        # padding beyond k - 1: outputs larger than the input
    (1, 1, 4, 3, 2, 5, 1),        # kernel larger than the input
]


@pytest.mark.parametrize("n,c,h,w,f,k,padding", STRIDE1_CONFIGS)
def test_fft_forward_matches_naive(n, c, h, w, f, k, padding, fft_everywhere):
    rng = np.random.default_rng(1)
    layer = Conv2D(c, f, k, padding=padding, seed=2, dtype=np.float64)
    layer.b.value[...] = rng.standard_normal(f)
    x = rng.standard_normal((n, c, h, w))
    got = layer.forward(x)
    assert layer._fft is not None, "the FFT path was not taken"
    want = conv2d_naive(x, layer.W.value, layer.b.value, 1, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n,c,h,w,f,k,padding", [
    (2, 2, 6, 5, 3, 3, 1),
    (1, 2, 7, 6, 2, 5, 2),        # non-square, 5x5 "same"
    (2, 1, 5, 5, 2, 3, 0),
    (1, 2, 4, 5, 2, 3, 3),        # padding beyond k - 1
])
def test_fft_gradients(n, c, h, w, f, k, padding, fft_everywhere):
    rng = np.random.default_rng(5)
    layer = Conv2D(c, f, k, padding=padding, seed=6, dtype=np.float64)
    layer.b.value[...] = rng.standard_normal(f)
    errors = check_layer_grads(layer, rng.standard_normal((n, c, h, w)))
    assert layer._fft is not None
    assert set(errors) >= {"x", "W", "b"}


def test_fft_backward_params_skips_only_dx(fft_everywhere):
    rng = np.random.default_rng(7)
    x, dout = rng.standard_normal((3, 2, 6, 7)), rng.standard_normal((3, 4, 6, 7))
    full, params_only = (Conv2D(2, 4, 3, padding=1, seed=1, dtype=np.float64) for _ in range(2))
    full.forward(x, training=True)
    full.backward(dout)
    params_only.forward(x, training=True)
    assert params_only.backward_params(dout) is None
    for a, b in zip(full.params(), params_only.params()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12)


class FFTConvWithoutConjugate(Conv2D):
    """Deliberately wrong: the dW products drop the conjugate (BLAS 'C' read as 'T')."""

    def forward(self, x, training=False):
        y = super().forward(x, training)
        gemm = self._fft.gemm

        def no_conjugate(*args, trans_a=0, trans_b=0, **kw):
            return gemm(*args, trans_a=min(trans_a, 1), trans_b=min(trans_b, 1), **kw)
        self._fft.gemm = no_conjugate
        return y


def test_gradient_check_catches_wrong_fft_backward(fft_everywhere):
    rng = np.random.default_rng(10)
    layer = FFTConvWithoutConjugate(2, 3, 3, padding=1, seed=0, dtype=np.float64)
    with pytest.raises(AssertionError, match="gradient check failed") as info:
        check_layer_grads(layer, rng.standard_normal((2, 2, 5, 5)))
    assert "'W'" in str(info.value).split("; all:")[0]


def test_transform_size_is_the_smallest_that_does_not_wrap():
    assert fftconv.transform_size(14, 14, 2, 5) == (16, 16)    # the CNN's second layer
    assert fftconv.transform_size(6, 5, 0, 3) == (6, 5)
    assert fftconv.transform_size(5, 6, 3, 3) == (9, 10)       # outputs H + 2p - k + 1
    assert fftconv.transform_size(4, 3, 1, 5) == (5, 5)        # at least the kernel


def test_path_choice():
    assert fftconv.wanted("sgemm", 64, 16, 1)
    assert not fftconv.wanted("numpy", 64, 16, 1)
    assert not fftconv.wanted("einsum", 64, 16, 1)      # no scipy there: im2col
    assert not fftconv.wanted("sgemm", 64, 16, 2)       # stride 2
    assert not fftconv.wanted("sgemm", 64, 1, 1)        # the CNN's 1-channel first layer
    assert not fftconv.wanted("sgemm", 1, 16, 1)        # a single drawing


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-3)])
def test_cnn_same_training_step_both_paths(dtype, rtol):
    """The shipped CNN's logits and every gradient agree between im2col (numpy) and the
    FFT path (sgemm) on one batch (exactly up to rounding in float64), the dtype is kept,
    and the FFT path really ran for the second conv layer only."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (fftconv.MIN_BATCH, 784)).astype(dtype)
    dlogits = rng.standard_normal((len(x), 10)).astype(dtype)
    results = []
    for name in ("numpy", "sgemm"):
        net = model.cnn(seed=4, dtype=dtype)
        with backend.use(name):
            net.zero_grad()
            logits = net.logits(x, training=True)
            net.backward(dlogits, input_grad=False)
        assert logits.dtype == dtype
        assert (net.layers[4]._fft is not None) == (name == "sgemm")
        assert net.layers[1]._fft is None
        results.append((logits, [p.grad.copy() for p in net.parameters()]))
    (l0, g0), (l1, g1) = results
    np.testing.assert_allclose(l1, l0, rtol=rtol, atol=rtol * np.abs(l0).max())
    for a, b in zip(g0, g1):
        assert b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
