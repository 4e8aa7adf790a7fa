"""The page side of the benchmark: Debian's Chromium drives the built site (Playwright).

Load times and bytes on the wire (counted by the server per response body, so the
workers' requests count too), stroke-to-probabilities latency, the worker's memory while
training, the page's own training panel, and the compute figures of the page's worker
through its `bench` request (reached with Playwright's worker.evaluate).
"""
from __future__ import annotations

import functools
import threading
import time
import urllib.parse
from pathlib import Path

from digitnet.bench import summary
from helpers import (CHROMIUM, CHROMIUM_ARGS, draw_mouse, ellipse, seq, seven, vertical_line,
                     wait_next_result, wait_ready)
from tools.bench_common import (KINDS, MEMORY_RUN, PANEL_EPOCHS, REPS, TRAIN_SIZES, log,
                                paired_runs, percentile)
from tools.devserver import make_server

READY_TIMEOUT_MS = 120_000
# Single-stroke digits of mixed sizes for the latency drawings: a 0, a 1, a 7, a small 0.
LATENCY_SHAPES = [ellipse()[0], vertical_line()[0], seven()[0], ellipse(rx=0.14, ry=0.22)[0]]


# ---------------------------------------------------------------- server with byte counts

class ByteCounter:
    """(path, body bytes sent) of every response, as the server sends them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[tuple[str, int]] = []

    def add(self, path: str, n: int) -> None:
        with self.lock:
            self.items.append((path, n))

    def take(self) -> list[tuple[str, int]]:
        with self.lock:
            items, self.items = self.items, []
        return items


def kind_of(path: str) -> str:
    p = urllib.parse.unquote(path).lower()
    if p.endswith(".wasm"):
        return "wasm"
    if p.endswith((".js", ".mjs")):
        return "js"
    if "/wheels/digitnet-" in p:
        return "data"
    if p.endswith((".whl", ".zip")):
        return "python"
    if p.endswith(".npz"):
        return "model"
    if p.endswith(".gz") or "/data/" in p:
        return "data"
    return "other"


def by_kind(items) -> dict:
    out = {k: 0 for k in KINDS}
    for path, n in items:
        out[kind_of(path)] += n
    out["total"] = sum(out[k] for k in KINDS)
    out["requests"] = len(items)
    return out


def start_server(dist: Path, counter: ByteCounter):
    """make_server(dist) (tools/devserver.py) whose handler also counts each body's bytes."""
    server = make_server(dist, "127.0.0.1", 0, quiet=True)
    base = server.RequestHandlerClass.func  # make_server's SiteHandler subclass

    class Counting(base):
        def copyfile(self, source, outputfile):
            n = 0
            while True:
                buf = source.read(1 << 16)
                if not buf:
                    break
                outputfile.write(buf)
                n += len(buf)
            counter.add(urllib.parse.urlsplit(self.path).path, n)

    server.RequestHandlerClass = functools.partial(Counting, directory=str(dist))
    threading.Thread(target=server.serve_forever, name="bench-server", daemon=True).start()
    return server


# ---------------------------------------------------------------- page side

def ready_ms(page) -> float:
    return float(page.evaluate("Number(document.documentElement.dataset.readyMs)"))


def wait_offline_cache(page, timeout=60_000) -> str:
    """Wait until the page reports its offline cache complete; returns data-offline."""
    try:
        page.wait_for_function("() => document.documentElement.dataset.offline !== undefined",
                               timeout=timeout)
    except Exception:
        return "timeout"
    return page.evaluate("document.documentElement.dataset.offline")


