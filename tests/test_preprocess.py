"""MNIST-style preprocessing of drawn and photographed digits."""
import numpy as np
import pytest

from digitnet import data
from digitnet.inkshape import label
from digitnet.preprocess import (DIGIT, EMPTY, NOT_A_DIGIT, centre_of_mass, ink_map, prepare,
                                  resize_area, to_mnist)
import drawings
from render import render


def stroke_image(height, width, box, dark_on_light=True, thickness=None):
    """A '7'-like glyph (bar + diagonal) filling ``box`` = (top, left, bottom, right)."""
    top, left, bottom, right = box
    img = np.zeros((height, width))
    t = thickness or max(2, (bottom - top) // 8)
    img[top:top + t, left:right] = 1.0
    for row in range(top, bottom):
        frac = (row - top) / max(1, bottom - top - 1)
        col = int(right - t - frac * (right - left - t) * 0.6)
        img[row, col:col + t] = 1.0
    return (1 - img) * 255 if dark_on_light else img * 255


def ink_box(img):
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("shape,box,dark", [
    ((600, 800), (250, 300, 550, 500), True),    # large, off-centre, dark ink on white
    ((64, 64), (5, 40, 20, 52), True),           # small, in a corner
    ((300, 300), (20, 20, 280, 200), False),     # large, light ink on black (inverted)
    ((40, 120), (2, 100, 30, 118), False),       # small, far right of a wide frame
])
def test_digit_is_fitted_to_20px_and_centred_by_mass(shape, box, dark):
    out = to_mnist(stroke_image(*shape, box, dark_on_light=dark))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() == pytest.approx(1.0)
    assert max(ink_box(out > 0)) == 20
    r, c = centre_of_mass(out)
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5
    assert out[0].sum() == 0 and out[:, 0].sum() == 0  # background is 0 = MNIST's black


def test_aspect_ratio_is_kept():
    tall = np.full((400, 400), 255.0)
    tall[50:350, 180:230] = 0  # a '1': 300 x 50
    out = to_mnist(tall)
    h, w = ink_box(out > 0.05)
    assert h == 20 and w in (3, 4, 5)


def test_polarity_does_not_change_the_result():
    img = stroke_image(200, 160, (30, 20, 170, 130))
    assert np.allclose(to_mnist(img), to_mnist(255 - img), atol=1e-6)
    assert np.allclose(to_mnist(img.astype(np.uint8)), to_mnist(img / 255.0), atol=1e-6)


@pytest.mark.parametrize("img", [np.zeros((50, 50)), np.full((28, 28), 255.0),
                                 np.full((100, 80), 0.5), np.full((90, 90), 128, np.uint8)])
def test_blank_images_are_empty(img):
    assert to_mnist(img) is None


def test_paper_noise_alone_is_empty_and_does_not_grow_the_crop():
    rng = np.random.default_rng(1)
    paper = np.clip(0.85 + 0.03 * rng.standard_normal((200, 200)), 0, 1)
    assert to_mnist(paper) is None
    clean = stroke_image(200, 200, (60, 60, 140, 120)) / 255.0
    noisy = np.clip(clean * 0.85 + 0.03 * rng.standard_normal(clean.shape), 0, 1)
    assert np.abs(to_mnist(noisy) - to_mnist(clean)).mean() < 0.02


@pytest.mark.parametrize("bad", [np.zeros(10), np.zeros((2, 3, 4)), np.array([[np.nan, 1], [0, 0]])])
def test_malformed_input_gets_a_clear_error(bad):
    with pytest.raises(ValueError):
        to_mnist(bad)


def test_area_resize_preserves_mean_intensity():
    img = np.random.default_rng(0).random((57, 31))
    for h, w in [(20, 11), (100, 60), (3, 3)]:
        assert resize_area(img, h, w).mean() == pytest.approx(img.mean())


@pytest.fixture(scope="module")
def bundle():
    return data.load_bundle()


MNIST = slice(None, None, 2)   # the test digits prepared as MNIST has them: every other
PHOTOS = slice(None, None, 4)  # the test digits rendered like photos: every fourth


@pytest.fixture(scope="module")
def prepared_mnist(bundle):
    """``prepare`` of the MNIST test digits as MNIST has them (28x28, ink = 1). A thousand
    are enough: a rule that rejected 1.8% of them failed the rejection test below."""
    return [prepare(d.reshape(28, 28)) for d in bundle.x_test[MNIST]]


@pytest.fixture(scope="module")
def prepared_photos(bundle):
    """``prepare`` of the PHOTOS test digits rendered like a photo (seeded): scaled,
    anywhere, noisy, either polarity. 500 are enough: a rule that rejected 1.2% of them
    failed the rejection test below."""
    rng = np.random.default_rng(0)
    return [prepare(render(d, rng)) for d in bundle.x_test[PHOTOS]]


@pytest.fixture(scope="module")
def prepared_pad(bundle):
    """``prepare`` of every other bundled test digit drawn as the pad sends it (112 px,
    thickness and size varied, mostly light on dark). A thousand are enough: a rule that
    rejected 1.2% of them failed the rejection test below."""
    rng = np.random.default_rng(0)
    return [prepare(drawings.to_image(drawings.pad_digit(d, rng, side=112), i % 4 != 0))
            for i, d in enumerate(bundle.x_test[::2])]


def test_mnist_digits_pass_through_almost_unchanged(bundle, prepared_mnist):
    """MNIST digits are already in this format: preprocessing them again changes little."""
    again = np.array([p.image.reshape(784) for p in prepared_mnist])
    assert np.abs(again - bundle.x_test[MNIST]).mean() < 0.02


def test_rendered_mnist_digits_keep_their_accuracy(tutorial_mlp, bundle, prepared_photos):
    """Real held-out digits scaled, moved anywhere, noisy, either polarity: preprocessing
    must recover MNIST's framing well enough that accuracy barely drops."""
    model, _ = tutorial_mlp
    x, y = bundle.x_test[PHOTOS], bundle.y_test[PHOTOS]
    rendered = np.array([p.image.reshape(784) for p in prepared_photos])
    original = (model.predict(x) == y).mean()
    assert (model.predict(rendered) == y).mean() >= original - 0.02


# ---------------------------------------------------------------- digit, empty, not a digit


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (7, 7), (300, 5)])
def test_tiny_images_are_no_digit_found_not_an_error(shape):
    img = np.zeros(shape, np.uint8)
    img[0, 0] = 255
    result = prepare(img)
    assert result.outcome == EMPTY and result.image is None
    assert result.message.startswith("No digit found: the image is only")
    assert to_mnist(img) is None


