"""The benchmark's report: the results laid out (what OUT.json holds), the targets met or
not, and the markdown page (OUT.md). Measuring is tools/bench.py's and bench_page.py's."""
from __future__ import annotations

from tools.bench_common import KINDS
from tools.bench_tfjs import markdown_lines as tfjs_lines

KIND_NOTES = {
    "wasm": "pyodide.asm.wasm",
    "js": "Pyodide's JS, the page's modules, worker, service worker, Chart.js",
    "python": "python_stdlib.zip and the Pyodide package wheels (numpy, ...; scipy + openblas when training)",
    "data": "the digitnet wheel: its code and the 10,000-digit data bundle (~98 % of its bytes)",
    "model": "pretrained weights (models/*.npz)",
    "other": "HTML, CSS, JSON manifests, icons",
}


def assemble(cpy: dict, pg: dict, accuracy: dict, meta: dict) -> dict:
    """The CPython runs, the page's, the models' accuracy and the run's metadata -> the results dict."""
    c = pg["compute"]
    c1 = cpy["cpython_numpy_1thread"]
    cn = cpy["cpython_numpy"]
    matmul = {"batch": 256, "dtype": "float32", "cpython_numpy": cn["matmul"],
              "cpython_numpy_1thread": c1["matmul"],
              "page_numpy": c["matmul_numpy"], "page_sgemm": c.get("matmul_sgemm")}
    training = {}
    flops = {}
    for model in ("mlp", "cnn"):
        flops[model] = cn[f"train_{model}"]["flops_per_example"]
        entry = {"recipe": "tutorial", "batch_size": cn[f"train_{model}"]["batch_size"],
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
        "accuracy": accuracy,
    }


PATHS = ("cpython_numpy", "cpython_numpy_1thread", "page_numpy", "page_sgemm")
LABELS = {"cpython_numpy": "CPython numpy (BLAS, all cores)", "cpython_numpy_1thread": "CPython numpy (BLAS, 1 thread)",
          "page_numpy": "page numpy (no BLAS)", "page_sgemm": "page scipy sgemm"}


def targets(r: dict) -> list[dict]:
    """The site's and the training's targets, against these figures."""
    load, lat, t, mem = r["page_load"], r["latency_ms"], r["training"]["mlp_seed"], r["worker_memory"]
    best = max((t[p]["examples_per_s"]["median"] for p in ("page_numpy", "page_sgemm") if t.get(p)),
               default=0.0)
    live = mem.get("live_bytes_by_epoch") or []
    panel = r.get("training_panel") or {}
    panel_heap = panel.get("heap_bytes_by_epoch") or []
    growth = (live[-1] - live[0]) if len(live) >= 2 else None
    vs = (r.get("vs_tfjs") or {}).get("digitnet") or {}
    one, many = (vs.get(k, {}).get("examples_per_s") for k in ("page_1_worker", "page_workers"))
    pw = r.get("page_workers") or {}
    # Both rates from the panel, interleaved in one page; else the 1-worker benchmark path.
    workers_x = pw.get("speedup_median") or (many / one if one and many else None)
    busy = (pw.get("latency_ms_while_training") or {}).get("p95")
    workers_tfjs = vs.get("page_workers", {}).get("over_tfjs_fastest_loop")
    cnn_rates = pw.get("cnn_examples_per_s") or {}
    cnn_many = cnn_rates.get(str(pw.get("workers")), {}).get("median")
    cnn_1thread = (r["training"].get("cnn_seed") or {}).get("cpython_numpy_1thread") or {}
    cnn_ratio = cnn_1thread.get("ratio_to_limit")
    rows = [
        ("navigation → ready, cold", "≤ 4,000 ms", load["cold_ms"]["median"], "{:,.0f} ms",
         load["cold_ms"]["median"] <= 4000),
        ("navigation → ready, warm (service worker)", "≤ 2,500 ms", load["warm_ms"]["median"],
         "{:,.0f} ms", load["warm_ms"]["median"] <= 2500),
        ("bytes of a cold load", "≤ 20 MB", load["bytes_cold_with_offline_cache"]["total"] / 1e6,
         "{:.2f} MB", load["bytes_cold_with_offline_cache"]["total"] <= 20e6),
        ("stroke end → probabilities, median", "≤ 30 ms", lat["median"], "{:.1f} ms", lat["median"] <= 30),
        ("stroke end → probabilities, p95", "≤ 60 ms", lat["p95"], "{:.1f} ms", lat["p95"] <= 60),
        ("tutorial MLP in the page, plain numpy, share of the matmul-bound limit", "≥ 70 %",
         100 * t["page_numpy"]["ratio_to_limit"], "{:.0f} %", t["page_numpy"]["ratio_to_limit"] >= 0.7),
        ("tutorial MLP in the page, fastest path", "≥ 3,000 examples/s", best, "{:,.0f} examples/s",
         best >= 3000),
        ("tutorial MLP in the page, all workers ÷ 1 worker", "≥ 1.7×", workers_x, "{:.3f}×",  # a near miss must not print as 1.70
         workers_x is not None and workers_x >= 1.7),
        ("tutorial MLP in the page, all workers ÷ TF.js's fastest loop (same run)", "≥ 1.0×",
         workers_tfjs, "{:.3f}×", workers_tfjs is not None and workers_tfjs >= 1.0),
        ("tutorial CNN in the page, all workers", "≥ 1,075 examples/s (2.5 × 430)", cnn_many,
         "{:,.0f} examples/s", cnn_many is not None and cnn_many >= 1075),
        ("tutorial CNN in CPython (1 BLAS thread), share of the matmul-bound limit", "≥ 50 %",
         None if cnn_ratio is None else 100 * cnn_ratio, "{:.0f} %", cnn_ratio is not None and cnn_ratio >= 0.5),
        ("stroke end → probabilities while all workers train, p95", "≤ 60 ms", busy, "{:.1f} ms",
         busy is not None and busy <= 60),
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
    if s.get("runs", s.get("n", 1)) == 1 or "min" not in s or s["min"] == s["max"]:
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
        f"The page's own Train button: tutorial MLP, tutorial recipe, {tp['epochs']} "
        f"epoch{'s' if tp['epochs'] != 1 else ''} of the "
        f"8,000 training digits on the default number of workers ({tp.get('workers', '?')}), "
        f"{tp['matmul']} products, charts and log live ({tp['wall_s']:.1f} s to the test accuracy).",
        "",
        "| examples/s (panel) | longest main-thread task | heap at ready | heap after epoch 1 | "
        f"heap after epoch {len(heap)} | test accuracy |",
        "|---|---|---|---|---|---|",
        f"| {tp['examples_per_s']:,.0f} | {task_ms(tp['longest_main_thread_task_ms'])} | "
        f"{mb(tp['heap_bytes_ready'])} | {mb(heap[0] if heap else None)} | "
        f"{mb(heap[-1] if heap else None)} | {100 * tp['test_accuracy']:.2f} % |",
        "",
    ]


