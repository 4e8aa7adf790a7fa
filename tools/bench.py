#!/usr/bin/env python3
"""One benchmark, side by side: CPython vs the page (Pyodide in Chromium), against the limits.

    python3 build.py bench [--quick] [--out docs/benchmarks] [--no-build]

(build.py sets up .venv with the pinned Playwright, as `build.py test` does, and runs this
file with it.) In one run it builds dist/ if needed, serves it with build.make_server on a
free port, drives Debian's Chromium headless, and measures:

- matmul GFLOP/s, float32, the seed MLP's training shapes at batch 256 (digitnet.bench):
  CPython numpy; the page's numpy (no BLAS); the page's scipy BLAS sgemm (lazy training
  path, digitnet.backend.blas_matmul) -- the limits training is bound by;
- training throughput (examples/s) of the seed MLP (batch 256) and the seed CNN, CPython vs
  the page (numpy and sgemm paths), each with its ratio to the matmul-bound limit
  (limit = matmul rate / FLOPs per example);
- page load: navigation -> <html data-state=ready> (the page's own data-ready-ms, i.e.
  performance.now() since navigation), cold (fresh browser context: empty cache, no service
  worker) and warm (the same context reloaded: service worker controls, offline cache
  complete); bytes on the wire per kind of file, counted by the server (so the worker's and
  the service worker's requests count too, which Playwright's page events miss here);
- classification latency: stroke end (pointerup) -> probabilities rendered, the page's
  data-latency-ms, over many mouse drawings;
- worker memory: the WebAssembly heap after the page is ready, and after 1 and 10 epochs of
  the seed MLP trained in the page's worker (digitnet's fit, the sgemm path if available),
  with tracemalloc's live bytes per epoch (the heap only grows);
- the training panel itself: its Train button, 10 epochs of the seed MLP; the heap per
  epoch, examples/s and the longest main-thread task it records (window.digitnetTraining);
- the issues' targets (site: load time, bytes, latency; training: throughput, memory,
  responsiveness), met or not.

Page-side compute runs in the page's own worker through its `bench` request handler (see
web/worker.js), reached with Playwright's worker.evaluate. Each figure is the median of
several repetitions with min and max. Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py" / "src"))

# The browser flags and drawing helpers the page tests use (DESIGN.md section 9).
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from helpers import CHROMIUM, CHROMIUM_ARGS, draw_mouse  # noqa: E402
READY_TIMEOUT_MS = 120_000

# Repetitions: (full, quick).
REPS = {
    # matmul_gflops repeats per burst (each = the six matmuls of a batch): ~1 s bursts
    "matmul_cpython": (60, 10),
    "matmul_numpy": (5, 2),
    "matmul_sgemm": (20, 5),
    "train": (3, 1),            # training_throughput repeats
    "cold": (3, 1),             # cold loads, each in a fresh context
    "warm": (5, 1),             # warm reloads
    "drawings": (60, 6),        # drawings for the latency
}
# Training runs: (limit of training examples, epochs); None = all 8,000.
TRAIN_SIZES = {
    "mlp": {"full": (None, 1), "quick": (1024, 1)},
    "cnn": {"full": (2000, 1), "quick": (256, 1)},
}
MEMORY_RUN = {"full": (None, 10), "quick": (256, 10)}  # (limit, epochs)
PANEL_EPOCHS = (10, 1)  # the training panel's run of the seed MLP on all 8,000 digits

KINDS = ("wasm", "js", "python", "data", "model", "other")
KIND_NOTES = {
    "wasm": "pyodide.asm.wasm",
    "js": "Pyodide's JS, the page's modules, worker, service worker, Chart.js",
    "python": "python_stdlib.zip and the Pyodide package wheels (numpy, ...; scipy + openblas when training)",
    "data": "the digitnet wheel: its code and the 10,000-digit data bundle (~98 % of its bytes)",
    "model": "pretrained weights (models/*.npz)",
    "other": "HTML, CSS, JSON manifests, icons",
}


def _skips_first_input_grad() -> bool:
    """Whether digitnet's training skips the first layer's input gradient (nobody uses it)."""
    import inspect
    from digitnet.model import Sequential
    return "input_grad" in inspect.signature(Sequential.backward).parameters


# Products of one example, as (n_in * n_out) multiply-adds per layer (conv = im2col:
# output pixels x filters x C*k*k), in order; the first is the one whose input gradient
# training may skip.
LAYER_MACS = {
    "mlp": [784 * 256, 256 * 128, 128 * 10],
    "cnn": [28 * 28 * 16 * (1 * 5 * 5), 14 * 14 * 32 * (16 * 5 * 5), 1568 * 128, 128 * 10],
}


def flops_per_example(model: str) -> int:
    """FLOPs one training example costs: every layer's product forward once and backward
    twice (dW, dx), 2 FLOPs per multiply-add -- the convention of
    digitnet.bench.MLP_FLOPS_PER_EXAMPLE -- minus the first layer's dx when training skips it
    (Sequential.backward(input_grad=False)): the work actually done."""
    macs = LAYER_MACS[model]
    flops = 2 * 3 * sum(macs)
    if _skips_first_input_grad():
        flops -= 2 * macs[0]
    return flops


def load_build():
    spec = importlib.util.spec_from_file_location("digitnet_build", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(values) -> dict:
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in (0, 100])."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class LoadSampler:
    """The 1-minute load average every few seconds while the benchmark runs."""

    def __init__(self, every_s: float = 5.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _run(self, every_s):
        while not self._stop.is_set():
            la = loadavg()
            if la:
                self.samples.append(la[0])
            self._stop.wait(every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


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


def start_server(build, dist: Path, counter: ByteCounter):
    """build.make_server(dist) whose handler also counts each response body's bytes."""
    server = build.make_server(dist, "127.0.0.1", 0, quiet=True)
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


