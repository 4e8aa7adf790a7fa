"""Training-time augmentation: invariants, loop oracles on tiny cases, seeded reproducibility."""
import numpy as np
import pytest

from digitnet import augment as A
from digitnet import data


def digits(n=6, seed=0):
    """(n, 28, 28) blobby random 'digits' in [0, 1] with ink away from the border."""
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 28, 28), np.float32)
    imgs[:, 6:22, 8:20] = rng.random((n, 16, 12)) > 0.5
    return A.smooth(imgs, 0.7).clip(0, 1).astype(np.float32)


def identity(n):
    m = np.zeros((n, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    return m


def bilinear_loop(img, r, c):
    """Reference bilinear read of one image at (r, c), zero outside."""
    def px(i, j):
        return img[i, j] if 0 <= i < img.shape[0] and 0 <= j < img.shape[1] else 0.0
    r0, c0 = int(np.floor(r)), int(np.floor(c))
    fr, fc = r - r0, c - c0
    return ((1 - fr) * (1 - fc) * px(r0, c0) + (1 - fr) * fc * px(r0, c0 + 1)
            + fr * (1 - fc) * px(r0 + 1, c0) + fr * fc * px(r0 + 1, c0 + 1))


def test_identity_warp_returns_the_same_images():
    x = digits()
    np.testing.assert_array_equal(A.warp(x, identity(len(x))), x)
    np.testing.assert_array_equal(A.warp(x, identity(len(x)), np.zeros((len(x), 2, 28, 28))), x)


def test_integer_translation_moves_the_image():
    x = digits(2)
    m = identity(2)
    m[:, :, 2] = [3, -2]  # 3 rows down, 2 columns left
    out = A.warp(x, m)
    np.testing.assert_allclose(out[:, 3:, :26], x[:, :25, 2:], atol=1e-6)
    assert np.all(out[:, :3] == 0)


def test_warp_matches_a_loop_oracle_with_rotation_scale_shear_and_displacement():
    rng = np.random.default_rng(3)
    x = digits(2, seed=3)
    m = A.affine_matrices(2, rng, rotation=25, scale=(0.7, 1.3), shear=0.3, translate=3)
    disp = rng.normal(0, 1.5, (2, 2, 28, 28)).astype(np.float32)
    out = A.warp(x, m, disp)
    for k in range(2):
        inv = np.linalg.inv(m[k, :, :2])
        for i in range(0, 28, 3):
            for j in range(0, 28, 2):
                src = inv @ (np.array([i, j]) - A.CENTRE - m[k, :, 2]) + A.CENTRE
                want = bilinear_loop(x[k], src[0] + disp[k, 0, i, j], src[1] + disp[k, 1, i, j])
                assert out[k, i, j] == pytest.approx(want, abs=1e-4), (k, i, j)


def test_warp_of_many_images_equals_warping_each_alone():
    """Across chunk boundaries and a short last chunk, every image keeps its own map."""
    n = A.CHUNK + 3
    x = np.concatenate([digits(6, seed=s) for s in range(-(-n // 6))])[:n]
    m = A.affine_matrices(n, np.random.default_rng(4))
    disp = np.random.default_rng(5).normal(0, 1, (n, 2, 28, 28)).astype(np.float32)
    out = A.warp(x, m, disp)
    for k in (0, A.CHUNK - 1, A.CHUNK, n - 1):
        np.testing.assert_array_equal(out[k], A.warp(x[k:k + 1], m[k:k + 1], disp[k:k + 1])[0])


def test_warp_rows_in_place_changes_only_those_rows_as_warp_would():
    n = A.CHUNK + 9
    x = np.concatenate([digits(6, seed=s) for s in range(-(-n // 6))])[:n]
    rows = np.flatnonzero(np.random.default_rng(6).random(n) < 0.6)
    m = A.affine_matrices(len(rows), np.random.default_rng(7))
    out = x.copy()
    A.warp_rows(out, rows, m, None, out)
    np.testing.assert_array_equal(out[rows], A.warp(x[rows], m))
    rest = np.setdiff1d(np.arange(n), rows)
    np.testing.assert_array_equal(out[rest], x[rest])
    assert not np.array_equal(out[rows], x[rows])


def test_rotation_by_90_degrees_rotates_the_array():
    x = digits(1)
    m = np.zeros((1, 2, 3))
    m[0, :, :2] = [[0, -1], [1, 0]]  # source (r, c) -> (-c, r) about the centre
    np.testing.assert_allclose(A.warp(x, m)[0], np.rot90(x[0], 1), atol=1e-5)


def test_affine_matrices_stay_within_their_limits():
    m = A.affine_matrices(2000, np.random.default_rng(0), rotation=15, scale=(0.8, 1.2),
                          shear=0.2, translate=2)
    assert np.all(np.abs(m[:, :, 2]) <= 2)
    det = np.linalg.det(m[:, :, :2])
    assert det.min() >= 0.8 * 0.8 - 1e-6 and det.max() <= 1.2 * 1.2 + 1e-6  # shear keeps area
    # Rotation angle of the first column (pure scale/shear keep it on the row axis).
    angle = np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
    assert np.abs(angle).max() <= 15 + np.degrees(np.arctan(0.2)) + 1e-6


def test_smooth_matches_a_loop_convolution():
    rng = np.random.default_rng(1)
    f = rng.random((2, 9, 7)).astype(np.float32)
    sigma = 1.3
    radius = int(np.ceil(4 * sigma))
    o = np.arange(-radius, radius + 1)
    k1 = np.exp(-o ** 2 / (2 * sigma ** 2))
    k2 = np.outer(k1, k1) / k1.sum() ** 2
    want = np.zeros_like(f)
    for b in range(2):
        for i in range(9):
            for j in range(7):
                for di in o:
                    for dj in o:
                        if 0 <= i + di < 9 and 0 <= j + dj < 7:
                            want[b, i, j] += k2[di + radius, dj + radius] * f[b, i + di, j + dj]
    np.testing.assert_allclose(A.smooth(f, sigma), want, atol=1e-5)


def test_elastic_fields_are_smooth_and_scale_with_alpha():
    rng = np.random.default_rng(0)
    f = A.elastic_fields(50, np.random.default_rng(0), alpha=10.0)
    g = A.elastic_fields(50, np.random.default_rng(0), alpha=20.0)
    np.testing.assert_allclose(g, 2 * f, rtol=1e-5, atol=1e-6)
    raw = rng.uniform(-1, 1, f.shape)
    # Neighbouring displacements agree far more than independent noise does.
    step = np.abs(np.diff(f, axis=-1)).mean() / np.abs(f).mean()
    step_raw = np.abs(np.diff(raw, axis=-1)).mean() / np.abs(raw).mean()
    assert step < 0.3 * step_raw


def test_elastic_with_zero_alpha_is_the_identity():
    x = digits()
    np.testing.assert_array_equal(A.elastic(x, np.random.default_rng(0), alpha=0.0), x)


def test_dilation_and_erosion_match_a_loop_and_bracket_the_image():
    x = digits(2, seed=5)
    d, e = A.dilate(x), A.erode(x)
    assert np.all(d >= x) and np.all(x >= e)
    for k in range(2):
        pad = np.pad(x[k], 1)
        for i in range(28):
            for j in range(28):
                assert d[k, i, j] == pad[i:i + 3, j:j + 3].max()
                assert e[k, i, j] == pad[i:i + 3, j:j + 3].min()


def test_stroke_width_thickens_thins_and_zero_keeps():
    x = digits(3)
    out = A.stroke_width(x, np.array([1.0, -1.0, 0.0]))
    np.testing.assert_allclose(out[0], A.dilate(x[:1])[0], atol=1e-6)
    np.testing.assert_allclose(out[1], A.erode(x[1:2])[0], atol=1e-6)
    np.testing.assert_array_equal(out[2], x[2])
    half = A.stroke_width(x[:1], np.array([0.5]))
    assert x[0].sum() < half.sum() < out[0].sum()


def test_draw_segments_matches_a_loop_oracle():
    segs = np.array([[[[4.0, 3.0], [20.0, 15.5]], [[10.0, 10.0], [10.0, 10.0]]]], np.float32)
    out = A.draw_segments(np.zeros((1, 28, 28), np.float32), segs, np.array([2.5]))
    for i in range(28):
        for j in range(28):
            best = 0.0
            for (a, b) in segs[0]:
                ab = b - a
                t = 0.0 if not ab.any() else np.clip(np.dot([i, j] - a, ab) / np.dot(ab, ab), 0, 1)
                dist = np.hypot(*(a + t * ab - [i, j]))
                best = max(best, float(np.clip(1.25 + 0.5 - dist, 0, 1)))
            assert out[0, i, j] == pytest.approx(best, abs=1e-5)


def test_draw_segments_with_repeated_lines_equals_the_maximum_of_each_line_alone():
    rng = np.random.default_rng(2)
    n = A.INK_CHUNK + 5
    segs = rng.uniform(3, 25, (n, 3, 2, 2)).astype(np.float32)
    segs[::2, 2] = segs[::2, 1]  # repeats, as continental_styles pads its lines
    segs[::3, 1] = segs[::3, 0]
    widths = rng.uniform(1.5, 3.0, n)
    x = digits(6, seed=2)[np.arange(n) % 6]
    want = x.copy()
    for k in range(3):
        want = np.maximum(want, A.draw_segments(np.zeros_like(x), segs[:, k:k + 1], widths))
    np.testing.assert_array_equal(A.draw_segments(x, segs, widths), want)


def test_draw_segments_reaches_every_inked_pixel_near_edges_and_across_chunks():
    """Segments are drawn in boxes around them: against the distance to each segment over
    the whole field (float64), for lines crossing the edges, dots and long diagonals."""
    rng = np.random.default_rng(9)
    n = 2 * A.INK_CHUNK + 7
    segs = rng.uniform(-3, 30, (n, 2, 2, 2)).astype(np.float32)
    segs[::5, 0, 1] = segs[::5, 0, 0]                     # dots
    segs[::7, 1] = [[0.2, 0.3], [27.6, 27.9]]             # corner to corner
    widths = rng.uniform(1.0, 3.5, n)
    out = A.draw_segments(np.zeros((n, 28, 28), np.float32), segs, widths)
    pix = np.stack(np.meshgrid(np.arange(28), np.arange(28), indexing="ij"), -1).astype(float)
    want = np.zeros((n, 28, 28))
    for k in range(2):
        a, b = segs[:, k, 0].astype(float), segs[:, k, 1].astype(float)
        d = b - a
        t = ((pix[None] - a[:, None, None]) * d[:, None, None]).sum(-1) / np.maximum(
            (d * d).sum(-1), 1e-6)[:, None, None]
        near = a[:, None, None] + np.clip(t, 0, 1)[..., None] * d[:, None, None]
        dist = np.sqrt(((near - pix[None]) ** 2).sum(-1))
        want = np.maximum(want, np.clip(widths[:, None, None] / 2 + 0.5 - dist, 0, 1))
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert (want > 0).sum() > 20 * n


def test_continental_styles_add_ink_only_to_chosen_classes():
    x = digits(10)
    y = np.arange(10)
    out = A.continental_styles(x, y, np.random.default_rng(0), fraction=1.0)
    assert np.all(out >= x)
    changed = np.flatnonzero((out - x).sum(axis=(1, 2)) > 1.0)
    assert set(changed) == {0, 1, 7, 9}
    np.testing.assert_array_equal(A.continental_styles(x, y, np.random.default_rng(0), 0.0), x)


def test_augment_epoch_is_seeded_and_leaves_its_input_alone():
    x = digits(40).reshape(40, 784)
    y = np.arange(40) % 10
    before = x.copy()
    settings = dict(affine=0.7, elastic_alpha=12.0, stroke=0.5, styles=0.5)
    a = A.augment_epoch(x, y, np.random.default_rng(7), **settings)
    b = A.augment_epoch(x, y, np.random.default_rng(7), **settings)
    c = A.augment_epoch(x, y, np.random.default_rng(8), **settings)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (40, 784) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 + 1e-6
    np.testing.assert_array_equal(A.augment_epoch(x, y, np.random.default_rng(7)), x)


def test_outline_matches_a_loop_and_given_outlines_change_nothing():
    bundle = data.load_bundle()
    x, y = bundle.x_train[::20], bundle.y_train[::20]
    imgs = x.reshape(-1, 28, 28)
    shape = A.outline(imgs)
    for i in (0, 7, 123):
        rows = [r for r in range(28) if (imgs[i, r] > 0.3).any()]
        cols = [c for c in range(28) if (imgs[i, :, c] > 0.3).any()]
        assert (shape.top[i], shape.bottom[i]) == (rows[0], rows[-1])
        assert (shape.left[i], shape.right[i]) == (cols[0], cols[-1])
        assert shape.area[i] == (imgs[i] > 0.3).sum()
        r = rows[len(rows) // 2]
        assert shape.take(np.array([i])).column_at(np.array([r]), np.array([-1.0]))[0] == pytest.approx(
            np.flatnonzero(imgs[i, r] > 0.3).mean())
    assert shape.take(np.array([3])).column_at(np.array([0]), np.array([-1.0]))[0] == -1.0
    settings = dict(affine=0.5, styles=0.8)
    np.testing.assert_array_equal(
        A.augment_epoch(x, y, np.random.default_rng(4), outlines=shape, **settings),
        A.augment_epoch(x, y, np.random.default_rng(4), **settings))


def zhang_suen_loop(img):
    """Reference Zhang-Suen thinning of one (H, W) bool image, pixel by pixel."""
    img = np.pad(img.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            marked = []
            for i in range(1, img.shape[0] - 1):
                for j in range(1, img.shape[1] - 1):
                    if not img[i, j]:
                        continue
                    p = [img[i - 1, j], img[i - 1, j + 1], img[i, j + 1], img[i + 1, j + 1],
                         img[i + 1, j], img[i + 1, j - 1], img[i, j - 1], img[i - 1, j - 1]]
                    b = sum(p)
                    a = sum((not p[k]) and p[(k + 1) % 8] for k in range(8))
                    if step == 0:
                        ok = not (p[0] and p[2] and p[4]) and not (p[2] and p[4] and p[6])
                    else:
                        ok = not (p[0] and p[2] and p[6]) and not (p[0] and p[4] and p[6])
                    if 2 <= b <= 6 and a == 1 and ok:
                        marked.append((i, j))
            for i, j in marked:
                img[i, j] = False
            changed |= bool(marked)
        if not changed:
            return img[1:-1, 1:-1]


def test_thin_matches_a_loop_oracle_and_stays_inside_the_ink():
    x = digits(3, seed=11) > 0.4
    sk = A.thin(x)
    for k in range(3):
        np.testing.assert_array_equal(sk[k], zhang_suen_loop(x[k]))
    assert np.all(sk <= x) and sk.sum() > 0 and sk.sum() < 0.6 * x.sum()


def test_thin_keeps_a_one_pixel_line_and_thins_a_bar_to_one():
    img = np.zeros((2, 28, 28), bool)
    img[0, 14, 4:24] = True
    img[1, 5:23, 10:15] = True  # a 5-pixel-wide vertical bar
    sk = A.thin(img)
    np.testing.assert_array_equal(sk[0], img[0])
    widths = sk[1, 8:20].sum(axis=1)
    assert np.all(widths == 1), widths


def test_redraw_matches_a_loop_oracle():
    sk = np.zeros((2, 12, 12), bool)
    sk[0, 3, 2:9] = True
    sk[1, 6, 6] = True
    radii = np.array([1.3, 2.2])
    out = A.redraw(sk, radii)
    for k in range(2):
        pts = np.argwhere(sk[k])
        for i in range(12):
            for j in range(12):
                d = np.hypot(*(pts - [i, j]).T).min()
                assert out[k, i, j] == pytest.approx(np.clip(radii[k] + 0.5 - d, 0, 1), abs=1e-6)


def test_augment_epoch_repen_uses_given_skeletons_like_its_own():
    x = digits(20).reshape(20, 784)
    y = np.arange(20) % 10
    sk = A.thin(x.reshape(20, 28, 28) > 0.5)
    a = A.augment_epoch(x, y, np.random.default_rng(3), repen_fraction=0.6)
    b = A.augment_epoch(x, y, np.random.default_rng(3), repen_fraction=0.6, skeletons=sk)
    np.testing.assert_array_equal(a, b)
    redrawn = np.flatnonzero(np.abs(a - x).sum(axis=1) > 0)
    assert 0 < len(redrawn) < 20