def page_worker(page, timeout_s: float = 10.0):
    """The page's compute worker (worker.js), as a Playwright Worker."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for w in page.workers:
            if urllib.parse.urlsplit(w.url).path.endswith("/worker.js"):
                return w
        time.sleep(0.05)
    raise RuntimeError("the page has no worker.js worker")


BENCH_CALL = """async (args) => {
  if (typeof handlers === "undefined" || typeof handlers.bench !== "function") {
    throw new Error("this build's worker.js has no bench handler: rebuild (python3 build.py build)");
  }
  const { transfer, ...result } = await handlers.bench(args);
  return result;
}"""


# The report's "numpy" path is the page without BLAS: its default product, einsum.
PAGE_BACKEND = {"numpy": "einsum", "sgemm": "sgemm"}


def worker_bench(worker, op: str, **opts) -> dict:
    if "path" in opts:
        opts["path"] = PAGE_BACKEND[opts["path"]]
    return worker.evaluate(BENCH_CALL, {"op": op, **opts})


def measure_latency(page, n: int) -> dict:
    """Stroke end -> probabilities rendered (the page's data-latency-ms) over n drawings."""
    page.get_by_test_id("pad").scroll_into_view_if_needed()
    lat, compute = [], []
    for i in range(n):
        page.get_by_role("button", name="Clear").click()
        before = seq(page)
        draw_mouse(page, [LATENCY_SHAPES[i % len(LATENCY_SHAPES)]], steps=1)
        wait_next_result(page, before, strokes=1, timeout=30_000)
        el = page.get_by_test_id("prediction")
        lat.append(float(el.get_attribute("data-latency-ms")))
        c = el.get_attribute("data-compute-ms")
        if c is not None:
            compute.append(float(c))
    out = {**summary(lat), "p95": percentile(lat, 95), "drawings": len(lat)}
    if compute:
        out["worker_compute_ms_median"] = summary(compute)["median"]
    return out


def measure_training_panel(page, epochs: int) -> dict:
    """Train the tutorial MLP with the page's own training panel (tutorial recipe, `epochs`
    epochs, the whole training split) and read what it records (window.digitnetTraining):
    the worker's heap after each epoch, the longest main-thread task, the matmul engine."""
    worker = page_worker(page)
    heap_ready = worker_bench(worker, "memory")["heapBytes"]
    page.locator("#training, [data-testid=train]").first.scroll_into_view_if_needed()
    page.select_option("#t-model", "mlp")
    page.select_option("#t-preset", "tutorial")
    page.get_by_test_id("epochs").fill(str(epochs))
    page.get_by_test_id("train").click()
    t0 = time.perf_counter()
    page.wait_for_function(
        """(n) => { const m = window.digitnetTraining;
                    const v = document.querySelector('[data-testid="test-accuracy"]').dataset.value;
                    return m && m.heap.length >= n && v; }""",
        arg=epochs, timeout=600_000, polling=250)
    wall = time.perf_counter() - t0
    m = page.evaluate("""() => { const m = window.digitnetTraining;
        const panel = document.querySelector('[data-testid="train"]').closest('[data-examples-per-s]')
                      || document.querySelector('[data-examples-per-s]');
        return {heap: m.heap.map((h) => h.bytes), longestTaskMs: m.longestTaskMs, workers: m.workers,
                longestUpdateMs: m.longestUpdateMs, matmul: m.matmul,
                examplesPerS: panel ? Number(panel.dataset.examplesPerS) : null,
                testAccuracy: Number(document.querySelector('[data-testid="test-accuracy"]').dataset.value)}; }""")
    heap = m["heap"]
    return {"epochs": epochs, "matmul": m["matmul"], "heap_bytes_ready": heap_ready,
            "heap_bytes_by_epoch": heap, "heap_bytes_after_1_epoch": heap[0] if heap else None,
            "heap_bytes_after_10_epochs": heap[9] if len(heap) >= 10 else None,
            "examples_per_s": m["examplesPerS"], "longest_main_thread_task_ms": m["longestTaskMs"],
            "longest_update_ms": m["longestUpdateMs"], "test_accuracy": m["testAccuracy"],
            "workers": m["workers"],
            "wall_s": wall}


def page_measurements(dist: Path, quick: bool) -> dict:
    from playwright.sync_api import sync_playwright

    mode = "quick" if quick else "full"
    q = 1 if quick else 0
    counter = ByteCounter()
    server = start_server(dist, counter)
    base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    out: dict = {}
    try:
        with sync_playwright() as p:
            if not Path(CHROMIUM).exists():
                raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y chromium "
                                   "(`python3 build.py test` installs it)")
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            out["chromium"] = browser.version
            try:
                out.update(_page_runs(browser, base_url, counter, mode, q))
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return out


