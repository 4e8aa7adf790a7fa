"""Drawing and waiting helpers for the page tests (Playwright sync API)."""
from __future__ import annotations

import io
import math
import os

# Debian's Chromium (never a browser Playwright downloads), headless, without background
# traffic or updates; also used by tools/bench.py (docs/tooling.md).
CHROMIUM = os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
    # less browser housekeeping traffic
    "--disable-sync", "--disable-extensions", "--disable-default-apps",
    "--disable-domain-reliability", "--no-pings",
]
READY_TIMEOUT = 90_000  # ms; a cold load takes a few seconds, CI machines can be busy

_STATE_JS = "document.documentElement.dataset.state"


def wait_ready(page, timeout: float = READY_TIMEOUT, enabled: str | None = None) -> None:
    """Wait (ms) until <html data-state="ready">, failing with the page's message on
    "error"; then, if given, until the ``enabled`` CSS selector's control is enabled."""
    page.wait_for_function(
        "() => ['ready', 'error'].includes(document.documentElement.dataset.state)", timeout=timeout)
    state = page.evaluate(_STATE_JS)
    assert state == "ready", f"page ended in state {state!r}: {page.inner_text('#status')}"
    if enabled:
        page.wait_for_function("(sel) => !document.querySelector(sel).disabled", arg=enabled,
                               timeout=timeout)

def open_page(browser, base_url: str, enabled: str, **context_options):
    """A fresh context's page on the site, ready with `enabled` usable; it records page
    errors in ``page.errors``. Close it with ``page.context.close()``."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900},
                                  **context_options)
    return page_in(context, base_url, enabled)


def page_in(context, base_url: str, enabled: str):
    """A new page (tab) of `context` on the site, ready with `enabled` usable; page errors
    are recorded in ``page.errors``."""
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(base_url)
    wait_ready(page, enabled=enabled)
    return page


# Strokes are lists of (x, y) points in [0, 1] of the pad's box, shaped like digits.


def ellipse(cx=0.5, cy=0.5, rx=0.2, ry=0.32, n=48):
    # Start at the top and go round a little more than once, as people close a 0.
    return [[(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n))
             for i in range(n + 3)]]


def vertical_line(x=0.5, top=0.18, bottom=0.82, n=16):
    return [[(x + 0.02 * (1 - i / n), top + (bottom - top) * i / n) for i in range(n + 1)]]


def seven(n=16):
    bar = [(0.28 + 0.44 * i / n, 0.2) for i in range(n + 1)]
    diagonal = [(0.72 - 0.3 * i / n, 0.2 + 0.62 * i / n) for i in range(1, n + 1)]
    return [bar + diagonal]  # one stroke, as a 7 is usually drawn


def four(n=12):
    # Two strokes: the open angle, then the down stroke through it.
    angle = [(0.42 - 0.17 * i / n, 0.18 + 0.44 * i / n) for i in range(n + 1)]
    angle += [(0.25 + 0.5 * i / n, 0.62) for i in range(1, n + 1)]
    down = [(0.62, 0.3 + 0.55 * i / n) for i in range(n + 1)]
    return [angle, down]


SHAPES = {0: ellipse(), 1: vertical_line(), 4: four(), 7: seven()}


def seq(page) -> int:
    """The prediction's render counter (bumped on every rendered result)."""
    return int(page.get_attribute('[data-testid="prediction"]', "data-seq") or 0)


def wait_next_result(page, before: int, strokes: int | None = None, timeout: float = 15_000) -> None:
    """Wait for a result rendered after `before` (and, for drawings, of all `strokes`)."""
    page.wait_for_function(
        """([n, strokes]) => {
          const el = document.querySelector('[data-testid="prediction"]');
          return Number(el.dataset.seq || 0) > n
            && (strokes === null || Number(el.dataset.strokes) === strokes);
        }""",
        arg=[before, strokes], timeout=timeout)


def draw_mouse(page, strokes, steps: int = 2) -> None:
    """Draw strokes with the mouse over the pad's bounding box."""
    box = page.get_by_test_id("pad").bounding_box()
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=steps)
        page.mouse.up()


def draw_touch(page, strokes) -> None:
    """Draw strokes with a finger: CDP touch events (Chromium turns them into pointer events)."""
    box = page.get_by_test_id("pad").bounding_box()
    cdp = page.context.new_cdp_session(page)
    try:
        for stroke in strokes:
            pts = [{"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]} for x, y in stroke]
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [pts[0]]})
            for p in pts[1:]:
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [p]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        cdp.detach()


def classify_drawing(page, strokes, touch: bool = False) -> str:
    """Clear the pad, draw, wait for the result; return the predicted digit text."""
    page.get_by_role("button", name="Clear").click()
    before = seq(page)
    (draw_touch if touch else draw_mouse)(page, strokes)
    wait_next_result(page, before, strokes=len(strokes))
    return page.get_by_test_id("prediction").inner_text().strip()


def show_gallery(page, timeout: float = 90_000) -> None:
    """Scroll to the gallery (the page computes it once it is near the screen) and wait for it."""
    page.locator(".gallery-card").scroll_into_view_if_needed()
    page.get_by_test_id("gallery-item").first.wait_for(timeout=timeout)


def probabilities(page) -> list[float]:
    return [float(page.get_attribute(f'[data-testid="prob-{d}"]', "data-value")) for d in range(10)]


def png_bytes(gray, fmt: str = "PNG") -> bytes:
    """uint8 (H, W) array -> encoded image bytes (Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format=fmt, **({"quality": 95} if fmt != "PNG" else {}))
    return buf.getvalue()
