"""Models kept in the browser when things go wrong, through the real page: storage that
cannot be opened, two tabs changing the same models, a 250-character file name on a phone,
Stop pressed while scipy is still loading. Each test checks the message, the pad's model
and the kept models, and that a drawn digit is still classified afterwards."""
from __future__ import annotations

import re

import pytest

from helpers import SHAPES, classify_drawing, page_in, probabilities

NO_STORAGE = ("IDBFactory.prototype.open = function () {"
              " throw new DOMException('Storage is disabled.', 'SecurityError'); };")
TRAIN_TIMEOUT = 120_000


def new_page(context, base_url, enabled="[data-testid=import]"):
    return page_in(context, base_url, enabled)


def draw(page, digit):
    page.evaluate("document.querySelector('[data-testid=pad]').scrollIntoView({block: 'center'})")
    return classify_drawing(page, SHAPES[digit])


def settle(page, timeout=60_000) -> str:
    """The pad's model key once no switch is in progress."""
    page.wait_for_function("() => document.documentElement.dataset.padModel !== 'switching'", timeout=timeout)
    return page.evaluate("document.documentElement.dataset.padModel")


def message(page) -> str:
    return page.inner_text("#models-message").strip()


def listed(page) -> list[tuple[str, str]]:
    """(id, name) of each model under "Your models"."""
    return [tuple(x) for x in page.evaluate("""() => [...document.querySelectorAll('[data-testid=saved-model]')]
        .map((li) => [li.dataset.id, li.querySelector('.model-name').textContent])""")]


def offered(page) -> list[tuple[str, str]]:
    """(id, text) of each kept model the selector by the pad offers."""
    return [tuple(x) for x in page.evaluate("""() => [...document.querySelectorAll('[data-testid=model-select] optgroup option')]
        .map((o) => [o.value.replace(/^stored:/, ''), o.textContent])""")]


def agree(page) -> list[tuple[str, str]]:
    """The list and the selector offer the same models under the same names; returns them."""
    page.evaluate("document.querySelector('[data-testid=model-select]').dispatchEvent(new Event('focus'))")
    page.wait_for_function("""() => {
        const list = [...document.querySelectorAll('[data-testid=saved-model]')].map((li) => li.dataset.id);
        const opts = [...document.querySelectorAll('[data-testid=model-select] optgroup option')]
          .map((o) => o.value.replace(/^stored:/, ''));
        return list.join() === opts.join();
    }""")
    items = listed(page)
    for (lid, name), (oid, text) in zip(items, offered(page)):
        assert lid == oid and re.fullmatch(re.escape(name) + r"( \(\d+\.\d%\))?", text), (name, text)
    return items


def wait_listed(page, predicate_js: str, timeout=30_000):
    """Wait until `predicate_js` (a function of the list's [id, name] pairs) holds."""
    page.wait_for_function(f"""() => ({predicate_js})([...document.querySelectorAll('[data-testid=saved-model]')]
        .map((li) => [li.dataset.id, li.querySelector('.model-name').textContent]))""", timeout=timeout)


def mlp_bytes(dist_dir) -> bytes:
    return (dist_dir / "models" / "mlp.npz").read_bytes()


def import_file(page, name: str, data: bytes) -> None:
    page.evaluate("document.querySelector('#models-message').textContent = ''")
    page.get_by_test_id("import").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    page.wait_for_function("() => /Imported|not a usable|could not/.test("
                           "document.querySelector('#models-message').textContent)", timeout=60_000)


def _tutorial_recipe(page) -> str:
    return page.evaluate("""async () => {
        const m = await (await fetch('build-manifest.json')).json();
        return Object.entries(m.recipes.recipes.mlp).find(([, r]) => r.optimizer === 'sgd')[0];
    }""")


def outcome(page, timeout=TRAIN_TIMEOUT) -> str:
    page.wait_for_function(
        "() => document.querySelector('#train').dataset.training === 'idle'"
        " && document.querySelector('#train').dataset.outcome", timeout=timeout)
    return page.get_attribute("#train", "data-outcome")


def start_run(page, epochs=3):
    page.select_option("#t-preset", _tutorial_recipe(page))
    page.fill("#t-epochs", str(epochs))
    page.evaluate("document.querySelector('#train').dataset.outcome = ''")
    page.get_by_test_id("train").click()


# ---- storage that cannot be opened ---------------------------------------------------------------


