"""Training in the page, driven in real Chromium: settings validation, a short run end to
end, Stop, divergence, models kept in IndexedDB across a reload, export -> CPython
evaluate, export -> import round trip, and bad imports.

The tests share one page (module fixture `tp`), in order: a run trained by one test is
used by the next ones, and each checks the page still classifies after what came before.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SHAPES, probabilities, wait_ready
from helpers import classify_drawing as _classify_drawing

ROOT = Path(__file__).resolve().parents[2]
TRAIN_TIMEOUT = 120_000
shared: dict = {}


def _manifest() -> dict:
    return json.loads((ROOT / "dist" / "build-manifest.json").read_text())


def _tutorial_recipe() -> str:
    """The MLP's plain-SGD recipe, whatever the build names it."""
    mlp = _manifest()["recipes"]["recipes"]["mlp"]
    return next(name for name, r in mlp.items() if r["optimizer"] == "sgd")


def _wait_ready(page):
    wait_ready(page, enabled="[data-testid=train]")


@pytest.fixture(scope="module")
def tp(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(base_url)
    _wait_ready(page)
    yield page
    context.close()


def settings(page, recipe=None, **fields):
    """Choose `recipe` (default: the tutorial recipe), then type the given fields."""
    page.select_option("#t-preset", recipe or _tutorial_recipe())
    ids = {"epochs": "#t-epochs", "batch_size": "#t-batch", "lr": "#t-lr"}
    for name, value in fields.items():
        if name == "optimizer":
            page.select_option("#t-optimizer", value)
        else:
            page.fill(ids[name], str(value))


def outcome(page, timeout=TRAIN_TIMEOUT):
    """Wait for the run to finish; return the panel's outcome (done/stopped/diverged)."""
    page.wait_for_function(
        "() => document.querySelector('#train').dataset.training === 'idle'"
        " && document.querySelector('#train').dataset.outcome", timeout=timeout)
    return page.get_attribute("#train", "data-outcome")


def start_run(page):
    page.evaluate("document.querySelector('#train').dataset.outcome = ''")
    page.get_by_test_id("train").click()
    page.wait_for_function("document.querySelector('#train').dataset.training === 'running'"
                           " || document.querySelector('#train').dataset.outcome")


def epoch_lines(page):
    return [l for l in page.inner_text('[data-testid="train-log"]').splitlines() if l.startswith("Epoch:")]


def classify_drawing(page, strokes):
    """helpers.classify_drawing with the pad scrolled into view first (the panel is below it)."""
    page.evaluate("document.querySelector('[data-testid=pad]').scrollIntoView({block: 'center'})")
    return _classify_drawing(page, strokes)


def saved(page, text):
    return page.locator('[data-testid="saved-model"]', has_text=text)


def test_invalid_inputs_are_refused(tp):
    train = tp.get_by_test_id("train")
    assert train.is_enabled()
    spec = _manifest()["recipes"]
    limits = spec["limits"]
    cases = [("#t-epochs", ["0", "-3", "1.5", "abc", "", str(limits["epochs"]["max"] + 1)]),
             ("#t-batch", ["0", str(spec["train_size"] + 1), "12x"]),
             ("#t-lr", ["0", "-0.1", "11", "abc", ""])]
    for field, values in cases:
        for value in values:
            settings(tp, "default")
            tp.fill(field, value)
            assert train.is_disabled(), f"{field}={value!r} accepted"
            message = tp.inner_text(f"{field}-error")
            assert message.strip(), f"no message next to {field} for {value!r}"
            assert tp.get_attribute(field, "aria-invalid") == "true"
    settings(tp, "default")  # the recipe refills every field with valid values
    assert train.is_enabled()
    assert all(not tp.inner_text(f"{f}-error").strip() for f, _ in cases)
    default = spec["recipes"]["mlp"]["default"]
    assert float(tp.input_value("#t-lr")) == default["lr"]
    assert int(tp.input_value("#t-epochs")) == default["epochs"]
    assert int(tp.input_value("#t-batch")) == default["batch_size"]
    assert tp.input_value("#t-optimizer") == default["optimizer"]
    # The recipe choices are the build's, for the chosen model.
    names = tp.eval_on_selector_all("#t-preset option", "os => os.map(o => o.value)")
    assert sorted(names) == sorted(spec["recipes"]["mlp"])


def test_train_one_epoch_end_to_end(tp):
    settings(tp, epochs=1)
    start_run(tp)
    assert outcome(tp) == "done"
    assert tp.get_attribute("#train-progress", "aria-valuenow") == "100"
    assert tp.get_attribute("#train-progress", "role") == "progressbar"
    lines = epoch_lines(tp)
    assert len(lines) == 1 and re.match(r"Epoch: 0, Loss: \d+\.\d{4}, Acc: \d+\.\d{2}", lines[0]), lines
    # Charts: points every few batches, one per epoch (Chart.js loaded lazily).
    assert int(tp.get_attribute('[data-testid="chart-batches"]', "data-points")) >= 2
    assert tp.get_attribute('[data-testid="chart-epochs"]', "data-points") == "1"
    tp.wait_for_function("() => !!window.Chart")
    acc = float(tp.get_attribute('[data-testid="test-accuracy"]', "data-value"))
    assert 0.6 <= acc <= 1.0  # one epoch of the tutorial recipe on 8,000 digits (~0.77)
    assert tp.locator("table.confusion tr").count() == 11
    assert tp.locator("#mistakes li").count() > 0
    assert tp.evaluate("document.documentElement.dataset.state") == "ready"
    assert "examples/s" in tp.inner_text("#train-status")
    assert saved(tp, f"{_tutorial_recipe()} · 1 epoch").count() == 1
    shared["tutorial_accuracy"] = acc
    assert not tp.errors


def test_training_packages_are_cached_on_first_use(tp):
    """scipy + openblas (optional, not precached) are kept by the service worker once a
    training run has fetched them, so training works offline afterwards too."""
    if not tp.evaluate("!!(navigator.serviceWorker && navigator.serviceWorker.controller)"):
        pytest.skip("the service worker does not control this page")
    optional = tp.evaluate("fetch('build-manifest.json').then(r => r.json()).then(m => m.optional)")
    assert any("scipy" in path for path in optional)
    tp.wait_for_function(
        """async (paths) => {
          for (const p of paths) if (!(await caches.match(new URL(p, location.href).href))) return false;
          return true;
        }""", arg=optional, timeout=30_000, polling=500)
    assert tp.get_attribute("#train", "data-matmul") == "sgemm"


def test_stop_mid_run_keeps_a_usable_model_and_the_pad_works_meanwhile(tp):
    settings(tp, "default", epochs=30, batch_size=16)
    start_run(tp)
    tp.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart-batches]').dataset.points) >= 2")
    # Drawing and classifying keep working while it trains (pretrained model still in use).
    assert tp.evaluate("document.documentElement.dataset.state") == "training"
    assert classify_drawing(tp, SHAPES[7]) == "7"
    assert tp.evaluate("document.documentElement.dataset.state") == "training"
    tp.get_by_test_id("stop").click()
    assert outcome(tp) == "stopped"
    assert int(tp.get_attribute("#train-progress", "aria-valuenow")) < 100
    assert "Stopped" in tp.inner_text('[data-testid="train-log"]')
    assert 0 <= float(tp.get_attribute('[data-testid="test-accuracy"]', "data-value")) <= 1
    tp.get_by_test_id("use-trained").click()
    tp.wait_for_function("() => document.querySelector('[data-testid=current-model]').dataset.kind === 'stored'")
    assert "stopped" in tp.inner_text('[data-testid="current-model"]')
    digit = classify_drawing(tp, SHAPES[1])
    assert digit in "0123456789" and len(digit) == 1
    assert abs(sum(probabilities(tp)) - 1) < 0.01
    # The pretrained model is one click away.
    tp.get_by_test_id("use-pretrained").click()
    tp.wait_for_function("() => document.querySelector('[data-testid=current-model]').dataset.kind === 'pretrained'")
    assert classify_drawing(tp, SHAPES[7]) == "7"


