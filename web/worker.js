/* digitnet compute worker: Pyodide + numpy + digitnet, loaded once.
 *
 * Protocol (tagged messages, DESIGN §6/§8.13):
 *   main -> worker  {type, id, ...args}
 *   worker -> main  {type: "result", id, ...payload}
 *                   {type: "error", id, message, detail}   (errors are data, never thrown across)
 *                   {type: "progress", stage, label, done, total}   (loading stages, no id)
 *                   {type: "ready", info} | {type: "fatal", message, detail}
 * This file never touches the DOM; the page decides how to show anything.
 */
"use strict";

const BASE = new URL("./", self.location.href);
const STAGES = [
  ["runtime", "Python runtime (Pyodide)"],
  ["numpy", "numpy"],
  ["digitnet", "digitnet package"],
  ["model", "pretrained model"],
];

let pyodide = null;
let py = null; // the glue module's namespace (a PyProxy dict)
const fn = {}; // glue functions, looked up once (each lookup makes a PyProxy)
const timings = {};
const t0 = performance.now();

function progress(stage) {
  const index = STAGES.findIndex(([name]) => name === stage);
  timings[stage] = Math.round(performance.now() - t0);
  self.postMessage({
    type: "progress", stage, label: STAGES[index][1], done: index, total: STAGES.length,
  });
}

// Python glue between the page protocol and digitnet's public API.
const GLUE = `
import numpy as np
import digitnet
from digitnet.preprocess import to_mnist

state = {"model": None, "data": None}

def load_model(buf):
    state["model"] = digitnet.load(buf.to_bytes())

def load_data():
    if state["data"] is None:
        from digitnet import data
        state["data"] = data.load_bundle()
    return len(state["data"].y_test)

def predict(pixels, height, width, raw, out_probs, out_preview):
    """pixels: uint8 grey image (height, width), any polarity -> fills out_* ; False if blank.

    raw: the pixels already are a 28x28 MNIST input (ink = 255): no preprocessing.
    """
    gray = np.frombuffer(pixels.to_bytes(), dtype=np.uint8).reshape(int(height), int(width))
    if raw:
        img = gray.astype(np.float32) / 255.0 if gray.shape == (28, 28) and gray.any() else None
    else:
        img = to_mnist(gray)
    if img is None:
        return False
    state["last"] = img  # for the feature maps (INSIGHT_GLUE)
    proba = state["model"].predict_proba(np.asarray(img, dtype=np.float32).reshape(1, 784))[0]
    out_probs.assign(np.asarray(proba, dtype=np.float64))
    out_preview.assign((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return True

def gallery(n, out_images, out_labels, out_preds, out_conf):
    """One test digit per class (a fixed pick), then some of the model's mistakes.

    Returns how many test digits the model gets wrong in total.
    """
    d = state["data"]
    if d is None:
        raise RuntimeError("the bundled data is not loaded")
    n = int(n)
    preds = np.empty(len(d.y_test), dtype=np.int64)
    conf = np.empty(len(d.y_test), dtype=np.float64)
    for start in range(0, len(d.y_test), 500):
        proba = state["model"].predict_proba(d.x_test[start:start + 500])
        preds[start:start + 500] = proba.argmax(axis=1)
        conf[start:start + 500] = proba.max(axis=1)
    wrong = np.flatnonzero(preds != d.y_test)
    n_wrong_shown = min(len(wrong), max(0, n - 10), 2)
    picks = [int(np.flatnonzero(d.y_test == c)[7]) for c in range(10)][: n - n_wrong_shown]
    picks += [int(i) for i in wrong[:n_wrong_shown]]
    while len(picks) < n:
        picks.append(len(picks) * 97 % len(d.y_test))
    idx = np.array(picks[:n], dtype=np.int64)
    x = d.x_test[idx]
    out_images.assign((np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    out_labels.assign(d.y_test[idx].astype(np.uint8))
    out_preds.assign(preds[idx].astype(np.uint8))
    out_conf.assign(conf[idx])
    return len(wrong)
`;