def test_without_storage_a_trained_model_is_listed_and_choosable_for_this_page(browser, base_url, dist_dir):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.add_init_script(NO_STORAGE)
    try:
        page = new_page(context, base_url, enabled="[data-testid=train]")
        pretrained = settle(page)
        assert draw(page, 7) == "7"
        probs = probabilities(page)
        assert listed(page) == []

        start_run(page)
        page.wait_for_function(
            "() => Number(document.querySelector('[data-testid=chart-batches]').dataset.points) >= 1",
            timeout=TRAIN_TIMEOUT)
        page.get_by_test_id("stop").click()
        assert outcome(page) == "stopped"
        page.wait_for_function("() => document.querySelectorAll('[data-testid=saved-model]').length === 1")
        [(model_id, name)] = agree(page)
        assert int(model_id) < 0 and "stopped" in name
        assert message(page) == (f"“{name}” could not be saved in the browser (the browser's storage could "
                                 "not be opened (Storage is disabled.)), so it is in Your models only until "
                                 "this page is closed.")
        assert page.get_attribute("#models-message", "data-kind") == "error"
        item = page.locator('[data-testid="saved-model"]')
        assert item.get_attribute("data-unsaved") == "true"
        assert "not saved: kept until this page is closed" in item.locator(".model-meta").inner_text()
        # Kept is not used: the pad's model is unchanged.
        assert settle(page) == pretrained
        assert draw(page, 7) == "7" and probabilities(page) == probs

        # Chosen in the selector, left, and chosen again: it is still there each time.
        select = page.get_by_test_id("model-select")
        for _ in range(2):
            select.select_option(f"stored:{model_id}")
            assert settle(page) == f"stored:{model_id}"
            assert page.inner_text('[data-testid="current-model"]') == f"“{name}”"
            digit = draw(page, 1)
            assert len(digit) == 1 and digit in "0123456789"
            assert abs(sum(probabilities(page)) - 1) < 0.01
            select.select_option(pretrained)
            assert settle(page) == pretrained
            assert agree(page) == [(model_id, name)]
        # "Use" in the list works too, and the pretrained model answers as before.
        item.locator("[data-action=use]").click()
        assert settle(page) == f"stored:{model_id}"
        page.get_by_test_id("use-pretrained").click()
        assert settle(page) == pretrained
        assert draw(page, 7) == "7" and probabilities(page) == probs
        assert agree(page) == [(model_id, name)]
        assert not page.errors, page.errors
    finally:
        context.close()


def test_without_storage_an_imported_model_is_used_and_listed_for_this_page(browser, base_url, dist_dir):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.add_init_script(NO_STORAGE)
    try:
        page = new_page(context, base_url)
        pretrained = settle(page)
        import_file(page, "mine.npz", mlp_bytes(dist_dir))
        assert re.fullmatch(r"Imported mine\.npz \(\d+\.\d% on the test digits\); the pad now uses it\. "
                            r"It could not be saved in the browser \(.+\), so it is in Your models only "
                            r"until this page is closed\.", message(page)), message(page)
        [(model_id, name)] = agree(page)
        assert name == "mine" and int(model_id) < 0
        assert settle(page) == f"stored:{model_id}"
        assert draw(page, 7) == "7"
        page.get_by_test_id("model-select").select_option(pretrained)
        assert settle(page) == pretrained
        page.get_by_test_id("model-select").select_option(f"stored:{model_id}")
        assert settle(page) == f"stored:{model_id}"
        assert draw(page, 4) == "4"
        assert not page.errors, page.errors
    finally:
        context.close()


# ---- two tabs ------------------------------------------------------------------------------------


def test_two_tabs_see_each_others_model_changes(browser, base_url, dist_dir):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    try:
        a = new_page(context, base_url)
        b = new_page(context, base_url)
        pretrained = settle(b)
        assert agree(a) == agree(b) == []
        assert draw(b, 7) == "7"
        probs = probabilities(b)

        # Import in A: B lists and offers it; B's pad keeps its model.
        import_file(a, "shared.npz", mlp_bytes(dist_dir))
        assert message(a).startswith("Imported shared.npz")
        [(model_id, _)] = agree(a)
        wait_listed(b, f"(items) => items.length === 1 && items[0][0] === '{model_id}'")
        assert agree(b) == [(model_id, "shared")]
        assert settle(b) == pretrained
        assert draw(b, 7) == "7" and probabilities(b) == probs

        # Rename in A: B shows the new name everywhere, and no old one.
        def rename(page, old, new):
            page.locator('[data-testid="saved-model"]', has_text=old).locator("[data-action=rename]").click()
            page.get_by_test_id("rename-input").fill(new)
            page.get_by_test_id("rename-input").press("Enter")

        rename(a, "shared", "renamed in A")
        wait_listed(b, "(items) => items.length === 1 && items[0][1] === 'renamed in A'")
        assert agree(b) == [(model_id, "renamed in A")]

        # B uses it; A renames it again: B's "the pad uses" line follows.
        b.get_by_test_id("model-select").select_option(f"stored:{model_id}")
        assert settle(b) == f"stored:{model_id}"
        assert b.inner_text('[data-testid="current-model"]') == "“renamed in A”"
        rename(a, "renamed in A", "second name")
        b.wait_for_function("() => document.querySelector('[data-testid=current-model]').textContent"
                            " === '“second name”'")
        assert agree(b) == [(model_id, "second name")]
        assert draw(b, 7) == "7"

        # A deletes it while B uses it: B drops it and goes back to the pretrained model.
        a.locator('[data-testid="saved-model"]', has_text="second name").locator("[data-action=delete]").click()
        wait_listed(b, "(items) => items.length === 0")
        assert settle(b) == pretrained
        b.wait_for_function("() => /deleted in another tab/.test(document.querySelector('#models-message').textContent)")
        assert message(b) == "“second name” was deleted in another tab; the pad is back on the pretrained model."
        assert agree(b) == [] and agree(a) == []
        assert draw(b, 7) == "7" and probabilities(b) == probs

        # And the other way round: an import in B shows up in A, whose pad keeps its model.
        a_model = settle(a)
        import_file(b, "from-b.npz", mlp_bytes(dist_dir))
        [(b_id, _)] = agree(b)
        wait_listed(a, f"(items) => items.length === 1 && items[0][0] === '{b_id}'")
        assert agree(a) == [(b_id, "from-b")]
        assert settle(a) == a_model
        assert draw(a, 4) == "4"
        assert not a.errors and not b.errors, (a.errors, b.errors)
    finally:
        context.close()


