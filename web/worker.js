/* digitnet compute worker: Pyodide + numpy + digitnet, loaded once.
 *
 * Protocol (tagged messages):
 *   main -> worker  {type, id, ...args}
 *   worker -> main  {type: "result", id, ...payload} | {type: "update", id, ...news}
 *                   {type: "error", id, message, detail}   (errors are data, never thrown across)
 *                   {type: "progress", stage, label, done, total}   (loading stages, no id)
 *                   {type: "ready", info} | {type: "fatal", message, detail}
 * One digitnet.worker_api.WorkerAPI does all the Python work; this file loads the runtime,
 * converts values between JavaScript and Python and forwards requests. No DOM here.
 */
"use strict";

const BASE = new URL("./", self.location.href);
const STAGES = [["runtime", "Python runtime (Pyodide)"], ["numpy", "numpy"], ["digitnet", "digitnet package"], ["model", "pretrained model"]];
const SLICE_S = 0.12; // seconds of training per slice; other messages are answered between slices

let pyodide = null;
let api = null; // the WorkerAPI instance (a PyProxy)
let manifest = null;
const methods = {}; // WorkerAPI bound methods, looked up once (each lookup makes a PyProxy)
const pretrained = {}; // model name -> Promise of the model file's bytes (fetched on first use)
const training = { running: false, stop: false, blas: null, note: "" };
const timings = {};
const t0 = performance.now();

function progress(stage) {
  const index = STAGES.findIndex(([name]) => name === stage);
  timings[stage] = Math.round(performance.now() - t0);
  self.postMessage({ type: "progress", stage, label: STAGES[index][1], done: index, total: STAGES.length });
}

/** A Python value -> JavaScript: dicts -> objects, lists -> arrays, numpy arrays and bytes
 * -> typed arrays, None -> null (undefined inside containers). Frees the proxy. */
function toJs(value) {
  if (value === undefined) return null;
  if (!(value instanceof pyodide.ffi.PyProxy)) return value;
  try {
    return value.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
  } finally {
    value.destroy();
  }
}

/** Call a WorkerAPI method: typed arrays and objects go in as Python values, the result
 * comes back through toJs. */
function call(name, ...args) {
  methods[name] ??= api[name];
  const pyArgs = args.map((a) => (a !== null && typeof a === "object" ? pyodide.toPy(a) : a));
  try {
    return toJs(methods[name](...pyArgs));
  } finally {
    for (const a of pyArgs) if (a instanceof pyodide.ffi.PyProxy) a.destroy();
  }
}

/** The buffers of a result's typed arrays (nested objects too), transferred, not copied. */
function buffersOf(obj) {
  return Object.values(obj).flatMap((v) => (ArrayBuffer.isView(v) ? [v.buffer]
    : v && typeof v === "object" && !Array.isArray(v) ? buffersOf(v) : []));
}

const heapBytes = () => pyodide._module.HEAPU8.length;

async function fetchOk(url, what) {
  const fail = (why) => new Error(`Could not download ${what} (${url}): ${why}`);
  const response = await fetch(url).catch((err) => { throw fail(err.message); });
  if (!response.ok) throw fail(`HTTP ${response.status}`);
  return response;
}

/** Pyodide packages (scipy for BLAS sgemm) from the site's own copy; errors collected. */
async function loadPackages(names) {
  const errors = [];
  await pyodide.loadPackage(names, { messageCallback: () => {}, errorCallback: (m) => errors.push(m) });
  if (errors.length) throw new Error(errors.join("; "));
}

