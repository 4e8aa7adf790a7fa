#!/usr/bin/env python3
"""TensorFlow.js in the benchmark: the tutorial MLP trained by TF.js 4.22 in the same Chromium.

    python3 tools/bench_tfjs.py [--quick] [--json OUT.json]   (only this part of the bench)

The bench page (tools/tfjs_bench/) is served by this module's own server, never from
dist/: it loads TF.js and its WebAssembly binaries from node_modules (pinned
devDependencies) and is cross-origin isolated (COOP/COEP headers), so TF.js may use wasm
threads. It trains on the same split (digitnet.data.load_bundle) from digitnet's initial
weights for the tutorial recipe, handed over as data/meta.json + data/digits.bin.
"""
from __future__ import annotations

import argparse
import json
import math
import posixpath
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "py" / "src"), str(ROOT / "tests" / "e2e")]

from tools.bench_common import log  # noqa: E402
from tools.devserver import SiteHandler  # noqa: E402

PAGE = ROOT / "tools" / "tfjs_bench"
TFJS = ROOT / "node_modules" / "@tensorflow"
# URL prefix -> directory the bench server serves it from.
MOUNTS = {"/tfjs/": TFJS / "tfjs" / "dist", "/tfjs-backend-wasm/": TFJS / "tfjs-backend-wasm" / "dist"}
VARIANTS = ("fit", "minimize", "manual")  # the MLP's; "cnn_fit": the tutorial CNN's model.fit
LABELS = {"fit": "TF.js `model.fit` (tf.sequential, sgd)",
          "cnn_fit": "TF.js `model.fit`, tutorial CNN",
          "minimize": "TF.js `optimizer.minimize` (autodiff of tf ops)",
          "manual": "TF.js hand-written backprop (tf.matMul in tf.tidy)"}
# (threads, variants) per page load: one thread, like one digitnet worker (and TF.js's own
# default on a 2-core machine: it uses half the cores), then a thread per core
# (navigator.hardwareConcurrency). Quick mode: every core.
# The CNN only where the wasm backend can train it (4.22 cannot: it has no kernel for a
# convolution's filter gradient); its error is then reported instead.
RUNS = {"full": [(1, (*VARIANTS, "cnn_fit")), ("all", VARIANTS)], "quick": [("all", (*VARIANTS, "cnn_fit"))]}
CHANCE = 0.1  # accuracy of guessing one of ten digits
SIZES = {"full": (None, 3), "quick": (1024, 1)}  # (training examples or None = all, epochs)
RUN_TIMEOUT_MS = 600_000


def write_digits(folder: Path, limit: int | None = None) -> dict:
    """The bundled split (about `limit` training digits if given, as digitnet.bench cuts
    it; every test digit) and the tutorial MLP's initial weights as folder/meta.json (names,
    dtypes, shapes, byte offsets) + folder/digits.bin (the arrays, little-endian)."""
    import numpy as np
    from digitnet import data
    from digitnet.bench import subset
    from digitnet.recipes import get_recipe, model_and_optimizer

    ds = subset(data.load_bundle(), limit, n_test=None)  # the cut digitnet's bench makes
    model, _ = model_and_optimizer(get_recipe("mlp", "tutorial"))
    arrays = {"x_train": ds.x_train, "y_train": ds.y_train, "x_test": ds.x_test, "y_test": ds.y_test}
    names = []
    for i, p in enumerate(model.parameters()):
        names.append(f"w{i}")
        arrays[f"w{i}"] = p.value
    meta, offset = {"arrays": [], "weights": names}, 0
    with open(folder / "digits.bin", "wb") as f:
        for name, a in arrays.items():
            a = np.ascontiguousarray(a, "<f4" if a.dtype.kind == "f" else "<i4")
            meta["arrays"].append({"name": name, "dtype": "float32" if a.dtype.kind == "f" else "int32",
                                   "shape": list(a.shape), "offset": offset})
            f.write(a.tobytes())
            offset += a.nbytes
    (folder / "meta.json").write_text(json.dumps(meta))
    return meta


