"""Gradient checks for the dense layers, activations and the fused loss (float64)."""
import numpy as np
import pytest

from digitnet.layers import LeakyReLU, Linear, ReLU, Softmax, build_layer, softmax
from digitnet.losses import log_softmax, softmax_cross_entropy
from gradcheck import check_layer_grads, numeric_grad, rel_error

rng = np.random.default_rng(0)


def away_from_kink(shape):
    """Inputs whose entries are not within 0.1 of 0 (finite differences straddle the kink)."""
    x = rng.standard_normal(shape)
    return x + 0.2 * np.sign(x)


def test_linear_gradients():
    check_layer_grads(Linear(7, 5, seed=1, dtype=np.float64), rng.standard_normal((4, 7)))


def test_linear_he_init_gradients():
    check_layer_grads(Linear(6, 3, init="he", seed=2, dtype=np.float64), rng.standard_normal((3, 6)))


@pytest.mark.parametrize("layer", [LeakyReLU(0.2), LeakyReLU(0.01), LeakyReLU(0.0), LeakyReLU(1.5),
                                   LeakyReLU(-0.3), ReLU()])
def test_activation_gradients(layer):
    check_layer_grads(layer, away_from_kink((4, 9)))


@pytest.mark.parametrize("alpha", [0.2, 0.0, 1.0, 1.5, -0.3])
def test_leaky_relu_is_x_or_alpha_x_by_the_sign_of_x(alpha):
    """Forward and backward against the definition, exactly, zeros included (any alpha: the
    fast path for 0 <= alpha <= 1 and the general one)."""
    x = np.array([[-2.0, -0.5, 0.0, 0.25, 3.0], [1e-30, -1e-30, 7.0, -7.0, 0.0]], np.float32)
    dout = np.arange(1, 11, dtype=np.float32).reshape(2, 5) * np.float32(-0.7)
    layer = LeakyReLU(alpha)
    a = np.float32(alpha)
    assert np.array_equal(layer.forward(x, training=True), np.where(x > 0, x, a * x))
    assert np.array_equal(layer.backward(dout), np.where(x > 0, dout, a * dout))


def test_relu_is_x_or_zero_by_the_sign_of_x_and_keeps_memory_order():
    """Exactly the definition, zeros and NaN included; a channel-last (transposed) input
    gives a channel-last output, as the conv layers hand it on."""
    x = np.array([[-2.0, -0.5, 0.0, 0.25, 3.0], [1e-30, -1e-30, 7.0, np.nan, -0.0]], np.float32)
    dout = np.arange(1, 11, dtype=np.float32).reshape(2, 5) * np.float32(-0.7)
    layer = ReLU()
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.where(x > 0, x, np.where(np.isnan(x), x, 0)))
    np.testing.assert_array_equal(layer.backward(dout), np.where(x > 0, dout, 0))
    nhwc = rng.standard_normal((2, 3, 4, 5)).astype(np.float32).transpose(0, 3, 1, 2)
    out = layer.forward(nhwc)
    assert out.transpose(0, 2, 3, 1).flags.c_contiguous
    assert layer.backward(np.ones_like(nhwc)).dtype == np.float32


def test_softmax_layer_gradient():
    check_layer_grads(Softmax(), rng.standard_normal((5, 10)))


def test_gradcheck_catches_a_wrong_backward():
    """Negative control: a Linear whose bias gradient forgets to sum over the batch."""
    class BrokenLinear(Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.b.grad -= dout.sum(axis=0) - dout[0]
            return dx

    with pytest.raises(AssertionError, match="gradient check failed"):
        check_layer_grads(BrokenLinear(4, 3, seed=0, dtype=np.float64), rng.standard_normal((5, 4)))


def test_gradcheck_catches_a_wrong_activation_slope():
    class BrokenLeaky(LeakyReLU):
        def backward(self, dout):
            return np.where(self._x > 0, dout, 0.0)  # forgets alpha on the negative side

    with pytest.raises(AssertionError):
        check_layer_grads(BrokenLeaky(0.2), away_from_kink((3, 6)))


def test_linear_init_matches_the_tutorial():
    w = Linear(784, 256, seed=0).W.value
    assert w.dtype == np.float32
    bound = 1 / np.sqrt(784)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound  # uniform over the whole range, not narrower
    assert abs(w.mean()) < 0.01 * bound
    assert not Linear(784, 256, seed=0).b.value.any()
    assert np.isclose(Linear(784, 256, init="he", seed=0).W.value.std(), np.sqrt(2 / 784), rtol=0.02)


def test_layers_keep_float32():
    x = rng.standard_normal((3, 8)).astype(np.float32)
    for layer in [Linear(8, 4, seed=0), LeakyReLU(), ReLU(), Softmax()]:
        out = layer.forward(x)
        assert out.dtype == np.float32, type(layer).__name__
        assert layer.backward(np.ones_like(out)).dtype == np.float32


def test_specs_rebuild_layers():
    for layer in [Linear(5, 3, init="he"), LeakyReLU(0.3), ReLU(), Softmax()]:
        rebuilt = build_layer(layer.spec())
        assert type(rebuilt) is type(layer) and rebuilt.spec() == layer.spec()
    with pytest.raises(ValueError, match="unknown layer type"):
        build_layer({"type": "Teleporter"})
    with pytest.raises(ValueError):
        build_layer({"type": "Linear", "n_in": 3})


# ---------------------------------------------------------------- the fused loss

def reference_loss(logits, targets):
    """Textbook cross-entropy on an explicitly computed softmax (mean over the batch)."""
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return -(targets * np.log(p)).sum(axis=1).mean()


def test_loss_value_matches_the_textbook_formula():
    logits = rng.standard_normal((6, 10))
    targets = np.eye(10)[rng.integers(0, 10, 6)]
    loss, _ = softmax_cross_entropy(logits, targets)
    assert np.isclose(loss, reference_loss(logits, targets), rtol=1e-12)


@pytest.mark.parametrize("reduction,scale", [("mean", 1 / 6), ("sum", 1.0)])
def test_loss_gradient_is_probs_minus_onehot(reduction, scale):
    logits = rng.standard_normal((6, 10))
    targets = np.eye(10)[rng.integers(0, 10, 6)]
    _, grad = softmax_cross_entropy(logits.copy(), targets, reduction)
    assert np.allclose(grad, (softmax(logits) - targets) * scale)
    numeric = numeric_grad(lambda z: reference_loss(z, targets) * 6 * scale, logits)
    assert rel_error(grad, numeric) < 1e-7


def test_loss_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-5e4, 5e4, 0.0]])
    targets = np.eye(3)[[0, 1]]
    loss, grad = softmax_cross_entropy(logits, targets)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx(0.0, abs=1e-12)
    wrong_loss, _ = softmax_cross_entropy(logits, np.eye(3)[[2, 0]])
    assert wrong_loss == pytest.approx((2000 + 1e5) / 2)  # exact, no overflow to inf
    assert np.allclose(np.exp(log_softmax(logits)).sum(axis=1), 1)