# ---- a long file name on a phone -----------------------------------------------------------------


def test_a_250_character_file_name_does_not_widen_a_phone_page(browser, base_url, dist_dir):
    context = browser.new_context(base_url=base_url, viewport={"width": 390, "height": 844},
                                  device_scale_factor=3, is_mobile=True, has_touch=True)
    try:
        page = new_page(context, base_url)
        width = "document.documentElement.scrollWidth"
        assert page.evaluate(width) <= 390
        pretrained = settle(page)
        long_name = "handwriting-model-" + "x" * 228 + ".npz"
        assert len(long_name) == 250

        # Refused: the message names the file, shortened; nothing changes.
        import_file(page, long_name, b"not a model at all" * 10)
        text = message(page)
        assert text.endswith("Nothing was changed.") and "is not a usable digitnet model" in text
        assert "x" * 80 not in text and "handwriting-model-" in text
        assert page.evaluate(width) <= 390
        assert settle(page) == pretrained and listed(page) == []

        # Accepted: listed, offered and named, shortened to 80 characters.
        import_file(page, long_name, mlp_bytes(dist_dir))
        assert message(page).startswith("Imported handwriting-model-")
        [(model_id, name)] = agree(page)
        assert len(name) == 80 and name.startswith("handwriting-model-xxx") and name.endswith("…")
        assert settle(page) == f"stored:{model_id}"
        assert page.inner_text('[data-testid="current-model"]') == f"“{name}”"
        for sel in ["#models-message", '[data-testid="current-model"]', '[data-testid="model-select"]',
                    '[data-testid="saved-model"]']:
            box = page.locator(sel).first.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (sel, box)
        assert page.evaluate(width) <= 390
        assert draw(page, 7) == "7"
        assert page.evaluate(width) <= 390
        assert not page.errors, page.errors
    finally:
        context.close()


# ---- Stop while scipy loads ------------------------------------------------------------------------


def test_stop_while_scipy_loads_keeps_no_model_and_the_previous_one_stays(browser, base_url):
    # No service worker, so the page's routes see the worker's package downloads.
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900},
                                  service_workers="block")
    held, holding = [], [True]

    def hold(route):
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    context.route(re.compile(r"/pyodide/(scipy|openblas)[^/]*$"), hold)
    try:
        page = new_page(context, base_url, enabled="[data-testid=train]")
        pretrained = settle(page)
        label = page.inner_text('[data-testid="current-model"]')
        assert draw(page, 7) == "7"
        probs = probabilities(page)
        start_run(page, epochs=1)
        page.wait_for_function("() => /Starting .*training worker/.test("
                               "document.querySelector('#train-status').textContent)")
        for _ in range(600):                    # the training workers boot Python first
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "scipy's download was not held"
        page.get_by_test_id("stop").click()
        holding[0] = False                      # scipy arrives after Stop, for every worker
        for route in held:
            route.continue_()
        assert outcome(page) == "stopped"
        status = page.inner_text("#train-status")
        assert label == "the pretrained CNN"
        assert status == f"Stopped before training began, so no model was made; the pad still uses {label}."
        assert page.get_attribute("#train-status", "data-kind") == "info"
        assert listed(page) == [] and agree(page) == []
        assert page.get_by_test_id("use-trained").is_hidden()
        assert page.get_by_test_id("test-accuracy").is_hidden() or \
            not page.get_attribute('[data-testid="test-accuracy"]', "data-value")
        assert settle(page) == pretrained
        assert draw(page, 7) == "7" and probabilities(page) == probs
        assert not page.errors, page.errors
    finally:
        context.close()