class BenchPageHandler(SiteHandler):
    """The bench page, TF.js from node_modules and the digits, cross-origin isolated."""
    quiet = True
    data_dir: Path = Path()

    def translate_path(self, path):
        path = posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(path).path))
        roots = {**MOUNTS, "/data/": self.data_dir}
        for prefix, root in roots.items():
            if path.startswith(prefix):
                return str(root / path[len(prefix):])
        return str(PAGE / (path.lstrip("/") or "index.html"))

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


def start_server(data_dir: Path):
    import http.server

    handler = type("Handler", (BenchPageHandler,), {"data_dir": data_dir})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="tfjs-bench-server", daemon=True).start()
    return server


def tfjs_measurements(quick: bool, runs=None, size=None) -> dict:
    """Train with TF.js in Chromium, one page load per (threads, variants) of RUNS (or `runs`),
    on SIZES (or `size` = (limit, epochs)). -> {"runs": [the page's tfjsBench.run results]}."""
    from playwright.sync_api import sync_playwright
    from helpers import CHROMIUM, CHROMIUM_ARGS

    mode = "quick" if quick else "full"
    limit, epochs = size or SIZES[mode]
    missing = [str(d) for d in MOUNTS.values() if not d.is_dir()]
    if missing:
        raise RuntimeError(f"TF.js is not installed ({', '.join(missing)} missing): run npm ci")
    out: dict = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="digitnet-tfjs-") as tmp:
        write_digits(Path(tmp), limit)
        server = start_server(Path(tmp))
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                out["chromium"] = browser.version
                try:
                    for threads, variants in runs or RUNS[mode]:
                        log(f"TF.js: {', '.join(variants)} (threads: {threads})")
                        page = browser.new_page()
                        page.set_default_timeout(RUN_TIMEOUT_MS)
                        page.goto(url)
                        out["runs"].append(page.evaluate(
                            "(o) => window.tfjsBench.run(o)",
                            {"threads": threads, "variants": list(variants), "epochs": epochs, "seed": 0}))
                        page.close()
                finally:
                    browser.close()
        finally:
            server.shutdown()
            server.server_close()
    return out


def fastest(tfjs: dict, kinds, threads: int | None = None) -> dict | None:
    """The fastest of `kinds` over every run (or the runs on `threads` threads): {kind,
    threads, cap_lifted, examples_per_s (median), test_accuracy}, or None."""
    rows = [{"kind": kind, "threads": run["threads"], "cap_lifted": run.get("cap_lifted", False),
             "examples_per_s": r["examples_per_s"]["median"], "test_accuracy": r["test_accuracy"]}
            for run in tfjs.get("runs", []) if threads in (None, run["threads"])
            for kind, r in run.get("results", {}).items() if kind in kinds]
    return max(rows, key=lambda x: x["examples_per_s"], default=None)


def check(tfjs) -> list[str]:
    """Problems with the TF.js results: no run, not the wasm backend, bad figures."""
    if not isinstance(tfjs, dict) or not tfjs.get("runs"):
        return [f"tfjs: no TF.js run ({(tfjs or {}).get('error', 'not measured')})"]
    problems = []
    for i, run in enumerate(tfjs["runs"]):
        if run.get("backend") != "wasm":
            problems.append(f"tfjs.runs[{i}].backend = {run.get('backend')!r}, not 'wasm'")
        if not isinstance(run.get("threads"), int) or run["threads"] < 1:
            problems.append(f"tfjs.runs[{i}].threads = {run.get('threads')!r}")
        if "fit" not in run.get("results", {}):
            problems.append(f"tfjs.runs[{i}]: model.fit not measured")
        for kind in run.get("cannot_train") or {}:
            if kind != "cnn_fit":
                problems.append(f"tfjs.runs[{i}]: {kind} failed: {run['cannot_train'][kind]}")
        for kind, r in run.get("results", {}).items():
            s = r.get("examples_per_s") or {}
            for k in ("median", "min", "max"):
                v = s.get(k)
                if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                    problems.append(f"tfjs.runs[{i}].{kind}.examples_per_s.{k} = {v!r} "
                                    "is not a positive finite number")
            acc = r.get("test_accuracy")
            if not isinstance(acc, (int, float)) or not CHANCE < acc <= 1:
                problems.append(f"tfjs.runs[{i}].{kind}.test_accuracy = {acc!r} is not above chance")
    return problems