# Measured on 200 of each at each size: dots, frames, border lines 99.5-100%, noise 99-100%,
# scribbles 95-98.5% called out.
@pytest.mark.parametrize("kind,side,at_least", [
    (kind, side, {"scribble": 0.9, "noise": 0.95}.get(kind, 0.97))
    for kind in drawings.NON_DIGITS for side in (112, 280)])
def test_non_digits_are_called_out(kind, side, at_least):
    """Generated dots, frames, lines along the border, scribbles and noise, either polarity."""
    rng = np.random.default_rng([list(drawings.NON_DIGITS).index(kind), side])
    results = [prepare(drawings.to_image(drawings.NON_DIGITS[kind](rng, side), i % 2 == 0))
               for i in range(40)]
    rejected = [r for r in results if r.outcome != DIGIT]
    assert len(rejected) / len(results) >= at_least, [r.message for r in results]
    for r in rejected:
        assert r.message.endswith(".") and r.message.count(".") == 1


@pytest.mark.parametrize("make,reason", [
    (lambda: drawings.paint([[(0.4, 0.6)]], 112), "a dot or a blob"),
    (lambda: drawings.paint([[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]], 112), "lines along the edge"),
    (lambda: drawings.paint([[(0.1, 0.02), (0.9, 0.02)]], 112), "lines along the edge"),
    (lambda: drawings.paint([[(0.1, 0.1), (0.9, 0.9), (0.1, 0.9), (0.9, 0.1), (0.5, 0.05),
                              (0.5, 0.95), (0.05, 0.5), (0.95, 0.5)]], 112), "scribble"),
])
def test_each_kind_gets_its_reason(make, reason):
    result = prepare(drawings.to_image(make()))
    assert result.outcome == NOT_A_DIGIT and reason in result.message
    assert result.message.startswith("That doesn't look like a digit: ")
    assert to_mnist(drawings.to_image(make())) is not None   # the old convention: ink is framed