def test_divergence_is_caught_and_the_previous_model_stays(tp):
    before = classify_drawing(tp, SHAPES[4])
    probs = probabilities(tp)
    n_saved = tp.locator('[data-testid="saved-model"]').count()
    settings(tp, epochs=1, lr=9, optimizer="sgd")
    start_run(tp)
    assert outcome(tp) == "diverged"
    error = tp.get_by_test_id("train-error")
    assert error.is_visible()
    text = error.inner_text()
    in_use = tp.inner_text('[data-testid="current-model"]')
    assert re.fullmatch(r"Training diverged at epoch 1, batch \d+ \(the loss stopped being a finite number\), "
                        r"so this run's network was discarded and the pad still uses "
                        + re.escape(in_use) + r"; try a smaller learning rate\.", text), text
    assert "keeps its last weights" not in text   # nothing of the run is kept, so nothing says so
    assert tp.locator('[data-testid="saved-model"]').count() == n_saved  # nothing saved
    assert tp.get_by_test_id("use-trained").is_hidden()  # nothing new to use
    assert tp.get_attribute('[data-testid="current-model"]', "data-kind") == "pretrained"
    assert classify_drawing(tp, SHAPES[4]) == before
    assert probabilities(tp) == probs


def test_export_evaluates_in_cpython_and_imports_back_identically(tp, tmp_path):
    item = saved(tp, f"{_tutorial_recipe()} · 1 epoch").first
    item.get_by_role("button", name=re.compile("^Use")).click()
    tp.wait_for_function("() => document.querySelector('[data-testid=current-model]').dataset.kind === 'stored'")
    classify_drawing(tp, SHAPES[7])
    trained_probs = probabilities(tp)
    with tp.expect_download() as download:
        item.get_by_role("button", name=re.compile("^Export")).click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.suffix == ".npz" and path.stat().st_size > 100_000
    # The CLI evaluates the browser-trained file on the same 2,000 test digits.
    env = dict(os.environ, PYTHONPATH=str(ROOT / "py" / "src"))
    proc = subprocess.run([sys.executable, "-m", "digitnet", "evaluate", "--weights", str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("accuracy: ")
    assert abs(float(last.split()[-1]) - shared["tutorial_accuracy"]) < 1e-4
    # Back to the pretrained model, then import the exported file: same predictions.
    tp.get_by_test_id("use-pretrained").click()
    tp.wait_for_function("() => document.querySelector('[data-testid=current-model]').dataset.kind === 'pretrained'")
    classify_drawing(tp, SHAPES[7])
    assert probabilities(tp) != trained_probs
    n_saved = tp.locator('[data-testid="saved-model"]').count()
    tp.get_by_test_id("import").set_input_files(str(path))
    tp.wait_for_function("() => /Imported/.test(document.querySelector('#models-message').textContent)")
    assert tp.get_attribute('[data-testid="current-model"]', "data-kind") == "stored"
    tp.wait_for_function(f"() => document.querySelectorAll('[data-testid=saved-model]').length === {n_saved + 1}")
    classify_drawing(tp, SHAPES[7])
    assert probabilities(tp) == trained_probs
    shared["imported_probs"] = trained_probs


def test_a_cli_trained_model_imports(tp, dist_dir):
    """dist/models/mlp.npz was trained by `python3 -m digitnet train`: it imports and
    classifies exactly like the pretrained MLP the page loads from the same file."""
    name = "mlp"
    tp.select_option('[data-testid="model-select"]', "pretrained:mlp")
    tp.wait_for_function("() => document.documentElement.dataset.padModel === 'pretrained:mlp'")
    classify_drawing(tp, SHAPES[4])
    pretrained = probabilities(tp)
    tp.get_by_test_id("import").set_input_files(str(dist_dir / "models" / f"{name}.npz"))
    tp.wait_for_function(f"() => /Imported {name}.npz/.test(document.querySelector('#models-message').textContent)")
    shown = re.search(r"\((\d+\.\d)% on the test digits\)", tp.inner_text("#models-message"))
    assert shown and float(shown.group(1)) >= 96, tp.inner_text("#models-message")
    assert tp.get_attribute('[data-testid="current-model"]', "data-kind") == "stored"
    classify_drawing(tp, SHAPES[4])
    assert probabilities(tp) == pretrained
    # Keep the list as the later tests expect it.
    imported = tp.locator('[data-testid="saved-model"]').filter(
        has=tp.locator(".model-name", has_text=re.compile(f"^{name}$")))
    assert imported.count() == 1
    imported.get_by_role("button", name=re.compile("^Delete")).click()
    tp.wait_for_function("() => document.querySelector('[data-testid=current-model]').dataset.kind === 'pretrained'")
    # The list re-renders on its own schedule: wait for it, or the next test counts a stale list.
    tp.wait_for_function("""(name) => ![...document.querySelectorAll('[data-testid=saved-model] .model-name')]
                                    .some((el) => el.textContent.trim() === name)""", arg=name)


@pytest.mark.parametrize("name, payload", [
    ("truncated.npz", "truncated"),
    ("photo.npz", b"\x89PNG\r\n\x1a\n" + bytes(200)),
    ("other.npz", "foreign-npz"),
])
def test_bad_import_is_refused_and_nothing_is_replaced(tp, tmp_path, name, payload):
    import io

    import numpy as np

    if payload == "truncated":
        full = (ROOT / "dist" / "models" / "mlp.npz").read_bytes()
        payload = full[: len(full) // 3]
    elif payload == "foreign-npz":
        buf = io.BytesIO()
        np.savez(buf, weights=np.zeros((3, 3)))
        payload = buf.getvalue()
    current = tp.inner_text('[data-testid="current-model"]')
    n_saved = tp.locator('[data-testid="saved-model"]').count()
    classify_drawing(tp, SHAPES[7])
    probs = probabilities(tp)
    tp.get_by_test_id("import").set_input_files(
        {"name": name, "mimeType": "application/octet-stream", "buffer": payload})
    tp.wait_for_function("() => document.querySelector('#models-message').dataset.kind === 'error'")
    message = tp.inner_text("#models-message")
    assert name in message and "Nothing was changed" in message
    assert tp.inner_text('[data-testid="current-model"]') == current
    assert tp.locator('[data-testid="saved-model"]').count() == n_saved
    classify_drawing(tp, SHAPES[7])
    assert probabilities(tp) == probs


def test_trained_models_survive_a_reload(tp):
    names = tp.locator('[data-testid="saved-model"] .model-name').all_inner_texts()
    assert len(names) >= 3
    tp.reload()
    _wait_ready(tp)
    tp.wait_for_function(f"() => document.querySelectorAll('[data-testid=saved-model]').length === {len(names)}")
    assert tp.locator('[data-testid="saved-model"] .model-name').all_inner_texts() == names
    # After a reload the pad starts on the pretrained model; a kept model is one click away.
    assert tp.get_attribute('[data-testid="current-model"]', "data-kind") == "pretrained"
    saved(tp, f"{_tutorial_recipe()} · 1 epoch").first.get_by_role("button", name=re.compile("^Use")).click()
    tp.wait_for_function("() => document.querySelector('[data-testid=current-model]').dataset.kind === 'stored'")
    classify_drawing(tp, SHAPES[7])
    assert probabilities(tp) == shared["imported_probs"]


def test_rename_and_delete(tp):
    item = saved(tp, "stopped").first
    item.get_by_role("button", name=re.compile("^Rename")).click()
    field = tp.get_by_test_id("rename-input")
    field.fill("my first stop")
    field.press("Enter")
    tp.wait_for_function("() => [...document.querySelectorAll('.model-name')].some(e => e.textContent === 'my first stop')")
    n = tp.locator('[data-testid="saved-model"]').count()
    saved(tp, "my first stop").get_by_role("button", name=re.compile("^Delete")).click()
    tp.wait_for_function(f"() => document.querySelectorAll('[data-testid=saved-model]').length === {n - 1}")
    tp.reload()
    _wait_ready(tp)
    tp.wait_for_function(f"() => document.querySelectorAll('[data-testid=saved-model]').length === {n - 1}")
    assert saved(tp, "my first stop").count() == 0