# ---------------------------------------------------------------- CPython side

def paired_runs(matmul_burst, train_once, model: str, reps: int) -> dict:
    """`reps` pairs of (a matmul burst, one training run) measured back to back, so each
    training rate is compared with the limit measured under the same machine load.

    matmul_burst() -> digitnet.bench.matmul_gflops summary; train_once() ->
    digitnet.bench.training_throughput result (1 repeat)."""
    flops = flops_per_example(model)
    bursts, rates, ratios = [], [], []
    for _ in range(reps):
        g = matmul_burst()["median"]
        r = train_once()
        bursts.append(g)
        rates.append(r["median"])
        ratios.append(r["median"] * flops / (g * 1e9))
    return {"examples_per_s": summary(rates), "matmul_bursts_gflops": bursts,
            "ratio_to_limit": summary(ratios), "examples": r["examples"], "epochs": r["epochs"],
            "batch_size": r["batch_size"], "flops_per_example": flops}


def cpython_measurements(quick: bool) -> dict:
    """CPython figures in this interpreter (call it in a fresh process: see cpython_runs)."""
    import numpy as np
    from digitnet import bench

    mode = "quick" if quick else "full"
    q = 1 if quick else 0
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}
    bench.matmul_gflops(repeats=2)  # warm-up (threads, caches)
    for model in ("mlp", "cnn"):
        limit, epochs = TRAIN_SIZES[model][mode]
        out[f"train_{model}"] = paired_runs(
            lambda: bench.matmul_gflops(batch=256, repeats=REPS["matmul_cpython"][q]),
            lambda: bench.training_throughput(model, "tutorial", epochs=epochs, repeats=1, limit=limit),
            model, REPS["train"][q])
    out["matmul"] = summary(out["train_mlp"]["matmul_bursts_gflops"] + out["train_cnn"]["matmul_bursts_gflops"])
    return out


# CPython variants, each in its own process (BLAS reads its thread count at import):
# numpy's default (OpenBLAS on every core) and one thread (like the page's WebAssembly).
CPYTHON_VARIANTS = {"cpython_numpy": None, "cpython_numpy_1thread": "1"}


def cpython_runs(quick: bool) -> dict:
    out = {}
    for name, threads in CPYTHON_VARIANTS.items():
        log(f"CPython: matmul + training ({'BLAS threads: ' + (threads or 'default')})")
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(var, None)
            if threads:
                env[var] = threads
        proc = subprocess.run([sys.executable, __file__, "--cpython-json", *(["--quick"] if quick else [])],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"CPython measurement failed:\n{proc.stderr.strip()}")
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ---------------------------------------------------------------- page side

def wait_ready(page, timeout=READY_TIMEOUT_MS) -> None:
    page.wait_for_function(
        "() => ['ready', 'error'].includes(document.documentElement.dataset.state)",
        timeout=timeout)
    state = page.evaluate("document.documentElement.dataset.state")
    if state != "ready":
        text = page.evaluate("document.body.innerText.slice(0, 400)")
        raise RuntimeError(f"the page reached data-state={state!r}: {text}")


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


