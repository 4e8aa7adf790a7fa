"""The page, driven in real Chromium: load, draw, upload, gallery, offline, phone, origin.

Most tests share one loaded page (module fixture `app`): loading Pyodide takes seconds,
and every later test also checks that the page keeps working after what came before.
The offline and phone tests need their own browser contexts.
"""
from __future__ import annotations

import json
import time
import urllib.parse

import numpy as np
import pytest

from helpers import (READY_TIMEOUT, SHAPES, classify_drawing, draw_mouse, png_bytes,
                     probabilities, seq, show_gallery, wait_next_result, wait_ready)

def _record(page, recorder):
    """page.requests: every request URL (page events + the server's log incl. workers)."""
    page.requests = []
    page.errors = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    with recorder.lock:
        recorder.sinks.append(page.requests)


def _unrecord(page, recorder):
    with recorder.lock:
        if page.requests in recorder.sinks:
            recorder.sinks.remove(page.requests)


def _offsite(requests, base_url):
    origin = urllib.parse.urlsplit(base_url)[:2]
    return [u for u in requests
            if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and urllib.parse.urlsplit(u)[:2] != origin]


@pytest.fixture(scope="module")
def app(browser, base_url, recorder):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _record(page, recorder)
    page.goto(base_url)
    wait_ready(page)
    yield page
    _unrecord(page, recorder)
    context.close()


@pytest.fixture(scope="module")
def model_and_data(dist_dir):
    """The pretrained model the page uses, and the bundled test split, in CPython."""
    import digitnet
    from digitnet import data

    return digitnet.load(dist_dir / "models" / f"{_default_model(dist_dir)}.npz"), data.load_bundle()


def _default_model(dist_dir) -> str:
    """The pretrained model the pad starts on (build-manifest.json)."""
    return json.loads((dist_dir / "build-manifest.json").read_text())["default_model"]


# ---- loading ---------------------------------------------------------------------------


def test_loads_to_ready_with_every_stage_done(app):
    assert app.evaluate("document.documentElement.dataset.state") == "ready"
    stages = app.locator("#stages li")
    assert stages.count() >= 4
    for i in range(stages.count()):
        assert stages.nth(i).get_attribute("data-status") == "done"
    assert "Ready" in app.inner_text("#status-text")
    assert app.locator("#error").is_hidden()
    assert not app.errors, app.errors


def test_the_worker_reports_the_pyodide_it_runs(app, dist_dir):
    """What the benchmark's report names: the pad worker's Pyodide, Python and numpy, the
    versions the site ships (its pyodide-lock.json)."""
    worker = next(w for w in app.workers if urllib.parse.urlsplit(w.url).path.endswith("/worker.js"))
    lock = json.loads((dist_dir / "pyodide" / "pyodide-lock.json").read_text())
    assert worker.evaluate("() => self.PyRuntime.versions()") == {
        "version": lock["info"]["version"], "python": lock["info"]["python"],
        "numpy": lock["packages"]["numpy"]["version"]}


def test_blank_pad_gives_no_prediction(app):
    assert app.get_by_test_id("prediction").inner_text().strip() == ""
    assert "Draw a digit" in app.inner_text("#verdict-text")
    assert probabilities(app) == [0.0] * 10
    assert app.get_by_test_id("preview").get_attribute("data-empty") == "true"


# ---- drawing -----------------------------------------------------------------------------


@pytest.mark.parametrize("digit", [0, 1, 7, 4])  # the 4 has two strokes
def test_mouse_drawn_digit_is_classified(app, digit):
    assert classify_drawing(app, SHAPES[digit]) == str(digit)
    probs = probabilities(app)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert abs(sum(probs) - 1.0) < 0.01
    assert int(np.argmax(probs)) == digit
    assert app.get_by_test_id("preview").get_attribute("data-empty") == "false"
    # The 28x28 preview holds real ink, roughly centred as MNIST digits are.
    ink = app.evaluate("""() => {
      const d = document.querySelector('[data-testid="preview"]').getContext('2d').getImageData(0, 0, 28, 28).data;
      let s = 0, sx = 0, sy = 0;
      for (let i = 0; i < 784; i++) { const v = d[4 * i]; s += v; sx += v * (i % 28); sy += v * Math.floor(i / 28); }
      return [s / 255, sx / s, sy / s];
    }""")
    assert ink[0] > 30 and 10 < ink[1] < 17 and 10 < ink[2] < 17, ink
    latency = float(app.get_by_test_id("prediction").get_attribute("data-latency-ms"))
    assert 0 <= latency < 5000