// Benchmarks (`python3 build.py bench`, tools/bench.py): digitnet.bench run in this worker,
// and the size of its WebAssembly heap. Loaded on first use only.
const BENCH_GLUE = `
import json
import numpy as np
from digitnet import bench as _bench, data as _data, layers as _layers

def _bench_matmul(path):
    if path in (None, "numpy"):
        return None
    from digitnet.session import blas_matmul
    mm = blas_matmul()
    if mm is None:
        raise RuntimeError("scipy's BLAS sgemm is not available in this worker")
    return mm

def bench_run(op, opts_json, heap):
    """op: matmul | train | train_memory; opts: path ("numpy"|"sgemm") and the function's
    arguments. Returns JSON."""
    o = json.loads(opts_json)
    mm = _bench_matmul(o.get("path"))
    if op == "matmul":
        out = _bench.matmul_gflops(batch=o.get("batch", 256), repeats=o.get("repeats", 5),
                                   matmul=mm or np.matmul)
    elif op in ("train", "train_memory"):
        _layers.set_matmul(mm)
        try:
            if op == "train":
                out = _bench.training_throughput(o.get("model", "mlp"), o.get("recipe", "seed"),
                                                 epochs=o.get("epochs", 1), repeats=o.get("repeats", 1),
                                                 limit=o.get("limit"))
            else:  # the heap after every epoch of one run
                from digitnet.recipes import get_recipe
                from digitnet.train import fit_recipe
                ds = _data.load_bundle()
                if o.get("limit"):
                    step = max(1, len(ds.x_train) // o["limit"])
                    ds = _data.Dataset(ds.x_train[::step], ds.y_train[::step], ds.x_test, ds.y_test)
                recipe = get_recipe(o.get("model", "mlp"), o.get("recipe", "seed")).with_overrides(
                    epochs=o.get("epochs", 10))
                # The heap only grows (a high-water mark); tracemalloc's live bytes (Python
                # objects and numpy buffers) show whether anything accumulates per epoch.
                import tracemalloc
                tracemalloc.start()
                before, heaps, live = int(heap()), [], []
                def on_epoch(rec):
                    heaps.append(int(heap()))
                    live.append(tracemalloc.get_traced_memory()[0])
                try:
                    fit_recipe(recipe, ds, on_epoch=on_epoch)
                finally:
                    tracemalloc.stop()
                out = {"heap_before": before, "heap_by_epoch": heaps, "epochs": len(heaps),
                       "live_bytes_by_epoch": live, "examples": len(ds.x_train)}
        finally:
            _layers.set_matmul()
    else:
        raise ValueError(f"unknown bench op {op!r}")
    return json.dumps(out)
`;
const bench = { fn: null, scipy: false };

// Training and model switching (issue 4). The logic lives in digitnet.session (tested in
// CPython); this glue shares the namespace of GLUE above, so it can replace state["model"].
const TRAIN_GLUE = `
import json
from digitnet import session as _session

_train = {"blas": None}

def enable_blas():
    _train["blas"] = _session.blas_matmul()
    return _train["blas"] is not None

def new_session(settings_json, use_blas):
    load_data()
    return _session.TrainingSession(state["data"], json.loads(settings_json),
                                    matmul=_train["blas"] if use_blas else None)

def session_results(s):
    return json.dumps(s.results())

def use_model(buf):
    """Checks the bytes first: a bad file raises and the current model stays."""
    model = _session.check_model(buf.to_bytes())
    state["model"] = model
    return _session.describe(model)

def check_model(buf):
    model = _session.check_model(buf.to_bytes())
    load_data()
    res = _session.evaluate_model(model, state["data"], _train["blas"], n_mistakes=0)
    return json.dumps({"architecture": res["architecture"], "accuracy": res["accuracy"]})
`;
// "Inside the network" (issue 5): first-layer filters and feature maps, from
// digitnet.explain. Shares GLUE's namespace (state["model"], state["last"]).
const INSIGHT_GLUE = `
import json
from digitnet import explain as _explain

_insight = {"maps": None}

def insight_overview():
    info = _explain.overview(state["model"])
    _insight["overview"] = _explain.to_uint8(info["images"], signed=True)
    n, h, w = info["images"].shape
    return json.dumps({"kind": info["kind"], "n": n, "h": h, "w": w, "title": info["title"]})

def insight_overview_fill(out):
    out.assign(_insight.pop("overview").reshape(-1))

def insight_maps():
    """Feature maps of the last classified digit (CNN only): JSON shape, or None."""
    if state.get("last") is None or not _explain.is_cnn(state["model"]):
        return None
    maps = _explain.feature_maps(state["model"], state["last"])
    _insight["maps"] = _explain.to_uint8(maps)
    return json.dumps({"n": maps.shape[0], "h": maps.shape[1], "w": maps.shape[2],
                       "peak": float(maps.max())})

def insight_maps_fill(out):
    out.assign(_insight["maps"].reshape(-1))
    _insight["maps"] = None
`;