# Where the page's data-parallel figure goes when the benchmark measures it:
# results["training"]["mlp_seed"][PAGE_WORKERS] = {"examples_per_s": {"median": ...}, "workers": N}.
PAGE_WORKERS = "page_workers"


def digitnet_cnn(results: dict) -> float | None:
    """The page's fastest tutorial-CNN examples/s in this run."""
    t = results["training"]["cnn_seed"]
    return max((t[p]["examples_per_s"]["median"] for p in ("page_numpy", "page_sgemm") if t.get(p)), default=None)


def digitnet_rows(results: dict) -> dict:
    """digitnet's page figures for the tutorial MLP from this run: key -> (label, examples/s or None)."""
    t = results["training"]["mlp_seed"]
    path = "page_sgemm" if t.get("page_sgemm") else "page_numpy"
    workers = t.get(PAGE_WORKERS) or {}
    panel = results.get("training_panel") or {}
    return {
        "page_1_worker": (f"page, 1 worker ({'scipy sgemm' if path == 'page_sgemm' else 'numpy'}, "
                          "`training_throughput`)", t[path]["examples_per_s"]["median"]),
        "page_workers": (f"page, {workers.get('workers', 'N')} workers (data-parallel)",
                         (workers.get("examples_per_s") or {}).get("median")),
        "page_panel": (f"page, its training panel ({panel.get('workers') or 'default'} workers, "
                       "the whole run)", panel.get("examples_per_s")),
    }


def comparison(tfjs: dict, digitnet: dict, digitnet_cnn: float | None = None) -> dict:
    """digitnet's MLP figures (digitnet_rows) over TF.js's model.fit and fastest loop; the
    tutorial CNN's page figure beside TF.js's (or why TF.js could not train it)."""
    fit, loop = fastest(tfjs, ("fit",)), fastest(tfjs, ("minimize", "manual"))
    # Wasm threads need cross-origin isolation, which a static host like GitHub Pages cannot
    # give: there TF.js runs on one thread.
    loop_1 = fastest(tfjs, ("minimize", "manual"), threads=1)
    rows = {}
    for key, (label, rate) in digitnet.items():
        rows[key] = {"label": label, "examples_per_s": rate,
                     "over_tfjs_fit": rate / fit["examples_per_s"] if rate and fit else None,
                     "over_tfjs_fastest_loop": rate / loop["examples_per_s"] if rate and loop else None,
                     "over_tfjs_fastest_loop_1_thread":
                         rate / loop_1["examples_per_s"] if rate and loop_1 else None}
    cnn_errors = [e for run in tfjs.get("runs", []) for k, e in (run.get("cannot_train") or {}).items()
                  if k == "cnn_fit"]
    return {"tfjs_fit": fit, "tfjs_fastest_loop": loop, "tfjs_fastest_loop_1_thread": loop_1,
            "digitnet": rows,
            "cnn": {"digitnet_page": digitnet_cnn, "tfjs_fit": fastest(tfjs, ("cnn_fit",)),
                    "tfjs_error": cnn_errors[0] if cnn_errors else None}}