def worker_bench(worker, op: str, **opts) -> dict:
    return worker.evaluate(BENCH_CALL, {"op": op, **opts})


def shapes():
    """Single-stroke digit shapes: a 0, a 1, a 7, a 2, a 3 (mixed sizes)."""
    def ellipse(rx, ry, n=40):
        return [(0.5 + rx * math.sin(2 * math.pi * i / n), 0.5 - ry * math.cos(2 * math.pi * i / n))
                for i in range(n + 3)]
    one = [(0.52 - 0.02 * i / 16, 0.18 + 0.64 * i / 16) for i in range(17)]
    seven = [(0.28 + 0.44 * i / 16, 0.2) for i in range(17)] + \
            [(0.72 - 0.3 * i / 16, 0.2 + 0.62 * i / 16) for i in range(1, 17)]
    two = [(0.5 + 0.18 * math.sin(math.pi * (i / 12 - 0.5)), 0.3 - 0.12 * math.cos(math.pi * i / 12))
           for i in range(13)] + [(0.68 - 0.4 * i / 12, 0.3 + 0.5 * i / 12) for i in range(1, 13)] + \
          [(0.28 + 0.45 * i / 10, 0.8) for i in range(1, 11)]
    return [ellipse(0.2, 0.32), one, seven, two, ellipse(0.14, 0.22)]


def measure_latency(page, n: int) -> dict:
    page.get_by_test_id("pad").scroll_into_view_if_needed()
    lat, compute = [], []
    strokes = shapes()
    for i in range(n):
        page.get_by_role("button", name="Clear").click()
        before = int(page.get_attribute('[data-testid="prediction"]', "data-seq") or 0)
        draw_mouse(page, [strokes[i % len(strokes)]], steps=1)
        page.wait_for_function(
            """(n) => { const el = document.querySelector('[data-testid="prediction"]');
                        return Number(el.dataset.seq || 0) > n && el.dataset.strokes === "1"; }""",
            arg=before, timeout=30_000)
        el = page.get_by_test_id("prediction")
        lat.append(float(el.get_attribute("data-latency-ms")))
        c = el.get_attribute("data-compute-ms")
        if c is not None:
            compute.append(float(c))
    out = {**summary(lat), "p95": percentile(lat, 95), "drawings": len(lat)}
    if compute:
        out["worker_compute_ms_median"] = statistics.median(compute)
    return out


def measure_training_panel(page, epochs: int) -> dict:
    """Train the seed MLP with the page's own training panel (tutorial preset, `epochs`
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
        return {heap: m.heap.map((h) => h.bytes), longestTaskMs: m.longestTaskMs,
                longestUpdateMs: m.longestUpdateMs, matmul: m.matmul,
                examplesPerS: panel ? Number(panel.dataset.examplesPerS) : null,
                testAccuracy: Number(document.querySelector('[data-testid="test-accuracy"]').dataset.value)}; }""")
    heap = m["heap"]
    return {"epochs": epochs, "matmul": m["matmul"], "heap_bytes_ready": heap_ready,
            "heap_bytes_by_epoch": heap, "heap_bytes_after_1_epoch": heap[0] if heap else None,
            "heap_bytes_after_10_epochs": heap[9] if len(heap) >= 10 else None,
            "examples_per_s": m["examplesPerS"], "longest_main_thread_task_ms": m["longestTaskMs"],
            "longest_update_ms": m["longestUpdateMs"], "test_accuracy": m["testAccuracy"],
            "wall_s": wall}


def page_measurements(build, dist: Path, quick: bool) -> dict:
    from playwright.sync_api import sync_playwright

    mode = "quick" if quick else "full"
    q = 1 if quick else 0
    counter = ByteCounter()
    server = start_server(build, dist, counter)
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
        wait_ready(page)
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
        wait_ready(page)
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
    wait_ready(page)
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
    log(f"page: worker memory over {epochs} epochs of the seed MLP ({path})")
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
    out["pyodide"] = _try(lambda: worker.evaluate(
        "() => ({version: pyodide.version, python: pyodide.runPython('import sys; sys.version.split()[0]'),"
        " numpy: pyodide.runPython('import numpy; numpy.__version__')})"))

    # -- the training panel itself (issue 4), in a fresh worker (scipy now comes from the
    # service worker's cache: the bytes above were its first, only download).
    page.reload()
    wait_ready(page)
    epochs = PANEL_EPOCHS[q]
    log(f"page: training panel, seed MLP, {epochs} epochs")
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