/** The feature maps of the digit just classified, or null (no CNN, nothing drawn). */
function featureMaps() {
  const meta = fn.insight_maps();
  if (meta === undefined || meta === null) return null;
  const info = JSON.parse(meta);
  const pixels = new Uint8Array(info.n * info.h * info.w);
  fn.insight_maps_fill(pixels);
  return { ...info, pixels };
}

const SLICE_S = 0.12; // seconds of training per slice; other messages are answered between slices
const training = { running: false, stop: false, blas: null, note: "" };
let pretrainedBytes = null;
let buildManifest = null;
const pretrained = {}; // name -> Promise of the model file's bytes (fetched on first use)

/** Load scipy (BLAS sgemm) once, on the first training run; fall back to numpy. */
async function ensureBlas(post) {
  if (training.blas !== null) return training.blas;
  post({ phase: "blas" });
  const errors = [];
  try {
    await pyodide.loadPackage("scipy", {
      messageCallback: () => {},
      errorCallback: (msg) => errors.push(msg),
    });
    training.blas = Boolean(fn.enable_blas());
    if (!training.blas) training.note = `scipy could not be loaded${errors.length ? `: ${errors.join("; ")}` : ""}`;
  } catch (err) {
    training.blas = false;
    training.note = `scipy could not be loaded: ${pythonMessage(err).message}`;
  }
  return training.blas;
}

function pyBytes(proxy) {
  // A Python bytes object -> a JS copy (Uint8Array), releasing the proxy.
  const view = proxy.getBuffer("u8");
  try {
    return view.data.slice();
  } finally {
    view.release();
    proxy.destroy();
  }
}

const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`Could not download ${what} (${url}): ${err.message}`);
  }
  if (!response.ok) throw new Error(`Could not download ${what} (${url}): HTTP ${response.status}`);
  return response;
}

async function init() {
  // Independent downloads start at once, while the runtime boots.
  const manifestP = fetchOk(new URL("build-manifest.json", BASE), "the build manifest").then((r) => r.json());
  const modelBytesP = manifestP.then((m) =>
    fetchOk(new URL(m.models[m.default_model], BASE), "the pretrained model").then((r) => r.arrayBuffer()));
  modelBytesP.catch(() => {}); // reported where awaited

  progress("runtime");
  importScripts(new URL("pyodide/pyodide.js", BASE).href);
  pyodide = await self.loadPyodide({ indexURL: new URL("pyodide/", BASE).href });

  progress("numpy");
  // numpy (from the Pyodide lock) and the digitnet wheel (built by build.py, numpy its
  // only dependency) are fetched and unpacked by Pyodide's own wheel loader in one
  // parallel step. micropip's resolver is not needed for a single dependency-free wheel
  // (deps would be False anyway), and skipping it saves ~0.5 s of start-up.
  const manifest = await manifestP;
  buildManifest = manifest;
  const errors = [];
  await pyodide.loadPackage(["numpy", new URL(manifest.wheel, BASE).href], {
    messageCallback: () => {},
    errorCallback: (msg) => errors.push(msg),
  });
  if (errors.length) throw new Error(`Could not load numpy and digitnet: ${errors.join("; ")}`);
  timings.installed = Math.round(performance.now() - t0);

  progress("digitnet");
  py = pyodide.toPy({});
  pyodide.runPython(GLUE, { globals: py });
  for (const name of ["load_model", "load_data", "predict", "gallery"]) fn[name] = py.get(name);
  pyodide.runPython(TRAIN_GLUE, { globals: py });
  pyodide.runPython(INSIGHT_GLUE, { globals: py });
  for (const name of ["insight_overview", "insight_overview_fill", "insight_maps", "insight_maps_fill"]) {
    fn[name] = py.get(name);
  }
  for (const name of ["enable_blas", "new_session", "session_results", "use_model", "check_model"]) {
    fn[name] = py.get(name);
  }
  timings.imported = Math.round(performance.now() - t0);

  progress("model");
  const modelBytes = new Uint8Array(await modelBytesP);
  fn.load_model(modelBytes);
  pretrainedBytes = modelBytes;
  pretrained[manifest.default_model] = Promise.resolve(modelBytes);

  timings.ready = Math.round(performance.now() - t0);
  return { version: manifest.version, timings, modelBytes: modelBytes.byteLength };
}

