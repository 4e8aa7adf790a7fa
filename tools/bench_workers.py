"""Training on several workers in the page, measured in Debian's Chromium (Playwright).

    .venv/bin/python tools/bench_workers.py [--epochs 3] [--rounds 2] [--drawings 20]

For 1 and N workers (interleaved, `--rounds` times): the seed MLP (tutorial recipe) trained
with the page's own panel, examples/s of each completed epoch (the panel's train-speed) and
each worker's heap per epoch; the tutorial CNN for one epoch on 1 and N workers
(`--cnn-rounds` times). Then stroke-to-probabilities latency with no training and
while N workers train the default MLP recipe. Prints JSON, with the machine's load
averages before and after (this is a shared machine: say so with the figures).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e"), str(ROOT / "py" / "src")]

from helpers import (CHROMIUM, CHROMIUM_ARGS, draw_mouse, ellipse, seq, seven,  # noqa: E402
                     vertical_line, wait_next_result, wait_ready)
from tools.devserver import make_server  # noqa: E402

SHAPES = [ellipse()[0], vertical_line()[0], seven()[0], ellipse(rx=0.14, ry=0.22)[0]]
DONE = ("() => document.querySelector('#train').dataset.training === 'idle'"
        " && document.querySelector('#train').dataset.outcome")


def train(page, workers: int, recipe: str, epochs: int, wait: bool = True,
          model: str = "mlp") -> dict | None:
    """One run of the page's panel; with `wait`, its per-epoch speeds and heaps."""
    page.select_option('[data-testid="workers"]', str(workers))
    page.select_option("#t-model", model)
    page.select_option("#t-preset", recipe)
    page.fill("#t-epochs", str(epochs))
    page.evaluate("document.querySelector('#train').dataset.outcome = '';"
                  "window.digitnetTraining.heap.length = 0; window.digitnetTraining.speeds = []")
    page.get_by_test_id("train").click()
    page.wait_for_function("document.querySelector('#train').dataset.training === 'running'")
    if not wait:
        return None
    page.wait_for_function(DONE, timeout=900_000, polling=250)
    assert page.get_attribute("#train", "data-outcome") == "done"
    m = page.evaluate("() => ({speeds: window.digitnetTraining.speeds,"
                      " heaps: window.digitnetTraining.heap.map((h) => h.workers),"
                      " time: window.digitnetTraining.time})")
    return {"workers": int(page.get_attribute("#train", "data-workers")), **m}


def latencies(page, n: int) -> list[float]:
    page.get_by_test_id("pad").scroll_into_view_if_needed()
    out = []
    for i in range(n):
        page.get_by_role("button", name="Clear").click()
        before = seq(page)
        draw_mouse(page, [SHAPES[i % len(SHAPES)]], steps=1)
        wait_next_result(page, before, strokes=1, timeout=30_000)
        out.append(float(page.get_by_test_id("prediction").get_attribute("data-latency-ms")))
    return out


def stats(values: list[float]) -> dict:
    s = sorted(values)
    return {"median": statistics.median(s), "p95": s[min(len(s) - 1, round(0.95 * (len(s) - 1)))],
            "min": s[0], "max": s[-1], "n": len(s)}


def measure(base_url: str, epochs: int, rounds: int, drawings: int, cnn_rounds: int = 1) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base_url)
        wait_ready(page, enabled="[data-testid=train]")
        most = int(page.eval_on_selector_all('[data-testid="workers"] option',
                                             "os => Math.max(...os.map(o => Number(o.value)))"))
        runs = {1: [], most: []}
        train(page, most, "tutorial", 1)  # start the workers (not measured)
        for _ in range(rounds):
            for n in (1, most):
                runs[n].append(train(page, n, "tutorial", epochs))
        rates = {n: [s for r in rs for s in r["speeds"][1:] or r["speeds"]] for n, rs in runs.items()}
        cnn = {1: [], most: []}  # one epoch each: the tutorial CNN is ~20x slower
        for _ in range(cnn_rounds):
            for n in (1, most):
                cnn[n] += train(page, n, "tutorial", 1, model="cnn")["speeds"]
        idle = latencies(page, drawings)
        train(page, most, "default", 30, wait=False)
        page.wait_for_function("() => window.digitnetTraining.speeds.length >= 1", timeout=300_000)
        busy = latencies(page, drawings)
        page.get_by_test_id("stop").click()
        page.wait_for_function(DONE, timeout=120_000)
        browser.close()
    one, many = statistics.median(rates[1]), statistics.median(rates[most])
    return {"workers": most, "examples_per_s": {"1": stats(rates[1]), str(most): stats(rates[most])},
            "speedup_median": many / one,
            "cnn_examples_per_s": {str(n): stats(v) for n, v in cnn.items() if v},
            "heaps_per_epoch": {str(n): [r["heaps"] for r in rs] for n, rs in runs.items()},
            "worker0_seconds": {str(n): [r["time"] for r in rs] for n, rs in runs.items()},
            "latency_ms_idle": stats(idle), "latency_ms_while_training": stats(busy)}


def measure_site(dist: Path, epochs: int = 3, rounds: int = 2, drawings: int = 20,
                 cnn_rounds: int = 1) -> dict:
    """`measure` against a local server for the built site in `dist`."""
    httpd = make_server(dist, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        return measure(f"http://127.0.0.1:{httpd.server_address[1]}/", epochs, rounds, drawings,
                       cnn_rounds)
    finally:
        httpd.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--drawings", type=int, default=20)
    ap.add_argument("--cnn-rounds", type=int, default=1, help="tutorial CNN runs (1 epoch) per worker count")
    a = ap.parse_args()
    load_before = os.getloadavg()
    out = measure_site(ROOT / "dist", a.epochs, a.rounds, a.drawings, a.cnn_rounds)
    out.update(load_before=load_before, load_after=os.getloadavg(), cpus=os.cpu_count())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