# ---------------------------------------------------------------- assemble + report

def assemble(cpy: dict, pg: dict, meta: dict) -> dict:
    from digitnet import bench

    flops = {m: flops_per_example(m) for m in ("mlp", "cnn")}
    c = pg["compute"]
    c1 = cpy["cpython_numpy_1thread"]
    cn = cpy["cpython_numpy"]
    matmul = {"batch": 256, "dtype": "float32", "cpython_numpy": cn["matmul"],
              "cpython_numpy_1thread": c1["matmul"],
              "page_numpy": c["matmul_numpy"], "page_sgemm": c.get("matmul_sgemm")}
    training = {}
    for model in ("mlp", "cnn"):
        entry = {"recipe": "seed", "batch_size": cn[f"train_{model}"]["batch_size"],
                 "flops_per_example": flops[model]}
        for name, res, mm in (("cpython_numpy", cn[f"train_{model}"], cn["matmul"]),
                              ("cpython_numpy_1thread", c1[f"train_{model}"], c1["matmul"]),
                              ("page_numpy", c[f"train_{model}_numpy"], c["matmul_numpy"]),
                              ("page_sgemm", c.get(f"train_{model}_sgemm"), c.get("matmul_sgemm"))):
            if res is None:
                entry[name] = None
                continue
            entry[name] = {"examples_per_s": res["examples_per_s"],
                           "examples": res["examples"], "epochs": res["epochs"],
                           "effective_gflops": res["examples_per_s"]["median"] * flops[model] / 1e9,
                           "matmul_limit_examples_per_s": mm["median"] * 1e9 / flops[model],
                           "ratio_to_limit": res["ratio_to_limit"]["median"],
                           "ratio_to_limit_runs": res["ratio_to_limit"]}
        training[f"{model}_seed"] = entry
    return {
        "meta": meta,
        "matmul_gflops": matmul,
        "training": training,
        "page_load": pg["load"],
        "scipy_lazy_load": pg["scipy"],
        "latency_ms": pg["latency"],
        "worker_memory": pg["memory"],
        "training_panel": pg.get("panel"),
    }


PATHS = ("cpython_numpy", "cpython_numpy_1thread", "page_numpy", "page_sgemm")
LABELS = {"cpython_numpy": "CPython numpy (BLAS, all cores)", "cpython_numpy_1thread": "CPython numpy (BLAS, 1 thread)",
          "page_numpy": "page numpy (no BLAS)", "page_sgemm": "page scipy sgemm"}
REQUIRED = {
    "matmul_gflops": ("cpython_numpy", "cpython_numpy_1thread", "page_numpy"),
    "training": ("mlp_seed", "cnn_seed"),
    "page_load": ("cold_ms", "warm_ms", "bytes_cold_until_ready", "bytes_warm"),
    "latency_ms": ("median", "p95"),
    "worker_memory": ("heap_bytes_ready", "heap_bytes_after_1_epoch", "heap_bytes_after_10_epochs"),
}


