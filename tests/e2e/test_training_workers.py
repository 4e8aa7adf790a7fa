"""Training split over several workers in the real page: the worker-count control, a
2-worker run end to end (charts, log, results, speed), the pad classifying meanwhile,
Stop, a training worker dying mid-run (the run ends, the old model stays, later runs use
one worker), a worker that cannot start, and the workers being released when idle.

The tests share one page (module fixture `wp`), in order."""
from __future__ import annotations

import re

import pytest

from helpers import SHAPES, probabilities, wait_ready
from test_training import (TRAIN_TIMEOUT, classify_drawing, epoch_lines, outcome, settings,
                           start_run)

WORKERS = '[data-testid="workers"]'


@pytest.fixture(scope="module")
def wp(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(base_url)
    wait_ready(page, enabled="[data-testid=train]")
    yield page
    context.close()


def live_workers(page) -> int:
    return page.evaluate("window.digitnetTrainers.clients.length")


def test_worker_count_defaults_to_what_the_device_affords(wp):
    cores = wp.evaluate("navigator.hardwareConcurrency")
    memory = wp.evaluate("navigator.deviceMemory || null")
    expected = min(4, cores)
    if memory is not None and memory <= 4:
        expected = min(expected, 2)
    if memory is not None and memory <= 2:
        expected = 1
    assert wp.input_value(WORKERS) == str(expected)
    options = wp.eval_on_selector_all(f"{WORKERS} option", "os => os.map(o => o.value)")
    assert options == [str(i) for i in range(1, max(expected, min(8, cores)) + 1)]
    assert f"{cores} core" in wp.inner_text("#t-workers-note")
    assert live_workers(wp) == 0  # workers start on the first Train, not before
    # Other devices: at most 4; at most 2 on a phone or with <= 4 GB; 1 with <= 2 GB.
    afford = wp.evaluate("""async () => {
      const { affordableWorkers } = await import('./js/training-pool.js');
      return [{hardwareConcurrency: 16, deviceMemory: 8}, {hardwareConcurrency: 8, deviceMemory: 4},
              {hardwareConcurrency: 8, userAgent: 'Mozilla/5.0 (Linux; Android 14) Mobile'},
              {hardwareConcurrency: 8, deviceMemory: 2}, {hardwareConcurrency: 3}, {}]
             .map((nav) => affordableWorkers(nav)); }""")
    assert afford == [4, 2, 2, 1, 3, 1]


def test_two_worker_run_completes_with_charts_log_and_results(wp):
    if "2" not in wp.eval_on_selector_all(f"{WORKERS} option", "os => os.map(o => o.value)"):
        pytest.skip("this device offers a single worker")
    wp.select_option(WORKERS, "2")
    settings(wp, epochs=2)
    start_run(wp)
    assert outcome(wp) == "done"
    assert wp.get_attribute("#train", "data-workers") == "2"
    assert live_workers(wp) == 2
    assert "Training on 2 workers" in wp.inner_text("#train-engine")
    lines = epoch_lines(wp)
    assert len(lines) == 2 and all(re.match(r"Epoch: \d, Loss: \d+\.\d{4}, Acc: \d+\.\d{2}", l) for l in lines)
    assert int(wp.get_attribute('[data-testid="chart-batches"]', "data-points")) >= 2
    assert wp.get_attribute('[data-testid="chart-epochs"]', "data-points") == "2"
    acc = float(wp.get_attribute('[data-testid="test-accuracy"]', "data-value"))
    assert 0.75 <= acc <= 1.0  # two epochs of the tutorial recipe (~0.83 on one worker)
    # Each worker measured its share of the test split; their sum is the whole split's.
    last_test = re.search(r"test (\d+\.\d{2})%", lines[-1])
    assert last_test and float(last_test.group(1)) == round(acc * 100, 2), (lines[-1], acc)
    speed = wp.get_by_test_id("train-speed")
    assert float(speed.get_attribute("data-value")) > 100
    assert "on 2 workers" in speed.inner_text()
    # Every worker's heap is reported with each epoch.
    heaps = wp.evaluate("window.digitnetTraining.heap.at(-1).workers")
    assert len(heaps) == 2 and all(h > 10_000_000 for h in heaps)
    assert wp.locator('[data-testid="saved-model"]').count() >= 1
    assert not wp.errors, wp.errors


def test_fewer_workers_leave_the_others_idle_for_the_next_run(wp):
    if live_workers(wp) < 2:
        pytest.skip("this device offers a single worker")
    wp.evaluate("window.digitnetTrainers.clients[1].marked = true")
    wp.select_option(WORKERS, "1")
    settings(wp, epochs=1)
    start_run(wp)
    assert outcome(wp) == "done" and wp.get_attribute("#train", "data-workers") == "1"
    assert live_workers(wp) == 2  # the second worker waits, loaded
    wp.select_option(WORKERS, "2")
    start_run(wp)
    assert outcome(wp) == "done" and wp.get_attribute("#train", "data-workers") == "2"
    assert wp.evaluate("window.digitnetTrainers.clients[1].marked === true")  # not reloaded


def test_the_pad_classifies_during_a_two_worker_run_and_stop_works(wp):
    wp.select_option(WORKERS, "2")
    settings(wp, "default", epochs=30)
    start_run(wp)
    wp.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart-batches]').dataset.points) >= 2",
        timeout=TRAIN_TIMEOUT)
    latencies = []
    for digit in (7, 1, 0, 4, 7, 1):
        assert classify_drawing(wp, SHAPES[digit]) == str(digit)
        latencies.append(float(wp.get_attribute('[data-testid="prediction"]', "data-latency-ms")))
        assert wp.evaluate("document.documentElement.dataset.state") == "training"
    print(f"\nclassification while 2 workers train: {sorted(latencies)} ms")
    wp.get_by_test_id("stop").click()
    assert outcome(wp) == "stopped"
    assert int(wp.get_attribute("#train-progress", "aria-valuenow")) < 100
    assert "Stopped" in wp.inner_text('[data-testid="train-log"]')
    assert 0 <= float(wp.get_attribute('[data-testid="test-accuracy"]', "data-value")) <= 1