def markdown_lines(r: dict) -> list[str]:
    """The report's TF.js section from results r (r["tfjs"], r["vs_tfjs"])."""
    tfjs, vs = r.get("tfjs") or {}, r.get("vs_tfjs") or {}
    head = ["## TensorFlow.js: the same MLP, the same digits, the same Chromium", ""]
    if not tfjs.get("runs"):
        return head + [f"Not measured: {tfjs.get('error', 'no run')}", ""]
    run0 = tfjs["runs"][0]
    first = next(iter(run0["results"].values()))
    lines = head + [
        f"TensorFlow.js {run0['tfjs']} (npm `@tensorflow/tfjs` + `@tensorflow/tfjs-backend-wasm`, "
        "pinned devDependencies, never in dist/) on its WebAssembly backend "
        f"(`{run0['binary']}`), in a bench-only page (`tools/tfjs_bench/`, cross-origin "
        "isolated so wasm threads work) trains the tutorial MLP: 784-256-128-10, LeakyReLU 0.2, "
        "softmax cross-entropy, SGD (lr 1e-3 on the summed gradient = 0.256 on the mean), "
        f"batch 256, from digitnet's own initial weights, on the same {first['examples']:,} "
        "training digits (`digitnet.data.load_bundle`). Examples/s per epoch after a warm-up, "
        f"median (min–max) over {first['epochs']} epoch{'s' if first['epochs'] != 1 else ''}; "
        "test accuracy on the 2,000-digit test split after them. TF.js 4.22 uses at most half "
        f"the cores the browser reports (`navigator.hardwareConcurrency` = {run0['hardware_concurrency']} "
        "here); for the runs marked *cap lifted* the page reports twice the thread count wanted.",
        "",
        "| TF.js way | threads | examples/s | test accuracy |",
        "|---|---|---|---|",
    ]
    from tools.bench_report import fmt_stat
    for run in tfjs["runs"]:
        threads = f"{run['threads']}{' (cap lifted)' if run.get('cap_lifted') else ''}"
        for kind, x in run["results"].items():
            lines.append(f"| {LABELS[kind]} | {threads} | {fmt_stat(x['examples_per_s'])} | "
                         f"{100 * x['test_accuracy']:.1f} % |")
    fit, loop = vs.get("tfjs_fit"), vs.get("tfjs_fastest_loop")

    def desc(x):
        return "—" if not x else f"{x['examples_per_s']:,.0f} ({x['kind']}, {x['threads']} thread{'s' if x['threads'] != 1 else ''})"

    ratio = lambda v: "—" if v is None else f"{v:.2f}×"  # noqa: E731
    loop_1 = vs.get("tfjs_fastest_loop_1_thread")
    lines += ["", f"digitnet side by side, from this run (÷ TF.js `model.fit`: {desc(fit)}; "
              f"÷ TF.js's fastest loop: {desc(loop)}; ÷ its fastest loop on one thread, all "
              "that TF.js gets on a host that cannot send cross-origin isolation headers, such as "
              f"GitHub Pages, where digitnet's workers still run: {desc(loop_1)}):", "",
              "| digitnet | examples/s | ÷ TF.js model.fit | ÷ TF.js fastest loop | "
              "÷ TF.js fastest loop, 1 thread |", "|---|---|---|---|---|"]
    for row in vs.get("digitnet", {}).values():
        rate = row["examples_per_s"]
        lines.append(f"| {row['label']} | {'not measured' if rate is None else f'{rate:,.0f}'} | "
                     f"{ratio(row['over_tfjs_fit'])} | {ratio(row['over_tfjs_fastest_loop'])} | "
                     f"{ratio(row.get('over_tfjs_fastest_loop_1_thread'))} |")
    cnn = vs.get("cnn") or {}
    if cnn.get("digitnet_page"):
        tf_cnn = cnn.get("tfjs_fit")
        theirs = (f"TF.js `model.fit` {tf_cnn['examples_per_s']:,.0f} examples/s ({tf_cnn['threads']} "
                  f"thread{'s' if tf_cnn['threads'] != 1 else ''})" if tf_cnn else
                  f"TF.js cannot train it on its wasm backend: “{cnn.get('tfjs_error', 'not measured')}”")
        lines += ["", f"Tutorial CNN: digitnet's page (1 worker) "
                  f"{cnn['digitnet_page']:,.0f} examples/s; {theirs}."]
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 tools/bench_tfjs.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 1,024 examples, one epoch, a thread per core")
    parser.add_argument("--json", help="write the results here (default: stdout)")
    args = parser.parse_args(argv)
    results = tfjs_measurements(args.quick)
    text = json.dumps(results, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    problems = check(results)
    if problems:
        print("bench_tfjs: " + "\n  ".join(problems), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