def workers_lines(pw) -> list[str]:
    if not pw:
        return []
    head = ["## Training on several workers", ""]
    if "workers" not in pw:
        return head + [f"Not measured: {pw.get('error') or pw.get('skipped')}", ""]
    n = str(pw["workers"])
    rate = pw["examples_per_s"]
    heaps = pw["heaps_per_epoch"][n][-1] if pw["heaps_per_epoch"].get(n) else []
    idle, busy = pw["latency_ms_idle"], pw["latency_ms_while_training"]
    return head + [
        f"The training panel, tutorial MLP and recipe, on 1 and on {n} workers (interleaved runs "
        "in one page; examples/s of each completed epoch after the first, as the panel shows "
        f"them: median of {rate['1']['n']} and {rate[n]['n']} epochs, min–max in brackets). "
        f"Then stroke end → probabilities with no training and while {n} workers train "
        "the default MLP recipe.",
        "",
        f"| 1 worker, examples/s | {n} workers, examples/s | ratio | heap per worker, each epoch "
        f"of the last {n}-worker run | latency idle, median / p95 | latency while training, "
        "median / p95 |",
        "|---|---|---|---|---|---|",
        f"| {fmt_stat(rate['1'])} | {fmt_stat(rate[n])} | {pw['speedup_median']:.3f}× | "
        + "; ".join(" / ".join(mb(b) for b in (epoch or [])) for epoch in heaps) + " | "
        f"{idle['median']:.1f} / {idle['p95']:.1f} ms | {busy['median']:.1f} / {busy['p95']:.1f} ms |",
        "",
        *cnn_workers_lines(pw.get("cnn_examples_per_s"), n),
    ]


def cnn_workers_lines(rates, n: str) -> list[str]:
    """The tutorial CNN's one-epoch runs on 1 and n workers, if measured."""
    if not rates or "1" not in rates or n not in rates:
        return []
    one, many = rates["1"]["median"], rates[n]["median"]
    return [f"The tutorial CNN, one epoch per run through the same panel: 1 worker "
            f"{one:,.0f} examples/s, {n} workers {many:,.0f} examples/s ({many / one:.2f}×; "
            f"{rates[n]['n']} runs each).", ""]