def _preview(page) -> np.ndarray:
    """The 28x28 input the worker classified, as shown in the preview, in [0, 1]."""
    data = page.evaluate("""() => Array.from(document.querySelector('[data-testid="preview"]')
      .getContext('2d').getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))""")
    return np.array(data, dtype=np.float64).reshape(28, 28) / 255


def test_digit_drawn_small_is_sent_with_the_same_stroke_thickness(app):
    # The same 7 drawn over most of the pad and in a small corner: the image sent for
    # classification is re-rendered with a pen relative to the drawing, so the 28x28
    # inputs match (a pen fixed to the pad would make the small one about 3x thicker).
    big = [[(0.1 + 0.8 * x, 0.1 + 0.8 * y) for x, y in SHAPES[7][0]]]
    small = [[(0.05 + 0.25 * x, 0.05 + 0.25 * y) for x, y in SHAPES[7][0]]]
    assert classify_drawing(app, big) == "7"
    ink_big = _preview(app)
    assert classify_drawing(app, small) == "7"
    ink_small = _preview(app)
    assert ink_big.sum() > 30
    assert abs(ink_small.sum() - ink_big.sum()) < 0.15 * ink_big.sum(), (ink_small.sum(), ink_big.sum())
    assert np.abs(ink_small - ink_big).mean() < 0.05


def test_clear_empties_pad_and_prediction(app):
    classify_drawing(app, SHAPES[1])
    before = seq(app)
    app.get_by_role("button", name="Clear").click()
    assert seq(app) > before
    assert app.get_by_test_id("prediction").inner_text().strip() == ""
    assert "Draw a digit" in app.inner_text("#verdict-text")
    assert probabilities(app) == [0.0] * 10
    blank = app.evaluate("""() => {
      const c = document.querySelector('[data-testid="pad"]');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 250) return false;
      return true;
    }""")
    assert blank


def test_strokes_ending_while_busy_are_coalesced_to_the_latest(app):
    """Several quick strokes: the page ends showing the classification of the final drawing."""
    app.get_by_role("button", name="Clear").click()
    before = seq(app)
    draw_mouse(app, SHAPES[1], steps=1)  # three strokes in quick succession: the final
    draw_mouse(app, SHAPES[1], steps=1)  # drawing is the same "1" twice over
    app.get_by_role("button", name="Clear").click()
    draw_mouse(app, SHAPES[7], steps=1)
    wait_next_result(app, before)
    app.wait_for_function(
        "() => document.querySelector('[data-testid=\"prediction\"]').textContent.trim() === '7'",
        timeout=10_000)
    time.sleep(0.3)  # nothing stale may overwrite it afterwards
    assert app.get_by_test_id("prediction").inner_text().strip() == "7"


# ---- uploads -------------------------------------------------------------------------------


def _render(digit28, size, canvas, offset, dark_on_light):
    """A 28x28 MNIST digit scaled to size x size, pasted into a canvas at offset."""
    from PIL import Image

    img = np.asarray(Image.fromarray(digit28).resize((size, size), Image.BILINEAR))
    out = np.zeros(canvas, dtype=np.uint8)
    y, x = offset
    out[y:y + size, x:x + size] = img
    return 255 - out if dark_on_light else out


UPLOADS = {
    # name: (format, size, canvas (h, w), offset (y, x), dark ink on light paper)
    "large-offcentre-dark-on-light.png": ("PNG", 150, (200, 200), (40, 10), True),
    "small-light-on-dark.webp": ("WEBP", 40, (220, 300), (150, 230), False),
    "photo-like.jpg": ("JPEG", 180, (240, 200), (30, 10), True),
}


