"""Tests for the CNN's faster paths: `rowconv` (stride-1 Conv2D by row windows, CPython)
and MaxPool2D's two-stage tiled pooling, each against a naive loop at tight tolerance,
through gradient checks, and with negative controls showing the checks can fail."""
from __future__ import annotations

import numpy as np
import pytest

from digitnet import backend, rowconv
from digitnet.conv import Conv2D
from digitnet.layers import ReLU
from digitnet.model import Sequential, cnn
from digitnet.pool import MaxPool2D

from gradcheck import check_layer_grads
from test_conv import conv2d_naive, distinct_values, maxpool_backward_naive, maxpool_naive


@pytest.fixture
def rows_everywhere(monkeypatch):
    """Send every stride-1 Conv2D through `rowconv` (numpy backend, any row width), with
    chunks of about two examples so that chunk boundaries and a short last chunk occur."""
    monkeypatch.setattr(rowconv, "MIN_ROW_WIDTH", 1)
    monkeypatch.setattr(rowconv, "CHUNK_BYTES", 1)
    calls = {"correlate": 0, "kernel_grad": 0}
    for name in calls:
        original = getattr(rowconv, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(rowconv, name, counted)
    with backend.use("numpy"):
        yield calls


def correlate_naive(a, w, h_out, w_out):
    """out[n, i, j, f] = sum a[n, i + di, j + dj, c] * w[f, c, di, dj] (channel-last a)."""
    k = w.shape[2]
    out = np.zeros((a.shape[0], h_out, w_out, w.shape[0]))
    for i in range(h_out):
        for j in range(w_out):
            out[:, i, j] = np.einsum("ndec,fcde->nf", a[:, i:i + k, j:j + k], w)
    return out


def zero_pad(a, pad, rows, cols):
    """a (N, H, W, C) with ``pad`` zero rows/columns before (negative: cropped), cut or
    zero-extended to (N, rows, cols, C)."""
    a = a[:, max(-pad, 0):, max(-pad, 0):]
    p = max(pad, 0)
    out = np.zeros((a.shape[0], rows, cols, a.shape[3]))
    h, w = min(rows - p, a.shape[1]), min(cols - p, a.shape[2])
    out[:, p:p + h, p:p + w] = a[:, :h, :w]
    return out


@pytest.mark.parametrize("n,h,w,c,f,k,pad", [(3, 7, 9, 4, 5, 3, 0), (1, 6, 6, 2, 3, 5, 2),
                                            (5, 4, 5, 3, 2, 1, 0), (2, 6, 7, 2, 3, 3, -1),
                                            (2, 5, 6, 3, 2, 3, 3)])
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 20])
def test_correlate_and_kernel_grad_match_loops(n, h, w, c, f, k, pad, chunk_bytes, monkeypatch):
    monkeypatch.setattr(rowconv, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(20)
    a = rng.standard_normal((n, h, w, c))[:, :, ::-1]   # strided input: any strides work
    kernels = rng.standard_normal((f, c, k, k))
    bias = rng.standard_normal(f)
    h_out, w_out = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    ap = zero_pad(a, pad, h_out + k - 1, w_out + k - 1)
    got = rowconv.correlate(a, rowconv.row_weights(kernels, a.dtype), pad, h_out, w_out, bias)
    np.testing.assert_allclose(got, correlate_naive(ap, kernels, h_out, w_out) + bias,
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal((n, h_out, w_out, f))
    want = np.zeros((f, c, k, k))
    for i in range(h_out):
        for j in range(w_out):
            want += np.einsum("nf,ndec->fcde", dy[:, i, j], ap[:, i:i + k, j:j + k])
    got_dw = rowconv.kernel_grad(a, dy, k, pad).reshape(k, k, c, f).transpose(3, 2, 0, 1)
    np.testing.assert_allclose(got_dw, want, rtol=1e-12, atol=1e-12)


def test_correlate_oracle_catches_a_dropped_kernel_row(monkeypatch):
    """Negative control: a correlate that skips the last kernel row fails the comparison."""
    rng = np.random.default_rng(21)
    a, kernels = rng.standard_normal((2, 6, 6, 3)), rng.standard_normal((2, 3, 3, 3))
    w_rows = rowconv.row_weights(kernels, a.dtype)
    w_rows[-1] = 0
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(rowconv.correlate(a, w_rows, 0, 4, 4),
                                   correlate_naive(a, kernels, 4, 4), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,c,h,w,f,k,padding", [
    (3, 2, 7, 6, 3, 3, 1), (2, 3, 8, 8, 4, 5, 2), (2, 1, 6, 7, 2, 3, 0), (3, 2, 5, 5, 2, 3, 3),
])
def test_conv_through_rows_matches_naive_and_gradients(n, c, h, w, f, k, padding, rows_everywhere):
    rng = np.random.default_rng(22)
    layer = Conv2D(c, f, k, padding=padding, seed=3, dtype=np.float64)
    layer.b.value[...] = rng.standard_normal(f)
    x = rng.standard_normal((n, c, h, w))
    np.testing.assert_allclose(layer.forward(x), conv2d_naive(x, layer.W.value, layer.b.value, 1, padding),
                               rtol=1e-12, atol=1e-12)
    check_layer_grads(layer, x)
    assert rows_everywhere["correlate"] > 2 and rows_everywhere["kernel_grad"] > 0


@pytest.mark.parametrize("n,h,w,c,f,k", [(3, 7, 9, 1, 5, 3), (2, 8, 8, 2, 3, 5), (5, 5, 6, 1, 2, 1),
                                        (2, 32, 32, 1, 16, 5)])
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 20])
def test_correlate_grouped_matches_loop(n, h, w, c, f, k, chunk_bytes, monkeypatch):
    monkeypatch.setattr(rowconv, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(26)
    h_out, w_out = h - k + 1, w - k + 1
    extra = rowconv.grouped_width(w_out) - w_out   # zero columns the groups read past w
    a = np.concatenate([rng.standard_normal((n, h, w, c)), np.zeros((n, h, extra, c))], axis=2)
    kernels, bias = rng.standard_normal((f, c, k, k)), rng.standard_normal(f)
    got = rowconv.correlate_grouped(a, kernels, h_out, w_out, bias)
    assert got.shape == (n, h_out, w_out, f)
    np.testing.assert_allclose(got, correlate_naive(a, kernels, h_out, w_out) + bias,
                               rtol=1e-12, atol=1e-12)


def test_grouped_oracle_catches_a_shifted_band():
    """Negative control: kernels one column off (as a band placed at q + 1 instead of q
    would read them) fail the oracle."""
    rng = np.random.default_rng(27)
    a, kernels = rng.standard_normal((2, 7, 12, 1)), rng.standard_normal((3, 1, 3, 3))
    got = rowconv.correlate_grouped(a, np.roll(kernels, 1, axis=3), 5, 10)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got, correlate_naive(a, kernels, 5, 10), rtol=1e-12, atol=1e-12)