def test_a_worker_dying_ends_the_run_and_keeps_the_old_model(wp):
    wp.select_option(WORKERS, "2")
    current = wp.inner_text('[data-testid="current-model"]')
    n_saved = wp.locator('[data-testid="saved-model"]').count()
    classify_drawing(wp, SHAPES[4])
    probs = probabilities(wp)
    settings(wp, "default", epochs=30)
    start_run(wp)
    wp.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart-batches]').dataset.points) >= 2",
        timeout=TRAIN_TIMEOUT)
    assert wp.evaluate("window.digitnetTrainers.kill(1)")
    assert outcome(wp) == "failed"
    error = wp.get_by_test_id("train-error").inner_text()
    assert "training worker 2 stopped unexpectedly" in error and "still in use" in error, error
    assert "one worker" in error
    assert "failed" in wp.inner_text("#train-status")
    assert wp.evaluate("document.documentElement.dataset.state") == "ready"
    assert live_workers(wp) == 0  # the survivor was waiting for its peer: ended too
    assert wp.locator('[data-testid="saved-model"]').count() == n_saved
    assert wp.inner_text('[data-testid="current-model"]') == current
    assert classify_drawing(wp, SHAPES[4]) and probabilities(wp) == probs
    # From now on one worker trains, and a run completes.
    assert wp.input_value(WORKERS) == "1"
    settings(wp, epochs=1)
    start_run(wp)
    assert outcome(wp) == "done"
    assert wp.get_attribute("#train", "data-workers") == "1"
    assert wp.locator('[data-testid="saved-model"]').count() == n_saved + 1


def test_idle_workers_are_released(wp):
    assert live_workers(wp) >= 1
    wp.evaluate("window.digitnetTrainers.idleMs = 300")
    settings(wp, epochs=1)
    start_run(wp)
    assert outcome(wp) == "done"
    wp.wait_for_function("() => window.digitnetTrainers.clients.length === 0", timeout=10_000)


def test_a_worker_that_cannot_start_ends_the_run_clearly(browser, base_url):
    context = browser.new_context(base_url=base_url, service_workers="block")
    page = context.new_page()
    try:
        page.route("**/train-worker.js", lambda route: route.fulfill(status=404, body="gone"))
        page.goto(base_url)
        wait_ready(page, enabled="[data-testid=train]")
        current = page.inner_text('[data-testid="current-model"]')
        settings(page, epochs=1)
        start_run(page)
        assert outcome(page) == "failed"
        error = page.get_by_test_id("train-error").inner_text()
        assert "could not start" in error and "still in use" in error, error
        assert page.input_value(WORKERS) == "1"
        assert page.inner_text('[data-testid="current-model"]') == current
        assert classify_drawing(page, SHAPES[7]) == "7"
    finally:
        context.close()


def test_training_workers_start_offline_from_the_cache(browser, base_url):
    """Once a run has fetched scipy (the lazily cached training packages), a reload without
    network still starts two training workers from the service worker's cache."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    try:
        page.goto(base_url)
        wait_ready(page, enabled="[data-testid=train]")
        if not page.evaluate("!!(navigator.serviceWorker && navigator.serviceWorker.controller)"):
            pytest.skip("the service worker does not control this page")
        page.wait_for_function("() => document.documentElement.dataset.offline === 'ready'", timeout=120_000)
        settings(page, epochs=1)
        start_run(page)
        assert outcome(page) == "done"
        optional = page.evaluate("fetch('build-manifest.json').then(r => r.json()).then(m => m.optional)")
        page.wait_for_function(
            """async (paths) => {
              for (const p of paths) if (!(await caches.match(new URL(p, location.href).href))) return false;
              return true;
            }""", arg=optional, timeout=60_000, polling=500)
        context.set_offline(True)
        page.reload()
        wait_ready(page, enabled="[data-testid=train]")
        options = page.eval_on_selector_all(f"{WORKERS} option", "os => os.map(o => o.value)")
        workers = "2" if "2" in options else "1"
        page.select_option(WORKERS, workers)
        settings(page, epochs=1)
        start_run(page)
        assert outcome(page) == "done"
        assert page.get_attribute("#train", "data-workers") == workers
        assert float(page.get_attribute('[data-testid="test-accuracy"]', "data-value")) > 0.6
    finally:
        context.close()