@pytest.mark.parametrize("name", list(UPLOADS))
def test_uploaded_rendered_test_digit_is_classified(app, model_and_data, name):
    from digitnet.preprocess import to_mnist

    fmt, size, canvas, offset, dark = UPLOADS[name]
    model, data = model_and_data
    # A real held-out digit that the pretrained model gets right once rendered like this.
    for i in range(len(data.y_test)):
        digit28 = (data.x_test[i].reshape(28, 28) * 255).round().astype(np.uint8)
        gray = _render(digit28, size, canvas, offset, dark)
        expected = model.predict_proba(to_mnist(gray).reshape(1, 784))[0]
        if data.y_test[i] not in (0, 1, 7) and expected.argmax() == data.y_test[i] and expected.max() > 0.9:
            break
    label = int(data.y_test[i])
    extra = {"lossless": True} if fmt == "WEBP" else {}
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format=fmt, **extra)
    mime = {"PNG": "image/png", "WEBP": "image/webp", "JPEG": "image/jpeg"}[fmt]

    before = seq(app)
    app.get_by_test_id("upload").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": buf.getvalue()}])
    wait_next_result(app, before)
    assert app.get_by_test_id("prediction").inner_text().strip() == str(label)
    if fmt != "JPEG":  # lossless: the browser saw exactly these pixels, as CPython did
        assert np.allclose(probabilities(app), expected, atol=2e-3), (probabilities(app), expected)