@pytest.mark.parametrize("name", ["pad", "photos", "mnist"])
def test_real_digits_are_almost_never_rejected(name, request):
    """The bundled test digits drawn as the pad sends them, rendered like photos, and as
    MNIST itself."""
    prepared = request.getfixturevalue(f"prepared_{name}")
    outcomes = [p.outcome for p in prepared]
    assert outcomes.count(DIGIT) >= 0.99 * len(prepared), \
        {o: outcomes.count(o) for o in set(outcomes)}


@pytest.mark.parametrize("light_on_dark", [True, False])
def test_a_seven_inside_a_frame_is_read_as_the_seven(light_on_dark):
    framed = prepare(drawings.to_image(drawings.framed_seven(), light_on_dark))
    alone = prepare(drawings.to_image(drawings.paint([[(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]], 280),
                                      light_on_dark))
    assert framed.outcome == alone.outcome == DIGIT
    # Same polarity (ink = 1 on a 0 background) and the frame dropped: nearly the same input.
    assert framed.image[0].sum() == 0 and framed.image.max() == pytest.approx(1.0)
    assert np.abs(framed.image - alone.image).mean() < 0.02


def test_polarity_follows_the_paper_when_ink_runs_along_the_border():
    """A frame plus a stroke: the paper (the majority) stays background either way."""
    ink = drawings.framed_seven(112)
    for img in (drawings.to_image(ink, True), drawings.to_image(ink, False)):
        # A flipped polarity would disagree on every pixel; antialiased edges may differ.
        assert np.mean((ink_map(img) > 0.5) != (ink > 0.5)) < 0.01


def flood_fill_pieces(mask):
    """The naive oracle: 8-connected pieces of a bool mask as a set of frozensets of pixels."""
    seen, pieces = set(), set()
    for start in zip(*np.nonzero(mask)):
        if start in seen:
            continue
        piece, todo = set(), [start]
        while todo:
            r, c = todo.pop()
            if (r, c) in seen or not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]) \
                    or not mask[r, c]:
                continue
            seen.add((r, c)), piece.add((r, c))
            todo += [(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        pieces.add(frozenset(piece))
    return pieces


@pytest.mark.parametrize("density", [0.1, 0.35, 0.5, 0.7])
def test_label_finds_the_same_pieces_as_a_flood_fill(density):
    rng = np.random.default_rng(int(density * 100))
    for shape in [(1, 1), (1, 9), (9, 1), (13, 17), (40, 31)]:
        mask = rng.random(shape) < density
        labels, n = label(mask)
        got = {frozenset(zip(*np.nonzero(labels == i))) for i in range(1, n + 1)}
        assert got == flood_fill_pieces(mask) and ((labels > 0) == mask).all()
        # Numbered in raster order of each piece's first pixel.
        firsts = [np.flatnonzero(labels.ravel() == i)[0] for i in range(1, n + 1)]
        assert firsts == sorted(firsts)


def test_label_a_spiral_and_an_empty_mask():
    """A long winding piece (many rounds of propagation) stays one piece."""
    spiral = np.zeros((21, 21), bool)
    r, c, dr, dc, length = 10, 10, 0, 1, 1
    while 0 <= r < 21 and 0 <= c < 21:
        for _ in range(2):
            for _ in range(length):
                if 0 <= r < 21 and 0 <= c < 21:
                    spiral[r, c] = True
                r, c = r + dr, c + dc
            dr, dc = dc, -dr
        length += 2
    labels, n = label(spiral)
    assert n == len(flood_fill_pieces(spiral)) and ((labels > 0) == spiral).all()
    assert label(np.zeros((5, 4), bool))[1] == 0


def test_paper_statistics_of_8_bit_images_are_the_medians():
    """The counted medians of a uint8 image equal numpy's medians of the float image."""
    from digitnet.preprocess import _gray, _paper
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, shape).astype(np.uint8) for shape in [(2, 2), (3, 5), (9, 8), (100, 7)]]
    images += [render(d, rng) for d in data.load_bundle().x_test[:20]]
    images += [np.full((10, 10), 200, np.uint8)]        # all paper: no noise at all
    for img in images:
        np.testing.assert_allclose(_paper(_gray(img), img), _paper(_gray(img)), rtol=0, atol=1e-12)
