"""The drawn-digit sets as the page's classifier receives them.

The stroke lists in tests/fixtures/drawn/{dev,test}.json are replayed through the page's
own web/js/pad.js in Chromium (Playwright): ``Pad.snapshot`` renders exactly the grey
image the page sends to the worker, and ``digitnet.preprocess.to_mnist`` turns it into
the 28x28 input, as the worker does. Results are cached in .cache/drawn/ (keyed by the
strokes, pad.js and preprocess.py), so only the first call per version opens a browser.
"""
from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py" / "src"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from digitnet.preprocess import to_mnist  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "drawn"
CACHE = ROOT / ".cache" / "drawn"
PAD_JS = ROOT / "web" / "js" / "pad.js"
SNAPSHOT = 112  # the size main.js asks the pad for
ORIGIN = "http://drawn.local/"
PAGE = """<!doctype html><html><body style="margin:0">
<canvas id="pad" style="width:280px;height:280px;display:block"></canvas>
<script type="module">
import { Pad } from "./pad.js";
window.pad = new Pad(document.getElementById("pad"));
window.padReady = true;
</script></body></html>"""
RENDER_ALL = """([digits, size, pen]) => {
  const out = new Uint8Array(digits.length * size * size);
  digits.forEach((strokes, i) => {
    window.pad.strokes = strokes.map((s) => s.map(([x, y]) => ({ x, y })));
    const snap = pen === "default" ? window.pad.snapshot(size) : window.pad.snapshot(size, pen);
    out.set(snap.pixels, i * size * size);
  });
  let text = "";
  for (let i = 0; i < out.length; i += 0x8000) text += String.fromCharCode(...out.subarray(i, i + 0x8000));
  return btoa(text);
}"""


def load_strokes(name: str) -> list[dict]:
    """The set's digits: dicts with label, style, placement, strokes ([[[x, y], ...], ...])."""
    return json.loads((FIXTURES / f"{name}.json").read_text())["digits"]


def render_snapshots(digits: list[dict], pad_js: str, pen="default") -> np.ndarray:
    """(N, 112, 112) uint8 snapshots from pad.js's source ``pad_js`` in Chromium.
    ``pen``: "default" (what the page sends), a fraction of the drawing's extent, or
    None (the drawing as it looks on the pad)."""
    from helpers import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route(ORIGIN + "**", lambda route: route.fulfill(
                status=200, body=pad_js if route.request.url.endswith("pad.js") else PAGE,
                content_type="text/javascript" if route.request.url.endswith(".js") else "text/html"))
            page.goto(ORIGIN)
            page.wait_for_function("() => window.padReady === true")
            blob = page.evaluate(RENDER_ALL, [[d["strokes"] for d in digits], SNAPSHOT, pen])
        finally:
            browser.close()
    return np.frombuffer(base64.b64decode(blob), np.uint8).reshape(-1, SNAPSHOT, SNAPSHOT)


def drawn_set(name: str, pen="default", pad_js: Path = PAD_JS) -> dict:
    """The set ``name`` ("dev" or "test") as the worker classifies it: x (N, 784) float32,
    y (N,) int64, style and placement (N,) str arrays. Cached."""
    source = Path(pad_js).read_text()
    key = hashlib.sha256(json.dumps([source, (FIXTURES / f"{name}.json").read_text(), str(pen),
                                     (ROOT / "py/src/digitnet/preprocess.py").read_text()]).encode())
    path = CACHE / f"{name}-{key.hexdigest()[:16]}.npz"
    if not path.exists():
        digits = load_strokes(name)
        snaps = render_snapshots(digits, source, pen)
        x = np.stack([to_mnist(s).reshape(784) for s in snaps]).astype(np.float32)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x=x, y=np.array([d["label"] for d in digits]),
                            style=np.array([f"{d['label']} {d['style']}" for d in digits]),
                            placement=np.array([d["placement"] for d in digits]))
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