def check(results: dict) -> list[str]:
    """Problems with a results dict: missing sections, non-positive or non-finite figures."""
    problems = []

    def positive(path, v):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            problems.append(f"{path} = {v!r} is not a positive finite number")

    def stat(path, s):
        if not isinstance(s, dict):
            problems.append(f"{path} missing")
            return
        for k in ("median", "min", "max"):
            positive(f"{path}.{k}", s.get(k))
        if all(isinstance(s.get(k), (int, float)) for k in ("median", "min", "max")) \
                and not s["min"] <= s["median"] <= s["max"]:
            problems.append(f"{path}: min <= median <= max does not hold")

    for section, keys in REQUIRED.items():
        if not isinstance(results.get(section), dict):
            problems.append(f"section {section} missing")
            continue
        for k in keys:
            if results[section].get(k) is None:
                problems.append(f"{section}.{k} missing")
    if problems:
        return problems
    m = results["matmul_gflops"]
    for k in PATHS:
        if m.get(k) is not None:
            stat(f"matmul_gflops.{k}", m[k])
    for model, entry in results["training"].items():
        for k in PATHS:
            if entry.get(k) is None:
                if k != "page_sgemm":
                    problems.append(f"training.{model}.{k} missing")
                continue
            stat(f"training.{model}.{k}.examples_per_s", entry[k]["examples_per_s"])
            positive(f"training.{model}.{k}.ratio_to_limit", entry[k]["ratio_to_limit"])
    load = results["page_load"]
    stat("page_load.cold_ms", load["cold_ms"])
    stat("page_load.warm_ms", load["warm_ms"])
    for k in KINDS[:3] + ("model", "total"):
        positive(f"page_load.bytes_cold_until_ready.{k}", load["bytes_cold_until_ready"].get(k))
    lat = results["latency_ms"]
    stat("latency_ms", lat)
    positive("latency_ms.p95", lat.get("p95"))
    mem = results["worker_memory"]
    for k in REQUIRED["worker_memory"]:
        positive(f"worker_memory.{k}", mem.get(k))
    sc = results.get("scipy_lazy_load") or {}
    if sc.get("available"):
        positive("scipy_lazy_load.bytes.total (first use downloads it)", sc["bytes"]["total"])
    tp = results.get("training_panel")
    if not isinstance(tp, dict) or "error" in tp:
        problems.append(f"training_panel not measured: {(tp or {}).get('error')}")
    else:
        for k in ("heap_bytes_after_1_epoch", "examples_per_s"):
            positive(f"training_panel.{k}", tp.get(k))
        # 0 = no long task (> 50 ms, the Long Tasks API's threshold) while training
        v = tp.get("longest_main_thread_task_ms")
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            problems.append(f"training_panel.longest_main_thread_task_ms = {v!r} is not a number >= 0")
    return problems


def targets(r: dict) -> list[dict]:
    """The site's and the training issue's targets (issues 3 and 4), against these figures."""
    load, lat, t, mem = r["page_load"], r["latency_ms"], r["training"]["mlp_seed"], r["worker_memory"]
    best = max((t[p]["examples_per_s"]["median"] for p in ("page_numpy", "page_sgemm") if t.get(p)),
               default=0.0)
    live = mem.get("live_bytes_by_epoch") or []
    panel = r.get("training_panel") or {}
    panel_heap = panel.get("heap_bytes_by_epoch") or []
    growth = (live[-1] - live[0]) if len(live) >= 2 else None
    rows = [
        ("navigation → ready, cold", "≤ 4,000 ms", load["cold_ms"]["median"], "{:,.0f} ms",
         load["cold_ms"]["median"] <= 4000),
        ("navigation → ready, warm (service worker)", "≤ 2,500 ms", load["warm_ms"]["median"],
         "{:,.0f} ms", load["warm_ms"]["median"] <= 2500),
        ("bytes of a cold load", "≤ 20 MB", load["bytes_cold_with_offline_cache"]["total"] / 1e6,
         "{:.2f} MB", load["bytes_cold_with_offline_cache"]["total"] <= 20e6),
        ("stroke end → probabilities, median", "≤ 30 ms", lat["median"], "{:.1f} ms", lat["median"] <= 30),
        ("stroke end → probabilities, p95", "≤ 60 ms", lat["p95"], "{:.1f} ms", lat["p95"] <= 60),
        ("seed MLP in the page, plain numpy, share of the matmul-bound limit", "≥ 70 %",
         100 * t["page_numpy"]["ratio_to_limit"], "{:.0f} %", t["page_numpy"]["ratio_to_limit"] >= 0.7),
        ("seed MLP in the page, fastest path", "≥ 3,000 examples/s", best, "{:,.0f} examples/s",
         best >= 3000),
        ("training panel: longest main-thread task while training", "≤ 200 ms",
         panel.get("longest_main_thread_task_ms"), "{:.0f} ms",
         panel.get("longest_main_thread_task_ms") is not None
         and panel["longest_main_thread_task_ms"] <= 200),
        (f"training panel: worker heap growth from epoch 1 to {len(panel_heap)}", "flat (≤ 1 MB)",
         None if len(panel_heap) < 2 else (panel_heap[-1] - panel_heap[0]) / 1e6, "{:+.2f} MB",
         len(panel_heap) >= 2 and panel_heap[-1] - panel_heap[0] <= 1e6),
        ("live worker memory, growth from epoch 1 to 10", "flat (≤ 1 MB)",
         None if growth is None else growth / 1e6, "{:+.2f} MB", growth is not None and growth <= 1e6),
    ]
    return [{"what": w, "target": tg, "met": bool(ok),
             "measured": None if v is None else task_ms(v) if "main-thread" in w else fmt.format(v)}
            for w, tg, v, fmt, ok in rows]