def test_first_layer_takes_the_grouped_path_and_matches_naive(monkeypatch):
    calls = []
    original = rowconv.correlate_grouped
    monkeypatch.setattr(rowconv, "correlate_grouped", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    layer = cnn(seed=0, dtype=np.float64).layers[1]
    rng = np.random.default_rng(28)
    layer.b.value[...] = rng.standard_normal(layer.out_channels)
    x = rng.uniform(0, 1, (3, 1, 28, 28))
    with backend.use("numpy"):
        got = layer.forward(x)
    assert calls == [1]
    np.testing.assert_allclose(got, conv2d_naive(x, layer.W.value, layer.b.value, 1, 2),
                               rtol=1e-12, atol=1e-12)
    for name in ("einsum", "sgemm"):
        assert not rowconv.grouped_wanted(name, 1, 5, 1)


def test_rows_path_is_what_the_cnn_second_layer_takes():
    layer = cnn(seed=0).layers[4]
    assert isinstance(layer, Conv2D) and layer.in_channels == 16
    with backend.use("numpy"):
        assert rowconv.wanted(backend.current(), layer.stride, layer.kernel_size, layer.in_channels)
    for name in ("einsum", "sgemm"):   # Pyodide's products: stacked np.matmul has no BLAS
        assert not rowconv.wanted(name, 1, 5, 16)
    assert not rowconv.wanted("numpy", 2, 5, 16) and not rowconv.wanted("numpy", 1, 5, 1)


def test_rows_float32_matches_im2col_float32(monkeypatch):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((4, 16, 14, 14)).astype(np.float32)
    dout = rng.standard_normal((4, 32, 14, 14)).astype(np.float32)
    results = []
    for width in (1, 10 ** 9):   # through rowconv, then through im2col
        monkeypatch.setattr(rowconv, "MIN_ROW_WIDTH", width)
        layer = Conv2D(16, 32, 5, padding=2, seed=4)
        y = layer.forward(x, training=True)
        dx = layer.backward(dout)
        assert y.dtype == dx.dtype == layer.W.grad.dtype == np.float32
        results.append((y, dx, layer.W.grad.copy(), layer.b.grad.copy()))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


# ---------------------------------------------------------------- max-pool, tiled windows

@pytest.mark.parametrize("n,c,h,w,size", [(2, 3, 8, 8, 2), (2, 2, 7, 9, 2), (2, 2, 9, 9, 3),
                                          (1, 2, 8, 12, 4), (2, 2, 5, 5, 1)])
def test_tiled_pool_matches_loop_with_many_ties(n, c, h, w, size):
    rng = np.random.default_rng(24)
    for layout in ((0, 1, 2, 3), (0, 2, 3, 1)):   # C-ordered, then channel-last in memory
        shape = tuple((n, c, h, w)[i] for i in layout)
        x = rng.integers(0, 3, shape).astype(np.float64).transpose(np.argsort(layout))
        pool = MaxPool2D(size)
        out = pool.forward(x, training=True)
        np.testing.assert_array_equal(out, maxpool_naive(x, size, size))
        dout = rng.standard_normal(out.shape)
        np.testing.assert_array_equal(pool.backward(dout), maxpool_backward_naive(x, dout, size, size))
        inference = MaxPool2D(size)   # winners found in backward when forward did not train
        inference.forward(x)
        np.testing.assert_array_equal(inference.backward(dout), maxpool_backward_naive(x, dout, size, size))


def test_tiled_pool_prefers_earlier_row_over_earlier_column():
    # The tie-break the two stages must get right: (0, 1) and (1, 0) both hold the max.
    x = np.array([[[[0.0, 2.0], [2.0, 1.0]]]])
    pool = MaxPool2D(2)
    pool.forward(x, training=True)
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1)))[0, 0], [[0, 1], [0, 0]])


