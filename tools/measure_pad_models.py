"""Which shipped model should the pad start on? For each model in dist/build-manifest.json,
serve dist/ with that model as `default_model` and measure, in Debian Chromium:

  cold load   navigation -> <html data-state="ready">, a first visit (fresh profile, empty
              caches), median and worst of --loads page loads
  latency     stroke end -> probabilities rendered (the page's data-latency-ms), p95 over
              --strokes digits (0, 1, 7) drawn from the moment the page is ready

The pad should use the most accurate model within p95 <= 60 ms and cold load <= 4 s.

    .venv/bin/python tools/measure_pad_models.py [--loads 3] [--strokes 36]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from helpers import CHROMIUM, CHROMIUM_ARGS, SHAPES, classify_drawing, wait_ready  # noqa: E402


def serve(directory: Path):
    spec = importlib.util.spec_from_file_location("digitnet_build", ROOT / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    httpd = build.make_server(directory, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def site_with_default(name: str, root: Path) -> Path:
    """A copy of dist/ (symlinks) whose manifest names `name` as the default model."""
    site = root / name
    for src in DIST.rglob("*"):
        if src.is_file():
            dst = site / src.relative_to(DIST)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.name == "build-manifest.json" and dst.parent == site:
                manifest = json.loads(src.read_text())
                manifest["default_model"] = name
                dst.write_text(json.dumps(manifest))
            else:
                dst.symlink_to(src)
    return site


def p95(values):
    v = sorted(values)
    return v[max(0, int(round(0.95 * len(v))) - 1)]


def measure(browser, url: str, name: str, loads: int, strokes: int) -> dict:
    ready = []
    latency = []
    for i in range(loads):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto(url)
            wait_ready(page)
            assert page.evaluate("document.documentElement.dataset.padModel") == f"pretrained:{name}"
            ready.append(float(page.evaluate("Number(document.documentElement.dataset.readyMs)")))
            if i == loads - 1:  # latency on the last page, from the moment it is ready
                page.evaluate("document.querySelector('[data-testid=pad]').scrollIntoView({block: 'center'})")
                for k in range(strokes):
                    digit = (0, 1, 7)[k % 3]
                    classify_drawing(page, SHAPES[digit])
                    latency.append(float(page.get_attribute('[data-testid="prediction"]', "data-latency-ms")))
        finally:
            context.close()
    return {"model": name, "cold_load_ms_median": statistics.median(ready), "cold_load_ms_max": max(ready),
            "cold_loads_ms": ready, "latency_ms_median": statistics.median(latency),
            "latency_ms_p95": p95(latency), "strokes": len(latency)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=3)
    ap.add_argument("--strokes", type=int, default=36)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    models = json.loads((DIST / "build-manifest.json").read_text())["models"]
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        httpd = serve(Path(tmp))
        try:
            for name in models:
                site_with_default(name, Path(tmp))
                url = f"http://127.0.0.1:{httpd.server_address[1]}/{name}/"
                print(json.dumps(measure(browser, url, name, args.loads, args.strokes)), flush=True)
        finally:
            httpd.shutdown()
            browser.close()


if __name__ == "__main__":
    main()
