#!/usr/bin/env python3
"""One benchmark, side by side: CPython vs the page (Pyodide in Chromium), against the limits.

    python3 build.py bench [--quick] [--out docs/benchmarks] [--no-build]

(build.py sets up .venv with the pinned Playwright, as `build.py test` does, and runs this
file with it.) It builds dist/ if needed and measures, each figure the median (min, max)
of several repetitions:

- matmul GFLOP/s, float32, at the tutorial MLP's training shapes (digitnet.bench): CPython
  numpy (all cores, one thread), the page's numpy (no BLAS) and its lazily loaded scipy
  sgemm -- the limits training is bound by;
- training throughput of the tutorial MLP and CNN on each path, with its ratio to the
  matmul-bound limit (matmul rate / FLOPs per example, from the layer shapes);
- the page (tools/bench_page.py): cold and warm load times and bytes, stroke-to-
  probabilities latency, the worker's memory while training, the training panel;
- the shipped models' accuracy on the bundled MNIST test split and on the drawn test set
  (tools/drawn_eval.py: the drawn digits as the page's pad renders them), lowest styles;
- TensorFlow.js training the same MLP on the same digits in the same Chromium
  (tools/bench_tfjs.py), beside the page's figures;
- the targets, met or not. Writes OUT.json and OUT.md (tools/bench_report.py).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "py" / "src"), str(ROOT / "tests" / "e2e")]
from digitnet.bench import summary  # noqa: E402
from tools.bench_common import KINDS, REPS, TRAIN_SIZES, log, paired_runs  # noqa: E402
from tools.bench_page import page_measurements  # noqa: E402
from tools.bench_report import PATHS, assemble, markdown, targets  # noqa: E402
from tools import bench_tfjs, bench_workers  # noqa: E402
from tools.common import DIST  # noqa: E402
from tools.drawn_eval import evaluate  # noqa: E402
from tools.drawn_set import load_strokes  # noqa: E402

# What complete results hold: section -> keys (see check).
REQUIRED = {
    "matmul_gflops": ("cpython_numpy", "cpython_numpy_1thread", "page_numpy"),
    "training": ("mlp_seed", "cnn_seed"),
    "page_load": ("cold_ms", "warm_ms", "bytes_cold_until_ready", "bytes_warm"),
    "latency_ms": ("median", "p95"),
    "worker_memory": ("heap_bytes_ready", "heap_bytes_after_1_epoch", "heap_bytes_after_10_epochs"),
    "accuracy": ("n_mnist", "n_drawn", "mlp", "cnn"),
}
SHIPPED_MODELS = ("mlp", "cnn")  # dist/models/<name>.npz
DRAWN_SET = "test"
LOWEST_STYLES = 3


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


def accuracy_measurements(dist: Path) -> dict:
    """The shipped models' accuracy on the bundled MNIST test split and on the drawn set,
    per model: mnist, drawn, by_style {style: [correct, total]}, lowest_styles (the
    LOWEST_STYLES worst styles with a miss, worst first)."""
    log(f"accuracy: MNIST test split and drawn {DRAWN_SET} set")
    rows = evaluate([str(dist / "models" / f"{m}.npz") for m in SHIPPED_MODELS], DRAWN_SET)
    out = {"drawn_set": DRAWN_SET, "n_mnist": rows[0]["n_mnist"], "n_drawn": rows[0]["n_drawn"]}
    for name, row in zip(SHIPPED_MODELS, rows):
        by_style = {str(s): [c, n] for s, (c, n) in row["by_style"].items()}
        missed = [s for s, (c, n) in by_style.items() if c < n]
        worst = sorted(missed, key=lambda s: (by_style[s][0] / by_style[s][1], s))
        out[name] = {"file": f"models/{name}.npz", "mnist": row["mnist"], "drawn": row["drawn"],
                     "by_style": by_style, "lowest_styles": worst[:LOWEST_STYLES]}
    return out


# ---------------------------------------------------------------- CPython side

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
    pyodide = (results.get("meta") or {}).get("pyodide") or {}
    if not pyodide.get("version"):
        problems.append(f"meta.pyodide.version missing ({pyodide.get('error', 'no probe result')})")
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
    acc = results["accuracy"]
    n_drawn = len(load_strokes(acc.get("drawn_set", DRAWN_SET)))
    if acc["n_drawn"] != n_drawn:
        problems.append(f"accuracy.n_drawn = {acc['n_drawn']!r}, the drawn set has {n_drawn} digits")
    for model in SHIPPED_MODELS:
        for k in ("mnist", "drawn"):
            v = acc[model].get(k)
            if not isinstance(v, float) or not 0 < v <= 1:
                problems.append(f"accuracy.{model}.{k} = {v!r} is not an accuracy in (0, 1]")
        if sum(n for _, n in acc[model].get("by_style", {}).values()) != acc["n_drawn"]:
            problems.append(f"accuracy.{model}.by_style does not count every drawn digit")
    problems += bench_tfjs.check(results.get("tfjs"))
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


def run(out: Path, quick: bool = False, do_build: bool = True) -> dict:
    t0 = time.perf_counter()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick, "nproc": os.cpu_count(), "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}", "load_average_start": loadavg(),
    }
    if do_build:
        import build
        log("building dist/ (if needed)")
        build.build(verbose=False)
    dist = Path(os.environ.get("DIGITNET_BENCH_DIST", DIST))  # another built site, for development
    if not (dist / "index.html").exists():
        raise SystemExit(f"{dist / 'index.html'} is missing: run `python3 build.py build`")
    with LoadSampler() as sampler:
        cpy = cpython_runs(quick)
        pg = page_measurements(dist, quick)
        try:
            tfjs = bench_tfjs.tfjs_measurements(quick)
        except Exception as e:  # reported (and failed by check), the other figures kept
            tfjs = {"error": str(e).strip().splitlines()[0][:300]}
        log("page: training on 1 and on all workers (the panel)")
        try:  # quick mode skips it: the training workers take a while to start
            workers = {"skipped": "quick mode"} if quick else bench_workers.measure_site(dist, epochs=5, rounds=3)
        except Exception as e:
            workers = {"error": str(e).strip().splitlines()[0][:300]}
    accuracy = accuracy_measurements(dist)
    first = cpy["cpython_numpy"]
    meta.update({"python": first["python"], "numpy": first["numpy"], "chromium": pg["chromium"],
                 "pyodide": pg["pyodide"], "load_average_end": loadavg(),
                 "load_average_1min_during": summary(sampler.samples or [0.0]),
                 "run_s": time.perf_counter() - t0})
    results = assemble(cpy, pg, accuracy, meta)
    results["page_workers"] = workers
    if "workers" in workers:
        results["training"]["mlp_seed"][bench_tfjs.PAGE_WORKERS] = {
            "examples_per_s": workers["examples_per_s"][str(workers["workers"])],
            "workers": workers["workers"]}
    results["tfjs"] = tfjs
    results["vs_tfjs"] = bench_tfjs.comparison(tfjs, bench_tfjs.digitnet_rows(results),
                                               bench_tfjs.digitnet_cnn(results))
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
