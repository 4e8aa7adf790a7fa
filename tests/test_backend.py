"""The compute backends (digitnet.backend): each product against float64 numpy, the switch,
and that the dense and convolution layers go through it."""
import sys

import numpy as np
import pytest

from digitnet import backend, cnn, conv, mlp


def operand_pairs():
    rng = np.random.default_rng(0)
    a = rng.random((37, 53), dtype=np.float32)
    b = rng.random((53, 29), dtype=np.float32)
    return [(a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)),
            (np.ascontiguousarray(a.T).T, np.ascontiguousarray(b.T).T),  # transposed views
            (a[:, :20], b[:20]),                                          # non-contiguous
            (a[:1], b)]                                                   # one row (predict)


@pytest.mark.parametrize("name", backend.NAMES)
def test_every_backend_matches_numpy_in_float32(name):
    if not backend.available(name):
        pytest.skip(f"{name} is not available here")
    mm = backend.product(name)
    for x, y in operand_pairs():
        got = mm(x, y)
        want = x.astype(np.float64) @ y.astype(np.float64)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # float64 operands (gradient checks) stay float64.
    a, b = operand_pairs()[0]
    assert mm(a.astype(np.float64), b.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("name", backend.NAMES)
def test_matmul_writes_into_out_with_every_backend(name):
    if not backend.available(name):
        pytest.skip(f"{name} is not available here")
    with backend.use(name):
        for x, y in operand_pairs():
            out = np.full((x.shape[0], y.shape[1]), np.nan, np.float32)
            assert backend.matmul(x, y, out=out) is out
            np.testing.assert_allclose(out, x.astype(np.float64) @ y.astype(np.float64),
                                       rtol=1e-5, atol=1e-5)


def test_sgemm_results_are_c_contiguous_and_fall_back_for_float64():
    pytest.importorskip("scipy")
    mm = backend.blas_matmul()
    for x, y in operand_pairs():
        assert mm(x, y).flags.c_contiguous
    a, b = operand_pairs()[0]
    np.testing.assert_array_equal(mm(a.astype(np.float64), b.astype(np.float64)),
                                  a.astype(np.float64) @ b.astype(np.float64))


def test_use_switches_for_a_block_and_restores_even_after_an_error():
    before = backend.current()
    assert before == backend.DEFAULT
    with backend.use("einsum"):
        assert backend.current() == "einsum"
        with backend.use("numpy"):
            assert backend.current() == "numpy"
        assert backend.current() == "einsum"
    with pytest.raises(KeyError):
        with backend.use("einsum"):
            raise KeyError("boom")
    assert backend.current() == before


def test_unknown_or_unavailable_backends_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend"):
        with backend.use("cuda"):
            pass
    monkeypatch.setitem(sys.modules, "scipy.linalg.blas", None)  # scipy's import fails
    assert backend.blas_matmul() is None and not backend.available("sgemm")
    with pytest.raises(ValueError, match="scipy"):
        with backend.use("sgemm"):
            pass
    assert backend.current() == backend.DEFAULT


@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
def test_layers_compute_every_product_with_the_current_backend(monkeypatch, make):
    """Dense and convolution layers (forward and backward) call backend.matmul, and the
    result does not depend on which product computed it."""
    calls = []

    def counting(a, b):
        calls.append((a.shape, b.shape))
        return np.matmul(a, b)

    original = backend.product
    # One chunk per batch, so each product is one call (chunking has its own oracle tests).
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1 << 30)
    monkeypatch.setattr(backend, "product",
                        lambda name: counting if name == "counting" else original(name))
    rng = np.random.default_rng(0)
    x = rng.random((3, 784)).astype(np.float32)
    d = rng.standard_normal((3, 10)).astype(np.float32)
    outs = []
    for name in ("numpy", "einsum", "counting"):
        m = make(seed=2)
        with backend.use(name):
            m.zero_grad()
            logits = m.logits(x, training=True)
            m.backward(d)
        outs.append((logits, [p.grad.copy() for p in m.parameters()]))
    n_layers = sum(1 for layer in m.layers if layer.params())
    assert len(calls) == 3 * n_layers   # forward, dW and dx of every layer with weights
    for logits, grads in outs[1:]:
        np.testing.assert_allclose(logits, outs[0][0], rtol=1e-4, atol=1e-5)
        for a, b in zip(grads, outs[0][1]):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
