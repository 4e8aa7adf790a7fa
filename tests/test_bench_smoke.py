"""Keeps `python3 build.py bench` from rotting: its quick mode, run on the built dist/, and
its TensorFlow.js part on its own (tools/bench_tfjs.py --quick).

The quick run (~1 min on a busy 2-core machine; fewest repetitions, small training runs)
must produce every section of the results with positive finite figures. The check itself
has a negative control: results with a hole or a bad figure must be rejected.
"""
from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


from tools import bench, bench_tfjs  # noqa: E402


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    if not (ROOT / "dist" / "index.html").exists():
        pytest.fail("dist/ is not built: run `python3 build.py test` (it builds first)", pytrace=False)
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed in this Python: run `python3 build.py test`",
                    pytrace=False)
    out = tmp_path_factory.mktemp("bench") / "benchmarks"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--quick", "--no-build",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"bench --quick failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md").read_text()


def test_quick_bench_reports_every_section(quick_results):
    results, md = quick_results
    assert bench.check(results) == []
    for section in bench.REQUIRED:
        assert section in results
    # CPython and the page, side by side.
    m = results["matmul_gflops"]
    assert m["cpython_numpy_1thread"]["median"] > m["page_numpy"]["median"]  # BLAS vs none
    for model in ("mlp_seed", "cnn_seed"):
        for path in ("cpython_numpy", "page_numpy"):
            entry = results["training"][model][path]
            assert math.isfinite(entry["ratio_to_limit"]) and entry["ratio_to_limit"] > 0
    load = results["page_load"]
    assert load["warm_service_worker"] == "controlled"
    assert load["bytes_cold_until_ready"]["wasm"] > 1e6  # the Pyodide runtime came over the wire
    lat = results["latency_ms"]
    assert lat["drawings"] == bench.REPS["drawings"][1]  # every quick-mode drawing was classified
    # The worker's compute is part of each stroke's latency, so its median cannot exceed it.
    assert 0 < lat["worker_compute_ms_median"] <= lat["median"]
    mem = results["worker_memory"]
    assert len(mem["heap_bytes_by_epoch"]) == len(mem["live_bytes_by_epoch"]) == 10
    # No leak while training: after the first epoch the heap stays put and the live Python
    # and numpy bytes grow by well under 100 kB over nine more epochs.
    assert mem["heap_bytes_after_10_epochs"] - mem["heap_bytes_after_1_epoch"] <= 1_000_000
    assert mem["live_bytes_after_10_epochs"] - mem["live_bytes_after_1_epoch"] < 100_000
    assert bench_tfjs.check(results["tfjs"]) == []
    vs = results["vs_tfjs"]
    page = results["training"]["mlp_seed"]["page_sgemm"] or results["training"]["mlp_seed"]["page_numpy"]
    row = vs["digitnet"]["page_1_worker"]  # the page's figure, over TF.js's from the same run
    assert row["examples_per_s"] == page["examples_per_s"]["median"]
    assert row["over_tfjs_fit"] == pytest.approx(row["examples_per_s"] / vs["tfjs_fit"]["examples_per_s"])
    assert vs["tfjs_fastest_loop"]["kind"] in ("minimize", "manual")
    one_thread = vs["tfjs_fastest_loop_1_thread"]  # what a host without isolation headers gets
    if any(run["threads"] == 1 for run in results["tfjs"]["runs"]):
        assert one_thread["threads"] == 1
        assert one_thread["examples_per_s"] <= vs["tfjs_fastest_loop"]["examples_per_s"]
        assert row["over_tfjs_fastest_loop_1_thread"] == pytest.approx(
            row["examples_per_s"] / one_thread["examples_per_s"])
    else:  # quick mode: a thread per core only
        assert one_thread is None and row["over_tfjs_fastest_loop_1_thread"] is None
    for heading in ("Accuracy: MNIST and drawn digits", "Matrix product", "Training throughput", "Page load",
                    "Classification latency", "Worker memory",
                    "TensorFlow.js: the same MLP, the same digits, the same Chromium"):
        assert f"## {heading}" in md
    assert not re.search(r"\bnan\b", md, re.IGNORECASE), "a figure in the table is not a number"


def test_quick_bench_reports_mnist_and_drawn_accuracy_side_by_side(quick_results):
    results, md = quick_results
    acc = results["accuracy"]
    assert acc["drawn_set"] == "test" and acc["n_drawn"] == 360 and acc["n_mnist"] == 2000
    assert "| model | MNIST test split | drawn test set (360 digits) | lowest styles (drawn) |" in md
    for model in ("mlp", "cnn"):
        a = acc[model]
        assert 0 < a["mnist"] <= 1 and 0 < a["drawn"] <= 1
        assert sum(n for _, n in a["by_style"].values()) == 360
        assert 0 < sum(c for c, _ in a["by_style"].values()) / 360 == pytest.approx(a["drawn"])
        # The lowest styles (with a miss), worst first, are no better than any style left out.
        rate = {s: c / n for s, (c, n) in a["by_style"].items()}
        worst = [rate[s] for s in a["lowest_styles"]]
        others = [r for s, r in rate.items() if s not in a["lowest_styles"]]
        assert worst == sorted(worst) and all(r < 1 for r in worst)
        assert len(worst) == bench.LOWEST_STYLES or all(r == 1 for r in others)
        assert all(worst[-1] <= r for r in others) if worst else a["drawn"] == 1
        row = rf"^\| {model} \(`models/{model}\.npz`\) \| {100 * a['mnist']:.2f} % \| {100 * a['drawn']:.2f} % \| \S"
        assert re.search(row, md, re.MULTILINE), f"no table row for {model} with its accuracies"