def fmt_stat(s, digits=0, scale=1.0) -> str:
    if not s:
        return "—"
    f = f"{{:,.{digits}f}}"
    if s.get("runs", 1) == 1 or s["min"] == s["max"]:
        return f.format(s["median"] * scale)
    return (f"{f.format(s['median'] * scale)} ({f.format(s['min'] * scale)}–"
            f"{f.format(s['max'] * scale)})")


def mb(n) -> str:
    return "—" if n is None else f"{n / 1e6:.2f} MB"


def task_ms(v) -> str:
    return "none over 50 ms" if not v else f"{v:.0f} ms"  # Long Tasks API: tasks > 50 ms


def panel_lines(tp) -> list[str]:
    if not tp:
        return []
    head = ["## The training panel", ""]
    if "error" in tp:
        return head + [f"Not measured: {tp['error']}", ""]
    heap = tp["heap_bytes_by_epoch"]
    return head + [
        f"The page's own Train button: seed MLP, tutorial preset, {tp['epochs']} "
        f"epoch{'s' if tp['epochs'] != 1 else ''} of the "
        f"8,000 training digits, {tp['matmul']} products, charts and log live "
        f"({tp['wall_s']:.1f} s from the click to the test accuracy).",
        "",
        "| examples/s (panel) | longest main-thread task | heap at ready | heap after epoch 1 | "
        f"heap after epoch {len(heap)} | test accuracy |",
        "|---|---|---|---|---|---|",
        f"| {tp['examples_per_s']:,.0f} | {task_ms(tp['longest_main_thread_task_ms'])} | "
        f"{mb(tp['heap_bytes_ready'])} | {mb(heap[0] if heap else None)} | "
        f"{mb(heap[-1] if heap else None)} | {100 * tp['test_accuracy']:.2f} % |",
        "",
    ]