@pytest.mark.parametrize("size", [2, 3])
def test_tiled_pool_gradients(size):
    check_layer_grads(MaxPool2D(size), distinct_values((2, 3, 7, 8), seed=size), training=True)


def test_pool_oracle_catches_column_first_ties():
    """Negative control: taking each window's column max first would route some ties to
    (1, 0) instead of (0, 1); the loop oracle sees the difference."""
    x = np.array([[[[0.0, 2.0], [2.0, 1.0]]]])
    wrong = np.array([[[[0.0, 0.0], [1.0, 0.0]]]])
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(wrong, maxpool_backward_naive(x, np.ones((1, 1, 1, 1)), 2, 2))


# ---------------------------------------------------------------- ReLU after pooling

def test_sequential_runs_relu_after_pool_with_same_results():
    rng = np.random.default_rng(25)
    model = cnn(seed=1, dtype=np.float64)
    with backend.use("einsum"):   # no ConvPool outside CPython's BLAS
        body = model._body()
    assert [type(l).__name__ for l in body[1:4]] == ["Conv2D", "MaxPool2D", "ReLU"]
    assert [type(l).__name__ for l in body[4:7]] == ["Conv2D", "MaxPool2D", "ReLU"]
    assert [type(l).__name__ for l in model.layers[1:4]] == ["Conv2D", "ReLU", "MaxPool2D"]
    x = rng.uniform(0, 1, (3, 784))
    reference = cnn(seed=1, dtype=np.float64)
    in_file_order = list(reference.layers[:-1])
    h = x
    for layer in in_file_order:
        h = layer.forward(h, training=True)
    logits = model.logits(x, training=True)
    np.testing.assert_allclose(logits, h, rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(logits.shape)
    d = upstream
    for layer in reversed(in_file_order):
        d = layer.backward(d)
    np.testing.assert_allclose(model.backward(upstream), d, rtol=1e-12, atol=1e-14)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, atol=1e-14)


