"""Switching the pad's model, driven in real Chromium: two switches in quick succession,
through any of the ways to switch (the selector by the pad, "Use" on a kept model, "Use
the pretrained model"), end on the last one chosen, never a mix: the selector, the
training panel's "the pad uses …" line, the remembered choice and the prediction of a
drawn digit all agree with the last choice, and the prediction equals what that model
gives alone.

The tests share one page (module fixture `sp`), in order.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import SHAPES, open_page, probabilities
from helpers import classify_drawing as _classify_drawing

ROOT = Path(__file__).resolve().parents[2]
DIGIT = SHAPES[7]
shared: dict = {}


@pytest.fixture(scope="module")
def sp(browser, base_url):
    page = open_page(browser, base_url, "[data-testid=model-select]")
    yield page
    page.context.close()


def default_model() -> str:
    return json.loads((ROOT / "dist" / "build-manifest.json").read_text())["default_model"]


def classify(page):
    page.evaluate("document.querySelector('[data-testid=pad]').scrollIntoView({block: 'center'})")
    _classify_drawing(page, DIGIT)
    return probabilities(page)


def settle(page, timeout=60_000):
    """Wait until no switch is in progress; return the pad's model ("pretrained:cnn", …)."""
    page.wait_for_function("() => document.documentElement.dataset.padModel !== 'switching'", timeout=timeout)
    return page.evaluate("document.documentElement.dataset.padModel")


def select_js(value):
    return (f"(() => {{ const s = document.querySelector('[data-testid=model-select]');"
            f" s.value = {value!r}; s.dispatchEvent(new Event('change')); }})();")


USE_KEPT_JS = "document.querySelector('[data-testid=saved-model] [data-action=use]').click();"
USE_PRETRAINED_JS = "document.querySelector('[data-testid=use-pretrained]').click();"


def assert_on(page, key, probs, label):
    """Everything the page shows agrees that the pad uses `key`, and it classifies as that model."""
    assert settle(page) == key
    assert page.input_value('[data-testid="model-select"]') == key
    assert page.inner_text('[data-testid="current-model"]') == label
    if key.startswith("pretrained:"):
        assert page.evaluate("localStorage.getItem('digitnet.pretrained')") == key.split(":")[1]
    assert classify(page) == pytest.approx(probs, abs=1e-5)
    assert page.get_by_test_id("model-status").inner_text().strip() == ""


def test_each_model_alone(sp):
    """References: the drawn digit's probabilities with each pretrained model on its own."""
    first = f"pretrained:{default_model()}"
    other = "pretrained:mlp" if first == "pretrained:cnn" else "pretrained:cnn"
    assert settle(sp) == first
    shared["first"], shared["other"] = first, other
    shared[first] = classify(sp)
    sp.select_option('[data-testid="model-select"]', other)
    assert settle(sp) == other
    shared[other] = classify(sp)
    assert shared[other] != pytest.approx(shared[first], abs=1e-3)  # two different networks
    sp.select_option('[data-testid="model-select"]', first)
    assert settle(sp) == first


def test_two_selector_choices_in_one_moment_end_on_the_second(sp):
    first, other = shared["first"], shared["other"]
    sp.evaluate(select_js(other) + select_js(first))
    assert_on(sp, first, shared[first], f"the pretrained {first.split(':')[1].upper()}")
    sp.evaluate(select_js(first) + select_js(other))
    assert_on(sp, other, shared[other], f"the pretrained {other.split(':')[1].upper()}")


def test_a_second_choice_while_the_first_is_loading_wins(sp):
    """The first switch is already in the worker when the second is made."""
    first, other = shared["first"], shared["other"]
    sp.evaluate(f"""async () => {{
      {select_js(first)}
      await new Promise((r) => setTimeout(r, 5));
      {select_js(other)}
    }}""")
    assert_on(sp, other, shared[other], f"the pretrained {other.split(':')[1].upper()}")


def test_a_kept_model_and_the_selector_in_quick_succession(sp):
    """An import (itself a switch) keeps a model; then "Use" on it races the selector and
    "Use the pretrained model", in both orders."""
    first, other = shared["first"], shared["other"]
    name = other.split(":")[1]
    sp.get_by_test_id("import").set_input_files(str(ROOT / "dist" / "models" / f"{name}.npz"))
    sp.wait_for_function("() => /Imported/.test(document.querySelector('#models-message').textContent)")
    kept = f"stored:{sp.get_attribute('[data-testid=saved-model]', 'data-id')}"
    assert_on(sp, kept, shared[other], f"“{name}”")  # the same weights as the pretrained one
    # The selector, then "Use" on the kept model: the kept model wins.
    sp.evaluate(select_js(first) + USE_KEPT_JS)
    assert_on(sp, kept, shared[other], f"“{name}”")
    # "Use" on the kept model is current; the selector then "Use the pretrained model"
    # (the remembered pretrained model, `other`): the pretrained one wins.
    sp.evaluate(select_js(first) + USE_PRETRAINED_JS)
    assert_on(sp, other, shared[other], f"the pretrained {name.upper()}")
    # "Use" on the kept model, then the selector: the selector's choice wins.
    sp.evaluate(USE_KEPT_JS + select_js(first))
    assert_on(sp, first, shared[first], f"the pretrained {first.split(':')[1].upper()}")
    assert sp.get_attribute('[data-testid="current-model"]', "data-kind") == "pretrained"
    assert not sp.errors, sp.errors