def markdown(r: dict) -> str:
    from digitnet.bench import MLP_FLOPS_PER_EXAMPLE as mlp_convention
    m = r["meta"]
    mm = r["matmul_gflops"]
    t = r["training"]
    load = r["page_load"]
    lat = r["latency_ms"]
    mem = r["worker_memory"]
    sc = r["scipy_lazy_load"]
    la = m["load_average_start"]
    lines = [
        "# digitnet benchmarks",
        "",
        f"Generated by `python3 build.py bench{' --quick' if m['quick'] else ''}` on "
        f"{m['date']} in {m['run_s']:.0f} s. Each figure: median (min–max) of the runs given.",
        "",
        f"- Machine: {m['nproc']} cores, {m['cpu']}; {m['os']}.",
        f"- CPython {m['python']}, numpy {m['numpy']} (its BLAS may use every core); "
        f"Chromium {m['chromium']}; Pyodide {m['pyodide'].get('version', '?')} "
        f"(Python {m['pyodide'].get('python', '?')}, numpy {m['pyodide'].get('numpy', '?')}, "
        "single-threaded WebAssembly).",
        f"- Load average at start: {' / '.join(map(str, la))} (1 / 5 / 15 min); at the end: "
        f"{' / '.join(map(str, m['load_average_end']))}; 1-minute load while running "
        f"{fmt_stat(m.get('load_average_1min_during'), 1)}. The machine is shared (other "
        "engineers' builds, tests and training runs), so treat the numbers as indicative: "
        "repeated runs differ by ±20–30 % and more for load times.",
        "",
        "## Against the targets (issues 3 and 4)",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
        *(f"| {x['what']} | {x['target']} | {x['measured'] or '—'} | {'yes' if x['met'] else '**no**'} |"
          for x in r["targets"]),
        "",
        "## Matrix product (the limit)",
        "",
        f"float32, the seed MLP's six training matmuls at batch {mm['batch']} "
        "(`digitnet.bench.matmul_gflops`), GFLOP/s; median (min–max) over bursts (each the "
        "median of a few repetitions, ~1 s), one burst before each training run below:",
        "",
        "| " + " | ".join(["", *(LABELS[k] for k in PATHS)]) + " |",
        "|---|---|---|---|---|",
        "| GFLOP/s | " + " | ".join(fmt_stat(mm.get(k), 1 if k.startswith("cpython") else 2)
                                    for k in PATHS) + " |",
        "",
        "## Training throughput",
        "",
        "Examples/s of `digitnet.bench.training_throughput` (seed recipe: SGD, no augmentation; "
        "whole epochs incl. shuffling and bookkeeping, validation excluded). Effective GFLOP/s = "
        "examples/s × FLOPs per example, the products training performs: forward, and "
        "backward dW and dx except the first layer's dx, which training skips (MLP "
        f"784-256-128-10: {t['mlp_seed']['flops_per_example'] / 1e6:.2f} MFLOP — "
        f"`digitnet.bench.MLP_FLOPS_PER_EXAMPLE`'s {mlp_convention / 1e6:.2f} counts that dx too; CNN: "
        f"{t['cnn_seed']['flops_per_example'] / 1e6:.1f} MFLOP, its conv (im2col) and dense products). "
        "Limit = the matmul rate above / FLOPs per example. % of limit pairs each training run "
        "with the matmul burst measured just before it (same machine load), median (min–max). "
        "The CNN's limit is only a yardstick: its convolutions run other shapes, through einsum "
        "in Pyodide (faster than its matmul there), never through sgemm.",
        "",
        "| model (batch, examples × epochs) | path | examples/s | effective GFLOP/s | matmul-bound limit (examples/s) | % of limit |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in (("mlp_seed", "seed MLP"), ("cnn_seed", "seed CNN")):
        e = t[key]
        for path in PATHS:
            label = LABELS[path]
            x = e.get(path)
            if x is None:
                lines.append(f"| {name} | {label} | not measured | | |")
                continue
            lines.append(
                f"| {name} (batch {e['batch_size']}, {x['examples']:,} × {x['epochs']}) | {label} | "
                f"{fmt_stat(x['examples_per_s'])} | {x['effective_gflops']:.2f} | "
                f"{x['matmul_limit_examples_per_s']:,.0f} | "
                f"{fmt_stat(x['ratio_to_limit_runs'], 0, 100)} % |")
    ratio = lambda a, b: (a / b) if a and b else float("nan")  # noqa: E731
    mlp = t["mlp_seed"]
    best_page = max((mlp[p]["examples_per_s"]["median"] for p in ("page_numpy", "page_sgemm") if mlp.get(p)),
                    default=None)
    lines += [
        "",
        f"CPython (all cores) trains the seed MLP "
        f"{ratio(mlp['cpython_numpy']['examples_per_s']['median'], best_page):.1f}× as fast as the "
        f"page's fastest path ({ratio(mlp['cpython_numpy_1thread']['examples_per_s']['median'], best_page):.1f}× "
        "on one thread). On this shared machine, multi-threaded OpenBLAS suffers most from other "
        "processes (its threads wait for each other), so the one-thread row is the steadier "
        "comparison with the single-threaded page.",
        "",
        "## Page load",
        "",
        "Navigation → `<html data-state=\"ready\">` (the page's own `data-ready-ms`: pretrained "
        "model loaded, first classification possible). Cold = a fresh browser context (empty "
        "cache, no service worker); warm = the same context reloaded, service worker in control "
        f"(`data-sw={load['warm_service_worker']}`), offline cache complete. Local server "
        "(`build.make_server`), which gzips text and wasm for browsers that accept it, as GitHub "
        "Pages does.",
        "",
        "| | ms | bytes on the wire |",
        "|---|---|---|",
        f"| cold ({load['cold_ms']['runs']} runs) | {fmt_stat(load['cold_ms'])} | "
        f"{mb(load['bytes_cold_until_ready']['total'])} until ready, "
        f"{mb(load['bytes_cold_with_offline_cache']['total'])} with the offline cache completed |",
        f"| warm ({load['warm_ms']['runs']} runs) | {fmt_stat(load['warm_ms'])} | "
        f"{mb(load['bytes_warm']['total'])} ({load['bytes_warm']['requests']} requests) |",
        "",
        "Bytes by kind of file (counted by the server per response body, so the worker's and "
        "the service worker's requests are included):",
        "",
        "| kind | cold, until ready | cold, offline cache complete | warm | what |",
        "|---|---|---|---|---|",
    ]
    for k in KINDS:
        lines.append(f"| {k} | {mb(load['bytes_cold_until_ready'][k])} | "
                     f"{mb(load['bytes_cold_with_offline_cache'][k])} | {mb(load['bytes_warm'][k])} | "
                     f"{KIND_NOTES[k]} |")
    lines.append(f"| **total** | **{mb(load['bytes_cold_until_ready']['total'])}** | "
                 f"**{mb(load['bytes_cold_with_offline_cache']['total'])}** | "
                 f"**{mb(load['bytes_warm']['total'])}** | |")
    if sc.get("available"):
        lines += ["", f"Training's lazy scipy + openblas (sgemm): {mb(sc['bytes']['total'])} on first use, "
                  f"loaded in {sc['load_ms']:,.0f} ms (not part of a page load)."]
    else:
        lines += ["", f"scipy sgemm not available in the page: {sc.get('error')}"]
    lines += [
        "",
        "## Classification latency",
        "",
        f"Stroke end (pointerup) → probabilities rendered (`data-latency-ms`), "
        f"{lat['drawings']} mouse drawings of single-stroke digits on a warm page:",
        "",
        "| median | p95 | min–max | worker compute (median) |",
        "|---|---|---|---|",
        f"| {lat['median']:.1f} ms | {lat['p95']:.1f} ms | {lat['min']:.1f}–{lat['max']:.1f} ms | "
        f"{lat.get('worker_compute_ms_median', float('nan')):.1f} ms |",
        "",
        "## Worker memory",
        "",
        "The page worker's WebAssembly heap (`HEAPU8.length`; it only grows, so this is the "
        f"high-water mark), training the seed MLP with digitnet's `fit` in the page's worker "
        f"({mem['path']} path, {mem['examples']:,} examples per epoch, tracemalloc on during "
        "training). The heap reported after loading the data already holds the training's "
        "working set, so the live bytes are the leak indicator: they should not grow per epoch.",
        "",
        "| | page ready | scipy loaded | data loaded, before training | after 1 epoch | after 10 epochs |",
        "|---|---|---|---|---|---|",
        f"| WebAssembly heap | {mb(mem['heap_bytes_ready'])} | {mb(mem.get('heap_bytes_after_scipy'))} | "
        f"{mb(mem['heap_bytes_before_training'])} | {mb(mem['heap_bytes_after_1_epoch'])} | "
        f"{mb(mem['heap_bytes_after_10_epochs'])} |",
        f"| live Python + numpy bytes (tracemalloc) | | | | {mb(mem.get('live_bytes_after_1_epoch'))} | "
        f"{mb(mem.get('live_bytes_after_10_epochs'))} |",
        "",
        *panel_lines(r.get("training_panel")),
        "Raw figures: [benchmarks.json](benchmarks.json).",
        "",
    ]
    return "\n".join(lines)


def run(out: Path, quick: bool = False, do_build: bool = True) -> dict:
    t0 = time.perf_counter()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick, "nproc": os.cpu_count(), "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}", "load_average_start": loadavg(),
    }
    build = load_build()
    if do_build:
        log("building dist/ (if needed)")
        build.build(verbose=False)
    dist = Path(os.environ.get("DIGITNET_BENCH_DIST", build.DIST))  # another built site, for development
    if not (dist / "index.html").exists():
        raise SystemExit(f"{dist / 'index.html'} is missing: run `python3 build.py build`")
    with LoadSampler() as sampler:
        cpy = cpython_runs(quick)
        pg = page_measurements(build, dist, quick)
    first = cpy["cpython_numpy"]
    meta.update({"python": first["python"], "numpy": first["numpy"], "chromium": pg["chromium"],
                 "pyodide": pg["pyodide"], "load_average_end": loadavg(),
                 "load_average_1min_during": summary(sampler.samples or [0.0]),
                 "run_s": time.perf_counter() - t0})
    results = assemble(cpy, pg, meta)
    results["targets"] = targets(results)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')} in {meta['run_s']:.0f} s")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 build.py bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewest repetitions, small runs (smoke test)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"),
                        help="output path without extension: writes OUT.json and OUT.md "
                             "(default docs/benchmarks)")
    parser.add_argument("--no-build", action="store_true", help="use dist/ as it is")
    parser.add_argument("--cpython-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpython_json:  # internal: one CPython variant, as JSON on stdout
        print(json.dumps(cpython_measurements(args.quick)))
        return 0
    results = run(Path(args.out), quick=args.quick, do_build=not args.no_build)
    problems = check(results)
    if problems:
        print("bench: incomplete results:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