function pythonMessage(err) {
  // PythonError.message is the whole traceback; the last line names the exception.
  const text = String((err && err.message) || err);
  const lines = text.trim().split("\n").filter((l) => l.trim());
  return { message: lines[lines.length - 1] || text, detail: text };
}

const handlers = {
  // Benchmarks (tools/bench.py). {op: "memory"} -> {heapBytes}; {op: "matmul" | "train" |
  // "train_memory", path: "numpy" | "sgemm", ...digitnet.bench arguments} -> {result, ms,
  // scipyMs, heapBytes}. The sgemm path loads scipy first (lazily, once).
  async bench({ op, ...opts }) {
    const heap = () => pyodide._module.HEAPU8.length;
    if (op === "memory") return { heapBytes: heap() };
    let scipyMs = null;
    if (opts.path === "sgemm" && !bench.scipy) {
      const t = performance.now();
      await pyodide.loadPackage("scipy", { messageCallback: () => {} });
      scipyMs = performance.now() - t;
      bench.scipy = true;
    }
    if (!bench.fn) {
      const globals = pyodide.toPy({});
      pyodide.runPython(BENCH_GLUE, { globals });
      bench.fn = globals.get("bench_run");
    }
    const t = performance.now();
    const result = JSON.parse(bench.fn(op, JSON.stringify(opts), heap));
    return { result, ms: performance.now() - t, scipyMs, heapBytes: heap() };
  },
  /**
   * Train a fresh network ({settings}: see digitnet.session.recipe_for). Runs in slices of
   * ~SLICE_S, posting each slice's report as an update and yielding to the event loop, so
   * predict/stopTraining are answered meanwhile. Result: {state: "done"|"stopped", report,
   * results, bytes (the .npz)} or {state: "diverged", message, report}.
   */
  async train({ settings }, post) {
    if (training.running) throw new Error("a training run is already going");
    training.running = true;
    training.stop = false;
    let session = null;
    let step = null;
    try {
      fn.load_data();
      const blas = await ensureBlas(post);
      post({ phase: "start", matmul: blas ? "sgemm" : "numpy", note: training.note });
      session = fn.new_session(JSON.stringify(settings), blas);
      step = session.step_json;
      const t0 = performance.now();
      let report;
      for (;;) {
        if (training.stop) session.stop();
        report = JSON.parse(step(SLICE_S));
        report.heapBytes = pyodide._module.HEAPU8.length;
        report.elapsed_s = (performance.now() - t0) / 1000;
        post(report);
        if (report.state !== "running") break;
        await yieldToEvents();
      }
      if (report.state === "diverged") return { state: "diverged", message: report.message, report };
      const results = JSON.parse(fn.session_results(session));
      const bytes = pyBytes(session.model_bytes());
      return { state: report.state, report, results, bytes, transfer: [bytes.buffer] };
    } finally {
      step?.destroy();
      session?.destroy();
      training.running = false;
    }
  },
  stopTraining() {
    training.stop = true;
    return { running: training.running };
  },
  /** Make these model bytes the pad's model; a bad file is refused, nothing replaced. */
  useModel({ bytes }) {
    return { architecture: fn.use_model(bytes) };
  },
  /** {name: "mlp" (default) | "cnn" | any key of build-manifest.json's models}: a shipped
   * model; files other than the MLP are downloaded on first use (then cached). */
  async usePretrained({ name = "mlp" } = {}) {
    const url = buildManifest.models && buildManifest.models[name];
    if (!url) throw new Error(`this site ships no pretrained model "${name}"`);
    if (!pretrained[name]) {
      pretrained[name] = fetchOk(new URL(url, BASE), `the pretrained ${name.toUpperCase()}`)
        .then((r) => r.arrayBuffer()).then((b) => new Uint8Array(b));
      pretrained[name].catch(() => delete pretrained[name]); // a later try downloads again
    }
    const bytes = await pretrained[name];
    return { architecture: fn.use_model(bytes), name };
  },
  /** The pad model's first layer for display: {kind: "cnn"|"mlp", n, h, w, title, pixels}
   * (n images of h*w bytes; 128 = 0, 0/255 = the most negative/positive weight). */
  insight() {
    const info = JSON.parse(fn.insight_overview());
    const pixels = new Uint8Array(info.n * info.h * info.w);
    fn.insight_overview_fill(pixels);
    return { ...info, pixels, transfer: [pixels.buffer] };
  },
  /** Validate model bytes (e.g. an import) and measure them on the test digits. */
  checkModel({ bytes }) {
    return JSON.parse(fn.check_model(bytes));
  },
  // The bundled MNIST subset is only needed for the gallery (and training), so it loads
  // after the page is ready rather than delaying the first classification.
  loadData() {
    const t = performance.now();
    const nTest = fn.load_data();
    return { nTest, ms: performance.now() - t };
  },
  /** insight: also return the first convolution's feature maps (CNN only) as `maps`. */
  predict({ pixels, width, height, raw = false, insight = false }) {
    if (!(pixels instanceof Uint8Array) || pixels.length !== width * height) {
      throw new Error("predict: pixels must be a Uint8Array of width*height grey values");
    }
    const t = performance.now();
    const probs = new Float64Array(10);
    const preview = new Uint8Array(784);
    const ink = fn.predict(pixels, height, width, Boolean(raw), probs, preview);
    const computeMs = performance.now() - t;
    if (!ink) return { empty: true, computeMs };
    const maps = insight ? featureMaps() : null;
    const transfer = [probs.buffer, preview.buffer];
    if (maps) transfer.push(maps.pixels.buffer);
    return { empty: false, probs, preview, computeMs, maps, transfer };
  },
  gallery({ n }) {
    const count = Math.max(1, Math.min(64, n | 0));
    const images = new Uint8Array(count * 784);
    const labels = new Uint8Array(count);
    const preds = new Uint8Array(count);
    const conf = new Float64Array(count);
    const wrong = fn.gallery(count, images, labels, preds, conf);
    return { n: count, images, labels, preds, conf, wrong, transfer: [images.buffer] };
  },
};

const ready = init();
ready.then(
  (info) => self.postMessage({ type: "ready", info }),
  (err) => self.postMessage({ type: "fatal", ...pythonMessage(err) }),
);

// One listener for the worker's whole life. Requests queue behind the initial load.
self.addEventListener("message", async (event) => {
  const { type, id, ...args } = event.data || {};
  try {
    await ready;
    const handler = handlers[type];
    if (!handler) throw new Error(`unknown request type "${type}"`);
    // Handlers may be async (bench, train); long ones post {type: "update", id} news.
    const post = (update) => self.postMessage({ type: "update", id, ...update });
    const { transfer = [], ...payload } = await handler(args, post);
    self.postMessage({ type: "result", id, ...payload }, transfer);
  } catch (err) {
    self.postMessage({ type: "error", id, ...pythonMessage(err) });
  }
});