/** Load scipy once (the first training run or sgemm benchmark); false if it cannot load. */
async function ensureBlas() {
  if (training.blas !== null) return training.blas;
  const t = performance.now();
  try {
    await loadPackages("scipy");
    training.blas = call("enable_blas");
    if (!training.blas) training.note = "scipy could not be loaded";
  } catch (err) {
    training.blas = false;
    training.note = `scipy could not be loaded: ${pythonMessage(err).message}`;
  }
  training.scipyMs = performance.now() - t;
  return training.blas;
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
  // numpy and the digitnet wheel (numpy its only dependency) in one parallel step of
  // Pyodide's own loader; micropip's resolver would add ~0.5 s for one such wheel.
  manifest = await manifestP;
  await loadPackages(["numpy", new URL(manifest.wheel, BASE).href]).catch((err) => {
    throw new Error(`Could not load numpy and digitnet: ${err.message}`);
  });
  timings.installed = Math.round(performance.now() - t0);

  progress("digitnet");
  api = pyodide.pyimport("digitnet.worker_api").WorkerAPI();
  timings.imported = Math.round(performance.now() - t0);

  progress("model");
  const modelBytes = new Uint8Array(await modelBytesP);
  call("use_model", modelBytes);
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

/** Run a training or adapting session (started by `start`) in slices of ~SLICE_S, each
 * slice's report posted as an update, yielding between slices so predict/stopTraining are
 * answered meanwhile. Result: {state: "done"|"stopped", report, results, bytes, trainS}
 * or {state: "diverged", message, report}. */
async function runSlices(post, start) {
  if (training.running) throw new Error("a training run is already going");
  Object.assign(training, { running: true, stop: false });
  try {
    call("load_data");
    if (training.blas === null) post({ phase: "blas" });
    const blas = await ensureBlas();
    post({ phase: "start", matmul: blas ? "sgemm" : "numpy", note: training.note });
    start();
    const started = performance.now();
    let report;
    for (;;) {
      if (training.stop) call("stop_training");
      report = call("train_step", SLICE_S);
      report.heapBytes = heapBytes();
      report.elapsed_s = (performance.now() - started) / 1000;
      post(report);
      if (report.state !== "running") break;
      await new Promise((resolve) => setTimeout(resolve, 0)); // answer other messages
    }
    if (report.state === "diverged") return { state: "diverged", message: report.message, report };
    const { results, bytes } = call("finish_training");
    return { state: report.state, report, results, bytes, trainS: report.elapsed_s };
  } finally {
    training.running = false;
  }
}

const handlers = {
  /** {pixels: width*height grey bytes, width, height, raw, insight, placed (a drawing as on
   * the pad)} -> {empty, rejected (a sentence) | probs, preview, computeMs, maps or null}. */
  predict({ pixels, width, height, raw = false, insight = false, placed = undefined }) {
    if (!(pixels instanceof Uint8Array) || pixels.length !== width * height) {
      throw new Error("predict: pixels must be a Uint8Array of width*height grey values");
    }
    const t = performance.now();
    const out = call("predict", pixels, height, width, Boolean(raw), placed);
    const computeMs = performance.now() - t;
    if (out === null || out.rejected) return { empty: !out, rejected: out?.rejected ?? null, computeMs };
    const maps = insight ? call("feature_maps") : null;
    return { empty: false, probs: out.probs, preview: out.preview, computeMs, maps };
  },
  /** {n} -> {n, images, labels, preds, conf, wrong}: test digits for the gallery. */
  gallery: ({ n }) => call("gallery", n | 0),
  /** The bundled digits load after the page is ready (first needed by the gallery). */
  loadData() {
    const t = performance.now();
    return { nTest: call("load_data"), ms: performance.now() - t };
  },
  /** The pad model's first layer: {kind: "cnn"|"mlp", n, h, w, title, pixels}. */
  insight: () => call("insight"),
  /** These model bytes become the pad's model; a bad file is refused, nothing replaced. */
  useModel: ({ bytes }) => ({ architecture: call("use_model", bytes) }),
  /** Validate model bytes (e.g. an import) and measure them: {architecture, accuracy}. */
  checkModel: ({ bytes }) => call("check_model", bytes),
  /** {name: a key of build-manifest.json's models, default "mlp"}: a shipped model,
   * downloaded on first use (then cached). */
  async usePretrained({ name = "mlp" } = {}) {
    const url = manifest.models && manifest.models[name];
    if (!url) throw new Error(`this site ships no pretrained model "${name}"`);
    if (!pretrained[name]) {
      pretrained[name] = fetchOk(new URL(url, BASE), `the pretrained ${name.toUpperCase()}`)
        .then((r) => r.arrayBuffer()).then((b) => new Uint8Array(b));
      pretrained[name].catch(() => delete pretrained[name]); // a later try downloads again
    }
    return { architecture: call("use_model", await pretrained[name]), name };
  },
  /** Train a fresh network. settings: {model, recipe, epochs, batch_size, lr, optimizer,
   * augment} (digitnet.recipes.recipe_for). Result: see runSlices. */
  train: ({ settings }, post) => runSlices(post, () => call("start_training", settings)),
  /** Fine-tune a copy of the pad's model on the person's examples ({pixels: N*784 bytes,
   * labels: N bytes}); the pad keeps its model. Result: see runSlices (results: {accuracy,
   * source_accuracy, n_test, n_examples, architecture}). */
  adapt: ({ pixels, labels }, post) => runSlices(post, () => call("start_adapt", pixels, labels)),
  /** {pixels, labels} -> {bytes}: the examples as a digitnet examples .npz file. */
  exportExamples: ({ pixels, labels }) => ({ bytes: call("export_examples", pixels, labels) }),
  /** {bytes} of an examples file -> {pixels, labels, n}; a bad file is refused with a reason. */
  importExamples: ({ bytes }) => call("import_examples", bytes),
  stopTraining() { training.stop = true; return { running: training.running }; },
  // Benchmarks (tools/bench.py). {op: "memory"} -> {heapBytes}; {op: "matmul" | "train" |
  // "train_memory", path: "numpy" | "einsum" | "sgemm", ...digitnet.bench arguments} ->
  // {result, ms, scipyMs, heapBytes}. The sgemm path loads scipy first (once).
  async bench({ op, ...options }) {
    if (op === "memory") return { heapBytes: heapBytes() };
    const firstScipy = options.path === "sgemm" && training.blas === null;
    if (firstScipy) await ensureBlas();
    const scipyMs = firstScipy ? training.scipyMs : null;
    const t = performance.now();
    const result = call("bench", op, options, heapBytes);
    return { result, ms: performance.now() - t, scipyMs, heapBytes: heapBytes() };
  },
};

const ready = init();
ready.then((info) => self.postMessage({ type: "ready", info }),
  (err) => self.postMessage({ type: "fatal", ...pythonMessage(err) }));

// One listener for the worker's whole life. Requests queue behind the initial load.
self.addEventListener("message", async (event) => {
  const { type, id, ...args } = event.data || {};
  try {
    await ready;
    const handler = handlers[type];
    if (!handler) throw new Error(`unknown request type "${type}"`);
    const post = (update) => self.postMessage({ type: "update", id, ...update });
    const payload = await handler(args, post);
    self.postMessage({ type: "result", id, ...payload }, buffersOf(payload));
  } catch (err) {
    self.postMessage({ type: "error", id, ...pythonMessage(err) });
  }
});