def test_check_rejects_holes_and_bad_figures(quick_results):
    """Negative control: the check the command and the test rely on can fail."""
    results, _ = quick_results
    broken = copy.deepcopy(results)
    del broken["latency_ms"]
    assert any("latency_ms" in p for p in bench.check(broken))
    broken = copy.deepcopy(results)
    broken["matmul_gflops"]["page_numpy"]["median"] = float("nan")
    assert any("page_numpy" in p for p in bench.check(broken))
    broken = copy.deepcopy(results)
    broken["worker_memory"]["heap_bytes_after_10_epochs"] = None
    assert bench.check(broken)
    broken = copy.deepcopy(results)
    broken["training"]["mlp_seed"]["page_numpy"]["examples_per_s"]["median"] = 0
    assert bench.check(broken)
    broken = copy.deepcopy(results)
    broken["accuracy"]["n_drawn"] = 359
    assert any("n_drawn" in p for p in bench.check(broken))
    for model, key, bad in (("mlp", "drawn", 0.0), ("cnn", "mnist", 1.5), ("cnn", "drawn", None)):
        broken = copy.deepcopy(results)
        broken["accuracy"][model][key] = bad
        assert any(f"accuracy.{model}.{key}" in p for p in bench.check(broken))
    broken = copy.deepcopy(results)
    del broken["accuracy"]["cnn"]
    assert any("accuracy.cnn" in p for p in bench.check(broken))
    broken = copy.deepcopy(results)
    broken["tfjs"] = {"error": "TF.js is not installed"}
    assert any("tfjs" in p for p in bench.check(broken))


# ---------------------------------------------------------------- TensorFlow.js on its own

@pytest.fixture(scope="module")
def tfjs_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfjs") / "tfjs.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_tfjs.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"bench_tfjs --quick failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_tfjs_trains_the_mlp_on_its_wasm_backend(tfjs_quick):
    """TF.js's model.fit, autodiff and hand-written loops each train the tutorial MLP, measurably
    and well above chance, on the wasm backend (SIMD, cross-origin isolated for threads)."""
    assert bench_tfjs.check(tfjs_quick) == []
    [run] = tfjs_quick["runs"]
    assert run["tfjs"] == "4.22.0" and run["backend"] == "wasm" and run["simd"] is True
    assert run["cross_origin_isolated"] is True and run["multithread"] is True
    assert run["threads"] == min(run["hardware_concurrency"], 8) >= 1  # a thread per core (TF.js: <= 8)
    for kind in bench_tfjs.VARIANTS:
        r = run["results"][kind]
        rate = r["examples_per_s"]["median"]
        assert math.isfinite(rate) and rate > 0
        assert r["examples"] > 1000 and r["epochs"] == 1 and r["batch_size"] == 256
        assert r["examples_per_s"]["median"] == pytest.approx(r["examples"] / r["epoch_s"][0])
        # ~5 SGD steps from digitnet's initial weights: digitnet itself reaches 38-46 % there.
        assert r["test_accuracy"] > 0.25, f"{kind}: {r['test_accuracy']:.3f}"
        assert r["leaked_tensors"] <= 2
    # The hand-written backprop is the gradient TF.js's autodiff computes: same start, same
    # batches, same steps -> the same predictions, up to float rounding.
    assert run["results"]["manual"]["test_accuracy"] == pytest.approx(
        run["results"]["minimize"]["test_accuracy"], abs=0.005)
    # The CNN: trained, or the wasm backend's reason why not (4.22 lacks a conv gradient kernel).
    assert "cnn_fit" in run["results"] or "Conv2DBackpropFilter" in run["cannot_train"]["cnn_fit"]


def test_tfjs_check_rejects_bad_runs(tfjs_quick):
    """Negative control for bench_tfjs.check: wrong backend, bad figure, chance accuracy, no run."""
    assert bench_tfjs.check({"error": "TF.js is not installed"}) != []
    for path, bad in ((("backend",), "cpu"), (("results", "fit", "examples_per_s", "median"), float("nan")),
                      (("results", "manual", "test_accuracy"), 0.1), (("threads",), 0)):
        broken = copy.deepcopy(tfjs_quick)
        node = broken["runs"][0]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        assert bench_tfjs.check(broken), f"{path} = {bad!r} was accepted"
    broken = copy.deepcopy(tfjs_quick)
    del broken["runs"][0]["results"]["fit"]
    assert any("model.fit" in p for p in bench_tfjs.check(broken))