def test_transparent_png_with_dark_ink_is_classified(app):
    """Ink on a transparent sheet (alpha only) is read as ink, not as a blank image."""
    from PIL import Image
    import io

    rgba = np.zeros((160, 160, 4), dtype=np.uint8)
    rgba[30:130, 72:88, 3] = 255  # an opaque black vertical bar: a "1"
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    before = seq(app)
    app.get_by_test_id("upload").set_input_files(
        files=[{"name": "one.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    wait_next_result(app, before)
    assert app.get_by_test_id("prediction").inner_text().strip() == "1"


def test_dropped_image_is_classified(app):
    gray = np.full((120, 90), 250, dtype=np.uint8)
    gray[20:100, 40:52] = 20  # dark vertical bar on light paper: a "1"
    data = list(png_bytes(gray))
    transfer = app.evaluate_handle("""(bytes) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], 'dropped.png', { type: 'image/png' }));
      return dt;
    }""", data)
    before = seq(app)
    app.dispatch_event("#draw", "drop", {"dataTransfer": transfer})
    wait_next_result(app, before)
    assert app.get_by_test_id("prediction").inner_text().strip() == "1"
    assert "dropped.png" in app.inner_text("#input-message")


def test_bad_upload_shows_error_and_pad_still_works(app):
    classify_drawing(app, SHAPES[0])
    app.get_by_test_id("upload").set_input_files(
        files=[{"name": "x.png", "mimeType": "image/png", "buffer": b"this is not an image\n" * 20}])
    message = app.locator("#input-message")
    message.wait_for(state="visible")
    app.wait_for_function("() => document.querySelector('#input-message').dataset.kind === 'error'")
    assert "x.png" in message.inner_text() and "image" in message.inner_text()
    assert app.evaluate("document.documentElement.dataset.state") == "ready"
    # The model and the pad are unaffected.
    assert classify_drawing(app, SHAPES[7]) == "7"
    assert app.locator("#input-message").is_hidden()


def test_blank_upload_says_no_digit(app):
    before = seq(app)
    app.get_by_test_id("upload").set_input_files(
        files=[{"name": "blank.png", "mimeType": "image/png",
                "buffer": png_bytes(np.full((64, 64), 255, dtype=np.uint8))}])
    wait_next_result(app, before)
    assert app.get_by_test_id("prediction").inner_text().strip() == ""
    assert "No digit" in app.inner_text("#verdict-text")


# ---- gallery -------------------------------------------------------------------------------


def test_gallery_shows_predicted_vs_actual(app):
    show_gallery(app)
    items = app.get_by_test_id("gallery-item")
    n = items.count()
    assert 10 <= n <= 16
    labels = {int(items.nth(i).get_attribute("data-label")) for i in range(n)}
    assert labels == set(range(10))
    wrong = 0
    for i in range(n):
        item = items.nth(i)
        label, predicted = item.get_attribute("data-label"), item.get_attribute("data-predicted")
        assert item.inner_text().strip().startswith(predicted)
        if label != predicted:
            wrong += 1
            assert "wrong" in item.get_attribute("class")
            assert f"is {label}" in item.inner_text()
    assert wrong >= 1  # the gallery shows mistakes too, marked
    assert "%" in app.inner_text("#model-accuracy")
    # Clicking a gallery digit shows its probabilities (the mistakes' too).
    for item in (items.first, items.last):
        before = seq(app)
        item.locator("button").click()
        wait_next_result(app, before)
        assert app.get_by_test_id("prediction").inner_text().strip() == item.get_attribute("data-predicted")


# ---- origin ---------------------------------------------------------------------------------


def test_no_request_leaves_the_origin(app, base_url):
    """Everything the shared page did in this module (load, draw, upload, gallery)."""
    assert len(app.requests) > 10
    assert any(u.endswith(".wasm") for u in app.requests)
    assert _offsite(app.requests, base_url) == []
    assert not app.errors, app.errors


# ---- sub-path (GitHub Pages project sites) ----------------------------------------------------


def _serve(directory):
    import threading

    from tools.devserver import make_server

    httpd = make_server(directory, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_works_under_a_project_sub_path(browser, dist_dir, tmp_path):
    """Served as /digitnet/ (as GitHub Pages serves a project site): relative URLs only."""
    (tmp_path / "digitnet").symlink_to(dist_dir, target_is_directory=True)
    httpd = _serve(tmp_path)
    context = browser.new_context()
    try:
        page = context.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        base = f"http://127.0.0.1:{httpd.server_address[1]}/digitnet/"
        page.goto(base)
        wait_ready(page)
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=30_000)
        assert classify_drawing(page, SHAPES[7]) == "7"
        assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]
    finally:
        context.close()
        httpd.shutdown()
        httpd.server_close()


# ---- errors ---------------------------------------------------------------------------------


def test_broken_model_file_gives_readable_error_state(browser, dist_dir, tmp_path):
    """A site whose model file is corrupt: data-state=error with a message naming it."""
    site = tmp_path / "site"
    for src in dist_dir.rglob("*"):
        if src.is_file():
            dst = site / src.relative_to(dist_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.relative_to(dist_dir).as_posix() == f"models/{_default_model(dist_dir)}.npz":
                dst.write_bytes(b"PK\x03\x04 not really a model")
            else:
                dst.symlink_to(src)
    httpd = _serve(site)
    context = browser.new_context(service_workers="block")
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/")
        page.wait_for_function("() => document.documentElement.dataset.state === 'error'", timeout=READY_TIMEOUT)
        alert = page.get_by_role("alert")
        assert alert.is_visible()
        message = alert.locator(".error-message").inner_text()
        assert "model" in message.lower() and "Traceback" not in message, message
        assert page.get_by_test_id("prediction").inner_text().strip() == ""
    finally:
        context.close()
        httpd.shutdown()
        httpd.server_close()


# ---- offline ---------------------------------------------------------------------------------


def test_offline_after_first_visit(browser, base_url, recorder):
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    _record(page, recorder)
    try:
        page.goto(base_url)
        wait_ready(page)
        # Every file of the build is cached once the service worker says so.
        page.wait_for_function("() => document.documentElement.dataset.offline === 'ready'",
                               timeout=60_000)
        online_requests = len(page.requests)
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        assert classify_drawing(page, SHAPES[1]) == "1"
        assert classify_drawing(page, SHAPES[0]) == "0"
        # The page also reached the gallery (data from the cache), and still reports that
        # everything is cached.
        show_gallery(page)
        page.wait_for_function("() => document.documentElement.dataset.offline === 'ready'",
                               timeout=30_000)
        assert _offsite(page.requests, base_url) == []
        assert not page.errors, page.errors
        assert online_requests > 10
    finally:
        _unrecord(page, recorder)
        context.close()


# ---- phone ------------------------------------------------------------------------------------


def test_phone_viewport_touch_draws_and_classifies(browser, base_url, recorder):
    context = browser.new_context(base_url=base_url, viewport={"width": 390, "height": 844},
                                  device_scale_factor=3, is_mobile=True, has_touch=True)
    page = context.new_page()
    _record(page, recorder)
    try:
        page.goto(base_url)
        wait_ready(page)
        # Responsive: no sideways scrolling; the pad fits the screen width.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        box = page.get_by_test_id("pad").bounding_box()
        assert box["width"] >= 250 and box["x"] >= 0 and box["x"] + box["width"] <= 390
        # DPR-aware canvas: backing store at device pixels.
        assert page.evaluate("document.querySelector('[data-testid=\"pad\"]').width") >= 3 * box["width"] - 3
        assert classify_drawing(page, SHAPES[1], touch=True) == "1"
        assert classify_drawing(page, SHAPES[7], touch=True) == "7"
        assert classify_drawing(page, SHAPES[0], touch=True) == "0"
        assert _offsite(page.requests, base_url) == []
        assert not page.errors, page.errors
    finally:
        _unrecord(page, recorder)
        context.close()