def test_loss_rejects_unknown_reduction():
    with pytest.raises(ValueError):
        softmax_cross_entropy(np.zeros((1, 2)), np.eye(2)[:1], "average")


def test_gradients_are_zeroed_then_written_or_added():
    """zero_grad leaves a gradient that reads as zeros; a Linear's backward writes its
    weight gradient into a zeroed one and adds to one already holding a gradient."""
    from digitnet.layers import Param
    p = Param(np.ones((2, 3)), "W")
    p.grad[...] = 5.0
    p.zero_grad()
    assert np.array_equal(p.grad, np.zeros((2, 3)))
    layer = Linear(4, 3, seed=0, dtype=np.float64)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    layer.W.grad[...] = 7.0
    layer.b.grad[...] = 7.0
    for p in layer.params():
        p.zero_grad()
    layer.forward(x, training=True)
    layer.backward(dout)
    assert np.allclose(layer.W.grad, x.T @ dout, rtol=0, atol=1e-12)
    assert np.allclose(layer.b.grad, dout.sum(axis=0), rtol=0, atol=1e-12)
    layer.backward(dout)  # no zero_grad in between: the second gradient adds
    assert np.allclose(layer.W.grad, 2 * x.T @ dout, rtol=0, atol=1e-12)
    assert np.allclose(layer.b.grad, 2 * dout.sum(axis=0), rtol=0, atol=1e-12)


def with_blank_inputs(n: int, n_in: int, blank: list[int]) -> np.ndarray:
    """(n, n_in) random rows whose columns ``blank`` are zero in every row (a digit
    image's empty border)."""
    x = rng.standard_normal((n, n_in))
    x[:, blank] = 0.0
    return x


def blank_input_mismatches(monkeypatch) -> list[str]:
    """Train a Linear on inputs with blank columns (so it leaves them out of its products)
    and its twin with that shortcut switched off; the quantities that differ."""
    from digitnet import layers
    x, dout = with_blank_inputs(6, 12, [0, 1, 5, 11]), rng.standard_normal((6, 5))
    results = []
    for skip in (True, False):
        with monkeypatch.context() as m:
            if not skip:
                m.setattr(layers, "MIN_BLANK_SHARE", 2.0)  # no share of blanks is enough
            layer = Linear(12, 5, seed=3, dtype=np.float64)
            for p in layer.params():
                p.grad[...] = 7.0  # a stale gradient that zero_grad must clear
                p.zero_grad()
            out = layer.forward(x, training=True)
            assert (layer._live is not None) == skip  # the shortcut is (not) taken
            dx = layer.backward(dout)
            once = layer.W.grad.copy()
            layer.backward(dout)  # no zero_grad: adds
            results.append({"out": out, "dx": dx, "dW": once, "dW twice": layer.W.grad,
                            "db": layer.b.grad})
    skipped, full = results
    return [k for k in full if not np.allclose(skipped[k], full[k], rtol=1e-12, atol=1e-12)]


def test_linear_skips_blank_inputs_with_the_same_results(monkeypatch):
    assert blank_input_mismatches(monkeypatch) == []


def test_blank_input_check_catches_a_stale_weight_gradient(monkeypatch):
    """Negative control: rows of dW left as they were (not zeroed) are caught."""
    from digitnet.layers import Param

    def rows_only(self, rows, a, b):
        self._zero = False
        self._grad[rows] = a @ b

    monkeypatch.setattr(Param, "add_rows_product", rows_only)
    assert "dW" in blank_input_mismatches(monkeypatch)


def test_linear_gradients_with_blank_inputs_while_training():
    check_layer_grads(Linear(12, 5, seed=4, dtype=np.float64),
                      with_blank_inputs(5, 12, [2, 3, 4, 9]), training=True)