def _page_runs(browser, base_url: str, counter: ByteCounter, mode: str, q: int) -> dict:
    out: dict = {}
    # -- cold loads: a fresh context each (empty HTTP cache, no service worker).
    cold, cold_bytes, cold_full_bytes = [], [], []
    context = page = None
    for i in range(REPS["cold"][q]):
        if context is not None:
            context.close()
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        counter.take()
        log(f"page: cold load {i + 1}")
        page.goto(base_url)
        wait_ready(page, READY_TIMEOUT_MS)
        cold.append(ready_ms(page))
        cold_bytes.append(by_kind(counter.take()))
        offline = wait_offline_cache(page)
        cold_full_bytes.append(by_kind(counter.take()))
    load = {"cold_ms": summary(cold), "offline_cache": offline,
            "bytes_cold_until_ready": cold_bytes[-1],
            "bytes_cold_with_offline_cache": _add_bytes(cold_bytes[-1], cold_full_bytes[-1]),
            "bytes_cold_total_runs": summary([b["total"] for b in cold_bytes])}
    # -- warm loads: the same context reloaded (service worker in control).
    warm, warm_bytes, sw = [], [], []
    for i in range(REPS["warm"][q]):
        log(f"page: warm load {i + 1}")
        page.reload()
        wait_ready(page, READY_TIMEOUT_MS)
        warm.append(ready_ms(page))
        sw.append(page.evaluate("document.documentElement.dataset.sw || ''"))
        warm_bytes.append(by_kind(counter.take()))
    load.update({"warm_ms": summary(warm), "warm_service_worker": sw[-1],
                 "bytes_warm": warm_bytes[-1]})
    out["load"] = load

    # -- latency, on the warm page once its gallery (post-ready work) is done.
    try:
        page.get_by_test_id("gallery-item").first.wait_for(timeout=30_000)
    except Exception:
        pass
    time.sleep(0.5)
    log(f"page: latency over {REPS['drawings'][q]} drawings")
    out["latency"] = measure_latency(page, REPS["drawings"][q])

    # -- a fresh worker for memory and compute: reload, so earlier work does not count.
    page.reload()
    wait_ready(page, READY_TIMEOUT_MS)
    worker = page_worker(page)
    counter.take()
    memory = {"heap_bytes_ready": worker_bench(worker, "memory")["heapBytes"]}
    log("page: loading scipy (sgemm) lazily")
    sg = _try(lambda: worker_bench(worker, "matmul", path="sgemm", repeats=1))
    out["scipy"] = {"available": "error" not in sg, "error": sg.get("error"),
                    "load_ms": sg.get("scipyMs"), "bytes": by_kind(counter.take())}
    path = "sgemm" if out["scipy"]["available"] else "numpy"
    memory["heap_bytes_after_scipy"] = worker_bench(worker, "memory")["heapBytes"] if path == "sgemm" else None
    limit, epochs = MEMORY_RUN[mode]
    log(f"page: worker memory over {epochs} epochs of the tutorial MLP ({path})")
    mem = worker_bench(worker, "train_memory", path=path, model="mlp", recipe="tutorial",
                       epochs=epochs, limit=limit)["result"]
    memory.update({"path": path, "examples": mem.get("examples"), "epochs": mem["epochs"],
                   "heap_bytes_before_training": mem["heap_before"],
                   "heap_bytes_by_epoch": mem["heap_by_epoch"],
                   "heap_bytes_after_1_epoch": mem["heap_by_epoch"][0],
                   "heap_bytes_after_10_epochs": mem["heap_by_epoch"][9] if len(mem["heap_by_epoch"]) >= 10 else None,
                   "live_bytes_by_epoch": mem.get("live_bytes_by_epoch"),
                   "live_bytes_after_1_epoch": (mem.get("live_bytes_by_epoch") or [None])[0],
                   "live_bytes_after_10_epochs": (mem.get("live_bytes_by_epoch") or [None] * 10)[9]
                   if len(mem.get("live_bytes_by_epoch") or []) >= 10 else None})
    out["memory"] = memory

    paths = ["numpy"] + (["sgemm"] if out["scipy"]["available"] else [])
    compute: dict = {}
    for pth in paths:
        worker_bench(worker, "matmul", path=pth, repeats=2)  # warm-up
        for model in ("mlp", "cnn"):
            limit, epochs = TRAIN_SIZES[model][mode]
            log(f"page: {model} training + matmul ({pth})")
            compute[f"train_{model}_{pth}"] = paired_runs(
                lambda: worker_bench(worker, "matmul", path=pth, batch=256,
                                     repeats=REPS[f"matmul_{pth}"][q])["result"],
                lambda: worker_bench(worker, "train", path=pth, model=model, recipe="tutorial",
                                     epochs=epochs, repeats=1, limit=limit)["result"],
                model, REPS["train"][q])
        compute[f"matmul_{pth}"] = summary(compute[f"train_mlp_{pth}"]["matmul_bursts_gflops"]
                                           + compute[f"train_cnn_{pth}"]["matmul_bursts_gflops"])
    out["compute"] = compute
    out["pyodide"] = _try(lambda: worker.evaluate("() => self.PyRuntime.versions()"))

    # -- the training panel itself, in a fresh worker (scipy now comes from the
    # service worker's cache: the bytes above were its first, only download).
    page.reload()
    wait_ready(page, READY_TIMEOUT_MS)
    epochs = PANEL_EPOCHS[q]
    log(f"page: training panel, tutorial MLP, {epochs} epochs")
    out["panel"] = _try(lambda: measure_training_panel(page, epochs))
    context.close()
    return out


def _add_bytes(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b.get(k, 0) for k in (*KINDS, "total", "requests")}


def _try(fn) -> dict:
    try:
        return fn()
    except Exception as e:  # reported in the results, not fatal
        return {"error": str(e).strip().splitlines()[0][:300]}