def test_relu_pool_swap_is_exact_at_ties_and_negatives():
    # Windows that are all negative, all zero, or tie at a positive max.
    x = np.array([[[[-3.0, -1.0, 0.0, 0.0], [-2.0, -5.0, 0.0, 0.0],
                    [2.0, 1.0, 4.0, 4.0], [2.0, 0.0, 4.0, -1.0]]]])
    d = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    grads = []
    for layers in ([ReLU(), MaxPool2D(2)], [MaxPool2D(2), ReLU()]):
        h = x
        for layer in layers:
            h = layer.forward(h, training=True)
        g = d
        for layer in reversed(layers):
            g = layer.backward(g)
        grads.append((h, g))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    assert isinstance(Sequential([ReLU(), MaxPool2D(2)])._body()[0], MaxPool2D)


# ---------------------------------------------------------------- training batches in slices

def batch_gradients(model, x, targets, reduction):
    model.zero_grad()
    loss, logits = model.loss_and_gradients(x, targets, reduction)
    return loss, logits, [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_batch_in_slices_gives_the_whole_batch_gradient(reduction, monkeypatch):
    import digitnet.model as model_module
    rng = np.random.default_rng(29)
    x = rng.uniform(0, 1, (70, 784))
    targets = np.eye(10)[rng.integers(0, 10, 70)]
    model = cnn(seed=2, dtype=np.float64)
    with backend.use("numpy"):
        monkeypatch.setattr(model_module, "SLICE", 1000)
        whole = batch_gradients(model, x, targets, reduction)
        monkeypatch.setattr(model_module, "SLICE", 32)   # slices of 32, 32 and 6
        sliced = batch_gradients(model, x, targets, reduction)
    assert sliced[0] == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(sliced[1], whole[1], rtol=1e-12, atol=1e-14)
    for got, want in zip(sliced[2], whole[2]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    if reduction == "mean":   # negative control: the summed gradient is 70x off
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(sliced[2][0], batch_gradients(model, x, targets, "sum")[2][0],
                                       rtol=1e-10, atol=1e-14)


def test_batch_is_one_slice_outside_cpython_blas_and_for_dense_models(monkeypatch):
    import digitnet.model as model_module
    monkeypatch.setattr(model_module, "SLICE", 8)
    model = cnn(seed=3)
    calls = []
    original = model.logits
    monkeypatch.setattr(model, "logits", lambda x, training=False: calls.append(len(x)) or original(x, training))
    x = np.random.default_rng(30).uniform(0, 1, (20, 784)).astype(np.float32)
    targets = np.eye(10, dtype=np.float32)[np.arange(20) % 10]
    with backend.use("einsum"):
        model.loss_and_gradients(x, targets)
    with backend.use("numpy"):
        model.loss_and_gradients(x, targets)
    assert calls == [20, 8, 8, 4]
    from digitnet.model import mlp
    dense = mlp(seed=0)   # the MLP's arrays are small: it keeps whole batches
    with backend.use("numpy"):
        dense.loss_and_gradients(x, targets)
        sliced_calls = []
        original_dense = dense.logits
        monkeypatch.setattr(dense, "logits", lambda x, training=False: sliced_calls.append(len(x)) or original_dense(x, training))
        dense.loss_and_gradients(x, targets)
    assert sliced_calls == [20]
