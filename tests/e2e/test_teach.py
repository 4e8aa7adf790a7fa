"""Teach it your handwriting, in real Chromium: correcting a drawing (teach-0..9), the
examples list (thumbnails, delete, reload), export -> CLI finetune, import and bad files,
refusals, storage that fails, the phone layout, and personalisation end to end: styles
the pad's model misreads read right after three corrections each and "Adapt".

The first tests share one page (module fixture `tp`), in order.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SHAPES, draw_mouse, open_page, draw_touch, seq, wait_next_result, wait_ready
from handwriting import STYLES, jitter

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "py" / "src"))
from digitnet.examples import load_examples, save_examples  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ADAPT_TIMEOUT = 600_000


@pytest.fixture(scope="module")
def tp(browser, base_url):
    page = open_page(browser, base_url, "[data-testid=adapt]", accept_downloads=True)
    # The pretrained MLP adapts in seconds; the CNN (the default) takes minutes in a browser.
    page.select_option('[data-testid="model-select"]', "pretrained:mlp")
    page.wait_for_function("() => document.documentElement.dataset.padModel === 'pretrained:mlp'")
    yield page
    page.context.close()


def draw(page, strokes, touch=False) -> str:
    """Clear, draw, wait for the prediction; return the predicted digit."""
    page.evaluate("document.querySelector('[data-testid=pad]').scrollIntoView({block: 'center'})")
    page.get_by_role("button", name="Clear").click()
    before = seq(page)
    (draw_touch if touch else draw_mouse)(page, strokes)
    wait_next_result(page, before, strokes=len(strokes))
    return page.get_by_test_id("prediction").inner_text().strip()


def n_examples(page) -> int:
    return page.locator('[data-testid="example"]').count()


def message(page, testid="examples-message") -> str:
    return page.get_by_test_id(testid).inner_text().strip()


def teach(page, digit):
    before = n_examples(page)
    page.get_by_test_id(f"teach-{digit}").click()
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=example]').length > {before}")


def adapt(page, timeout=ADAPT_TIMEOUT) -> dict:
    """Press Adapt; wait until it is over; return the outcome as the page shows it."""
    page.evaluate("""() => {
      document.querySelector('[data-testid=examples-message]').textContent = '';
      window.sawTraining = false;
      new MutationObserver(() => {
        if (document.documentElement.dataset.state === 'training') window.sawTraining = true;
      }).observe(document.documentElement, {attributes: true, attributeFilter: ['data-state']});
    }""")
    page.get_by_test_id("adapt").click()
    page.wait_for_function(
        "() => /The pad now uses|Could not adapt|no examples|All your examples/"
        ".test(document.querySelector('[data-testid=examples-message]').textContent)"
        " && document.documentElement.dataset.state === 'ready'", timeout=timeout)
    res = page.get_by_test_id("adapt-result")
    return {"message": message(page), "pad_model": page.get_attribute("html", "data-pad-model"),
            "saw_training": page.evaluate("window.sawTraining"),
            "accuracy": float(res.get_attribute("data-accuracy") or "nan"),
            "source_accuracy": float(res.get_attribute("data-source-accuracy") or "nan"),
            "seconds": float(res.get_attribute("data-seconds") or "nan"), "kind": res.get_attribute("data-kind")}


def examples_file(tmp_path, name, **arrays) -> Path:
    path = tmp_path / name
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def import_file(page, path):
    page.evaluate("document.querySelector('[data-testid=examples-message]').textContent = ''")
    page.get_by_test_id("examples-import").set_input_files(str(path))
    page.wait_for_function("() => document.querySelector('[data-testid=examples-message]').textContent")
    return message(page)


# ---- refusals before there is anything ---------------------------------------------------------


def test_correcting_with_no_drawing_says_so(tp):
    tp.get_by_role("button", name="Clear").click()
    tp.get_by_test_id("teach-3").click()
    assert "Draw a digit first" in message(tp, "teach-message")
    assert n_examples(tp) == 0


def test_adapting_with_zero_examples_is_refused(tp):
    out = adapt(tp)
    assert "There are no examples yet" in out["message"] and not out["saw_training"]
    assert tp.get_attribute("html", "data-pad-model") == "pretrained:mlp"


# ---- correcting, the list, reload --------------------------------------------------------------


def test_correcting_keeps_the_28x28_input(tp):
    draw(tp, SHAPES[7])
    tp.get_by_test_id("teach-7").focus()
    tp.keyboard.press("Enter")            # keyboard-accessible
    tp.wait_for_function("() => document.querySelectorAll('[data-testid=example]').length === 1")
    item = tp.locator('[data-testid="example"]').first
    assert item.get_attribute("data-label") == "7"
    assert "Kept as a 7" in message(tp, "teach-message")
    # The thumbnail is exactly the 28x28 image the network classified.
    same = tp.evaluate("""() => {
      const grey = (c) => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data).filter((_, i) => i % 4 === 0);
      const a = grey(document.querySelector('[data-testid=preview]'));
      const b = grey(document.querySelector('[data-testid=example] canvas'));
      return a.some((v) => v > 0) && a.every((v, i) => v === b[i]);
    }""")
    assert same


def test_adapting_with_one_digit_is_refused(tp):
    out = adapt(tp)
    assert "All your examples are 7s" in out["message"]
    assert out["pad_model"] == "pretrained:mlp"


def labels(page) -> list[str]:
    return [e.get_attribute("data-label") for e in page.locator('[data-testid="example"]').all()]


def test_delete_and_examples_survive_a_reload(tp):
    kept = labels(tp)
    draw(tp, SHAPES[1])
    teach(tp, 1)
    draw(tp, SHAPES[0])
    teach(tp, 0)
    assert labels(tp) == kept + ["1", "0"]
    tp.locator('[data-testid="example"][data-label="1"] [data-testid="example-delete"]').click()
    tp.wait_for_function(f"() => document.querySelectorAll('[data-testid=example]').length === {len(kept) + 1}")
    tp.reload()
    wait_ready(tp, enabled="[data-testid=adapt]")
    tp.wait_for_function(f"() => document.querySelectorAll('[data-testid=example]').length === {len(kept) + 1}")
    assert labels(tp) == kept + ["0"]
    for left in reversed(range(len(kept) + 1)):
        tp.locator('[data-testid="example-delete"]').first.click()
        tp.wait_for_function(f"() => document.querySelectorAll('[data-testid=example]').length === {left}")


# ---- personalisation end to end ------------------------------------------------------------------


def test_three_corrections_per_style_teach_the_pad(tp):
    """Styles the pretrained MLP misreads read right (>= 9 of 10 fresh, jittered drawings each)
    after 3 corrected drawings per style and Adapt; the test split stays within 0.5 point."""
    rng = np.random.default_rng(7)
    before = {}
    for name, (label, strokes) in STYLES.items():
        before[name] = sum(draw(tp, jitter(strokes(), rng)) == str(label) for _ in range(10))
    assert all(n <= 5 for n in before.values()), f"the pretrained model already reads these: {before}"
    for name, (label, strokes) in STYLES.items():
        for _ in range(3):
            draw(tp, jitter(strokes(), rng))
            teach(tp, label)
    assert n_examples(tp) == 9
    last_label = STYLES[list(STYLES)[-1]][0]  # the drawing still on the pad: corrected last
    before_seq = seq(tp)
    out = adapt(tp)
    assert "The pad now uses" in out["message"] and out["saw_training"], out
    assert out["pad_model"].startswith("stored:"), out
    # The corrected drawing still on the pad is classified again, now as corrected.
    wait_next_result(tp, before_seq)
    assert tp.get_by_test_id("prediction").inner_text().strip() == str(last_label)
    assert abs(out["accuracy"] - out["source_accuracy"]) <= 0.005, out
    after = {}
    for name, (label, strokes) in STYLES.items():
        after[name] = sum(draw(tp, jitter(strokes(), rng)) == str(label) for _ in range(10))
    print(f"\npersonalisation (pretrained MLP, 3 examples per style): before {before}, after {after}; "
          f"test split {out['source_accuracy']:.4f} -> {out['accuracy']:.4f}; adapt {out['seconds']:.1f} s")
    assert all(n >= 9 for n in after.values()), (before, after)
    # Kept like a trained model: listed by the pad's selector and in "Your models".
    assert tp.locator('[data-testid="saved-model"]', has_text="Adapted").count() == 1
    assert tp.locator(f'[data-testid="model-select"] option[value="{out["pad_model"]}"]').count() == 1
    assert not tp.errors, tp.errors


def test_export_is_read_by_the_cli_finetune(tp, tmp_path, dist_dir):
    draw(tp, SHAPES[7])
    teach(tp, 7)                          # at least two digits, whatever ran before
    draw(tp, SHAPES[1])
    teach(tp, 1)
    with tp.expect_download() as download:
        tp.get_by_test_id("examples-export").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    images, got = load_examples(path)
    assert got.tolist() == [int(x) for x in labels(tp)]
    assert images.shape == (len(got), 28, 28) and images.max() == 255
    env = dict(os.environ, PYTHONPATH=str(ROOT / "py" / "src"))
    proc = subprocess.run([sys.executable, "-m", "digitnet", "finetune", "--weights",
                           str(dist_dir / "models" / "mlp.npz"), "--examples", str(path),
                           "--out", str(tmp_path / "adapted.npz")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy after" in proc.stdout and (tmp_path / "adapted.npz").exists()


def test_import_adds_examples_and_bad_files_are_refused(tp, tmp_path):
    n = n_examples(tp)
    rng = np.random.default_rng(0)
    good = tmp_path / "good.npz"
    good.write_bytes(save_examples(rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), [2, 3, 4, 5]))
    assert "Imported 4 examples" in import_file(tp, good)
    assert n_examples(tp) == n + 4
    bad = {
        "corrupt.npz": None,
        "labels.npz": dict(format=np.array("digitnet-examples"), version=np.array(1),
                           images=np.zeros((2, 28, 28), np.uint8), labels=np.array([3, 12], np.uint8)),
        "size.npz": dict(format=np.array("digitnet-examples"), version=np.array(1),
                         images=np.zeros((2, 20, 20), np.uint8), labels=np.array([3, 4], np.uint8)),
    }
    reasons = {"corrupt.npz": "not a readable examples file", "labels.npz": "from 0 to 9",
               "size.npz": "28x28"}
    for name, arrays in bad.items():
        if arrays is None:
            path = tmp_path / name
            path.write_bytes(b"PK\x03\x04 this is not really a zip")
        else:
            path = examples_file(tmp_path, name, **arrays)
        text = import_file(tp, path)
        assert f"{name} could not be imported" in text and reasons[name] in text, text
        assert "unchanged" in text and n_examples(tp) == n + 4
    # The page still classifies after all that.
    assert draw(tp, SHAPES[1]) == "1"


# ---- storage that fails, phone, offline, timing --------------------------------------------------


@pytest.mark.parametrize("script, reason", [
    ("Object.defineProperty(window, 'indexedDB', {value: undefined});", "no storage"),
    ("IDBObjectStore.prototype.add = function () {"
     " throw new DOMException('The quota has been exceeded.', 'QuotaExceededError'); };", "quota"),
])
def test_examples_that_cannot_be_stored_are_kept_for_the_visit_and_said_so(browser, base_url, script, reason):
    context = browser.new_context(base_url=base_url)
    context.add_init_script(script)
    page = context.new_page()
    try:
        page.goto(base_url)
        wait_ready(page, enabled="[data-testid=adapt]")
        draw(page, SHAPES[7])
        teach(page, 7)
        text = message(page, "teach-message")
        assert "could not be kept" in text and reason in text and "this visit" in text, text
        assert page.locator('[data-testid="example"][data-unsaved="true"]').count() == 1
        draw(page, SHAPES[1])
        teach(page, 1)
        out = adapt(page)      # the examples of this visit still teach; the model is used
        assert "The pad now uses" in out["message"] and "could not be kept" in out["message"], out
        assert draw(page, SHAPES[0]) == "0"
    finally:
        context.close()


def test_phone_shows_pad_prediction_and_teach_buttons_without_scrolling(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 390, "height": 844},
                                  device_scale_factor=3, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(base_url)
        wait_ready(page)
        assert page.evaluate("window.scrollY") == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        ids = ["pad", "prediction"] + [f"teach-{d}" for d in range(10)]
        for testid in ids:
            box = page.get_by_test_id(testid).bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, (testid, box)
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (testid, box)
        assert page.get_by_test_id("teach-0").bounding_box()["height"] >= 32   # big enough to tap
        before = seq(page)
        draw_touch(page, SHAPES[7])
        wait_next_result(page, before, strokes=1)
        # A finger takes a moment to move from the pad to the buttons; Chromium's gesture
        # recogniser does not turn a touch a few milliseconds after the stroke into a click.
        page.wait_for_timeout(300)
        page.get_by_test_id("teach-7").tap()
        page.wait_for_function("() => document.querySelectorAll('[data-testid=example]').length === 1")
        assert page.evaluate("window.scrollY") == 0
    finally:
        context.close()


def test_adapt_works_offline(browser, base_url, tmp_path):
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    try:
        page.goto(base_url)
        wait_ready(page)
        page.wait_for_function("() => document.documentElement.dataset.offline === 'ready'", timeout=90_000)
        context.set_offline(True)
        page.reload()
        wait_ready(page, enabled="[data-testid=adapt]")
        draw(page, SHAPES[7])
        teach(page, 7)
        draw(page, SHAPES[0])
        teach(page, 0)
        out = adapt(page)
        assert "The pad now uses" in out["message"], out
        assert out["pad_model"].startswith("stored:")
        assert draw(page, SHAPES[1]) == "1"
    finally:
        context.close()


def thirty_examples(tmp_path) -> Path:
    from digitnet import data

    ds = data.load_bundle()
    idx = np.random.default_rng(3).choice(len(ds.y_test), 30, replace=False)
    path = tmp_path / "thirty.npz"
    path.write_bytes(save_examples((ds.x_test[idx] * 255).round().astype(np.uint8), ds.y_test[idx]))
    return path


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_adapt_time_for_30_examples(browser, base_url, tmp_path, model):
    """Wall time of Adapt for 30 examples (reported; under shared load). MLP target: 10 s."""
    if model == "cnn" and not os.environ.get("DIGITNET_MEASURE_CNN"):
        pytest.skip("the CNN's adapt takes minutes in the page: set DIGITNET_MEASURE_CNN=1")
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    try:
        page.goto(base_url)
        wait_ready(page, enabled="[data-testid=adapt]")
        page.select_option('[data-testid="model-select"]', f"pretrained:{model}")
        page.wait_for_function(f"() => document.documentElement.dataset.padModel === 'pretrained:{model}'",
                               timeout=120_000)
        assert "Imported 30 examples" in import_file(page, thirty_examples(tmp_path))
        t = time.perf_counter()
        out = adapt(page)
        wall = time.perf_counter() - t
        assert "The pad now uses" in out["message"], out
        print(f"\nadapt, 30 examples, {model.upper()}: {wall:.1f} s wall (fine-tuning {out['seconds']:.1f} s), "
              f"test split {out['source_accuracy']:.4f} -> {out['accuracy']:.4f}, "
              f"load {os.getloadavg()[0]:.1f}")
        assert abs(out["accuracy"] - out["source_accuracy"]) <= 0.005, out
    finally:
        context.close()