def accuracy_lines(acc: dict) -> list[str]:
    def pct(c, n):
        return f"{100 * c / n:.0f} % ({c}/{n})"

    rows = [f"| {name} (`{acc[name]['file']}`) | {100 * acc[name]['mnist']:.2f} % | "
            f"{100 * acc[name]['drawn']:.2f} % | "
            + ("; ".join(f"{s} {pct(*acc[name]['by_style'][s])}" for s in acc[name]["lowest_styles"])
               or "every style read right") + " |"
            for name in ("mlp", "cnn")]
    return [
        "## Accuracy: MNIST and drawn digits",
        "",
        f"The shipped models on the bundled MNIST test split ({acc['n_mnist']:,} digits) and on "
        f"the drawn {acc['drawn_set']} set (`tests/fixtures/drawn/{acc['drawn_set']}.json`: strokes "
        "replayed through the page's `web/js/pad.js` in Chromium, so each digit is what the "
        "worker classifies; `tools/drawn_eval.py`), and per model the (up to three) drawn styles "
        "it reads worst, those with a miss:",
        "",
        f"| model | MNIST test split | drawn {acc['drawn_set']} set ({acc['n_drawn']} digits) | "
        "lowest styles (drawn) |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def runtimes_line(m: dict) -> str:
    """The report's line naming CPython, Chromium and the page's Pyodide (``m``: the meta
    section; ``m["pyodide"]``: {version, python, numpy} from the page's worker, or {error})."""
    py = m["pyodide"]
    pyodide = (f"Pyodide {py['version']} (Python {py['python']}, numpy {py['numpy']}, "
               "single-threaded WebAssembly)" if "version" in py else
               f"Pyodide: version unknown (the worker's probe failed: {py.get('error', 'no answer')})")
    return (f"- CPython {m['python']}, numpy {m['numpy']} (its BLAS may use every core); "
            f"Chromium {m['chromium']}; {pyodide}.")


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
        runtimes_line(m),
        f"- Load average at start: {' / '.join(map(str, la))} (1 / 5 / 15 min); at the end: "
        f"{' / '.join(map(str, m['load_average_end']))}; 1-minute load while running "
        f"{fmt_stat(m.get('load_average_1min_during'), 1)}. The machine is shared (other "
        "engineers' builds, tests and training runs), so treat the numbers as indicative: "
        "repeated runs differ by ±20–30 % and more for load times.",
        "",
        "## Against the targets",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
        *(f"| {x['what']} | {x['target']} | {x['measured'] or '—'} | {'yes' if x['met'] else '**no**'} |"
          for x in r["targets"]),
        "",
        *accuracy_lines(r["accuracy"]),
        "## Matrix product (the limit)",
        "",
        f"float32, the tutorial MLP's six training matmuls at batch {mm['batch']} "
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
        "Examples/s of `digitnet.bench.training_throughput` (tutorial recipe: SGD, no augmentation; "
        "whole epochs incl. shuffling and bookkeeping, validation excluded). Effective GFLOP/s = "
        "examples/s × FLOPs per example, the products training performs: forward, and "
        "backward dW and dx except the first layer's dx, which training skips (MLP "
        f"784-256-128-10: {t['mlp_seed']['flops_per_example'] / 1e6:.2f} MFLOP — "
        f"`digitnet.bench.MLP_FLOPS_PER_EXAMPLE`'s {mlp_convention / 1e6:.2f} counts that dx too; CNN: "
        f"{t['cnn_seed']['flops_per_example'] / 1e6:.1f} MFLOP, its conv (im2col) and dense products). "
        "Limit = the matmul rate above / FLOPs per example. % of limit pairs each training run "
        "with the matmul burst measured just before it (same machine load), median (min–max). "
        "These are nominal FLOPs: while training, a Linear layer leaves out of its products the "
        "inputs blank in every image of the batch (about 30 % of the pixels at batch 256, 33 % at "
        "128: the digits' empty border), so the MLP does less work than counted and its rows can "
        "pass 100 %. The CNN's limit is only a yardstick: its convolutions run other shapes, and "
        "on the page's sgemm path the second one goes through the FFT (`digitnet.fftconv`: fewer "
        "multiplications than im2col), so that row can pass 100 % too.",
        "",
        "| model (batch, examples × epochs) | path | examples/s | effective GFLOP/s | matmul-bound limit (examples/s) | % of limit |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in (("mlp_seed", "tutorial MLP"), ("cnn_seed", "tutorial CNN")):
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
        f"CPython (all cores) trains the tutorial MLP "
        f"{ratio(mlp['cpython_numpy']['examples_per_s']['median'], best_page):.1f}× as fast as the "
        f"page's fastest path ({ratio(mlp['cpython_numpy_1thread']['examples_per_s']['median'], best_page):.1f}× "
        "on one thread). On this shared machine, multi-threaded OpenBLAS suffers most from other "
        "processes (its threads wait for each other), so the one-thread row is the steadier "
        "comparison with the single-threaded page.",
        "",
        *tfjs_lines(r),
        "## Page load",
        "",
        "Navigation → `<html data-state=\"ready\">` (the page's own `data-ready-ms`: pretrained "
        "model loaded, first classification possible). Cold = a fresh browser context (empty "
        "cache, no service worker); warm = the same context reloaded, service worker in control "
        f"(`data-sw={load['warm_service_worker']}`), offline cache complete. Local server "
        "(`tools/devserver.py`), which gzips text and wasm for browsers that accept it, as GitHub "
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
        f"high-water mark), training the tutorial MLP with digitnet's `fit` in the page's worker "
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
        *workers_lines(r.get("page_workers")),
        "Raw figures: [benchmarks.json](benchmarks.json).",
        "",
    ]
    return "\n".join(lines)

