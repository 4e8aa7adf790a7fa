"""What is not a digit gets a sentence instead of a verdict, through the real page: dots,
strokes along the pad's border and scribbles drawn on the pad, a 1x1 upload, an unreadable
file; an imported model that scores poorly is kept but the pad keeps its model. A normal
drawing is still classified afterwards. Tests run in order on one page."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import (SHAPES, classify_drawing, open_page, png_bytes, probabilities, seq,
                     wait_next_result)

NOT_A_DIGIT = "That doesn't look like a digit: "

NON_DIGITS = {
    "dot": [[(0.4, 0.6)]],
    "along the top border": [[(0.08, 0.02), (0.5, 0.02), (0.92, 0.02)]],
    "along the left border": [[(0.02, 0.1), (0.02, 0.5), (0.02, 0.9)]],
    "whole-pad scribble": [[(0.1, 0.1), (0.9, 0.9), (0.1, 0.9), (0.9, 0.1), (0.5, 0.05),
                            (0.5, 0.95), (0.05, 0.5), (0.95, 0.5)]],
}


@pytest.fixture(scope="module")
def nd(browser, base_url):
    page = open_page(browser, base_url, "[data-testid=model-select]")
    yield page
    page.context.close()


def verdict(page) -> str:
    return page.inner_text("#verdict-text").strip()


def assert_no_verdict(page, state: str) -> None:
    """No digit, flat bars, blank preview: nothing of an earlier verdict is left."""
    assert page.get_by_test_id("prediction").inner_text().strip() == ""
    assert page.get_attribute('[data-testid="prediction"]', "data-state") == state
    assert page.get_attribute('[data-testid="prediction"]', "data-confidence") is None
    assert probabilities(page) == [0.0] * 10
    assert page.get_by_test_id("preview").get_attribute("data-empty") == "true"
    assert page.inner_text("#confidence").strip() == ""


def upload(page, name: str, data: bytes, mime: str = "image/png") -> None:
    page.get_by_test_id("upload").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


@pytest.mark.parametrize("kind", list(NON_DIGITS))
def test_a_non_digit_drawing_gets_a_sentence_not_a_verdict(nd, kind):
    assert classify_drawing(nd, SHAPES[7]) == "7"          # a verdict it must replace
    assert classify_drawing(nd, NON_DIGITS[kind]) == ""
    text = verdict(nd)
    assert text.startswith(NOT_A_DIGIT) and text.endswith(".") and text.count(".") == 1, text
    if "border" in kind:
        assert text == NOT_A_DIGIT + "it is only lines along the edge of the image."
    assert_no_verdict(nd, "rejected")


@pytest.mark.parametrize("height, width", [(1, 1), (1, 300), (300, 1), (5, 40)])
def test_a_tiny_upload_says_no_digit_found_and_clears_the_old_verdict(nd, height, width):
    assert classify_drawing(nd, SHAPES[0]) == "0"
    before = seq(nd)
    upload(nd, "tiny.png", png_bytes(np.full((height, width), 200, np.uint8)))
    wait_next_result(nd, before)
    assert verdict(nd) == f"No digit found: the image is only {width}x{height} pixels."
    assert_no_verdict(nd, "rejected")
    assert nd.get_attribute("#input-message", "data-kind") != "error"   # not a failure


def test_an_unreadable_upload_clears_the_old_verdict(nd):
    assert classify_drawing(nd, SHAPES[1]) == "1"
    before = seq(nd)
    upload(nd, "x.png", b"this is not an image\n" * 20)
    wait_next_result(nd, before)
    assert nd.get_attribute("#input-message", "data-kind") == "error"
    assert "x.png" in nd.inner_text("#input-message")
    assert_no_verdict(nd, "error")


FRAME = [(0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98), (0.02, 0.03)]


def test_a_seven_drawn_inside_a_frame_on_the_pad_is_a_seven(nd):
    """Ink along the pad's border must not flip which colour is ink."""
    assert classify_drawing(nd, SHAPES[7]) == "7"
    alone = probabilities(nd)
    assert classify_drawing(nd, [FRAME] + SHAPES[7]) == "7"
    framed = probabilities(nd)
    assert framed[7] > 0.5 and framed[7] == pytest.approx(alone[7], abs=0.25)
    assert nd.get_attribute('[data-testid="prediction"]', "data-state") in ("sure", "unsure")


@pytest.mark.parametrize("light_on_dark", [True, False])
def test_an_uploaded_seven_inside_a_frame_is_a_seven(nd, light_on_dark):
    from PIL import Image, ImageDraw

    img = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(img)
    pen.rectangle([0, 0, 279, 279], outline=255, width=10)                 # the frame, on the border
    pen.line([(84, 70), (196, 70), (126, 224)], fill=255, width=22, joint="curve")
    ink = np.asarray(img)
    classify_drawing(nd, SHAPES[1])                                           # an older verdict
    before = seq(nd)
    upload(nd, "framed-seven.png", png_bytes(ink if light_on_dark else 255 - ink))
    wait_next_result(nd, before)
    assert nd.get_by_test_id("prediction").inner_text().strip() == "7"
    assert max(probabilities(nd)) == probabilities(nd)[7]


def settle(page, timeout=60_000) -> str:
    page.wait_for_function("() => document.documentElement.dataset.padModel !== 'switching'", timeout=timeout)
    return page.evaluate("document.documentElement.dataset.padModel")


def test_a_poor_imported_model_is_kept_but_not_used(nd, tmp_path):
    import digitnet
    from digitnet import data

    poor = digitnet.mlp(seed=1)                  # untrained: near chance
    path = tmp_path / "poor-model.npz"
    digitnet.save(poor, path)
    test = data.load_bundle()
    accuracy = float((poor.predict(test.x_test) == test.y_test).mean())
    assert accuracy < 0.5

    pad_model = settle(nd)
    label = nd.inner_text('[data-testid="current-model"]')
    classify_drawing(nd, SHAPES[7])
    probs = probabilities(nd)
    kept_before = nd.get_by_test_id("saved-model").count()

    nd.get_by_test_id("import").set_input_files(str(path))
    nd.wait_for_function("() => /not used/.test(document.querySelector('#models-message').textContent)",
                         timeout=60_000)
    message = nd.inner_text("#models-message")
    assert message == (f"Kept “poor-model” in Your models but not used on the pad, because it scored "
                       f"only {accuracy * 100:.1f}% on the test digits; choose “Use” to try it anyway.")
    assert nd.get_by_test_id("saved-model").count() == kept_before + 1
    kept = nd.locator('[data-testid="saved-model"]', has_text="poor-model")
    assert kept.count() == 1
    # The pad keeps its model: same key, same label, same probabilities.
    assert settle(nd) == pad_model
    assert nd.inner_text('[data-testid="current-model"]') == label
    assert classify_drawing(nd, SHAPES[7]) == "7"
    assert probabilities(nd) == pytest.approx(probs, abs=1e-6)
    # The person can still choose it, and go back.
    kept.locator("[data-action=use]").click()
    assert settle(nd) == f"stored:{kept.get_attribute('data-id')}"
    nd.get_by_test_id("use-pretrained").click()
    assert settle(nd) == pad_model


@pytest.mark.parametrize("digit", [0, 1, 4, 7])
def test_a_drawn_digit_is_still_classified_afterwards(nd, digit):
    assert classify_drawing(nd, SHAPES[digit]) == str(digit)
    assert nd.get_attribute('[data-testid="prediction"]', "data-state") in ("sure", "unsure")
    assert abs(sum(probabilities(nd)) - 1) < 0.01
    assert not nd.errors, nd.errors
