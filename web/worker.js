/* digitnet's pad worker: Pyodide + numpy + digitnet, loaded once (py-runtime.js): it
 * classifies, switches and checks models, adapts a model to the person's examples and
 * runs benchmarks. Training runs elsewhere (train-worker.js), so classifying stays quick
 * while a network trains. Protocol: see py-runtime.js. One
 * digitnet.worker_api.WorkerAPI does all the Python work; this file forwards requests.
 * No DOM here.
 */
"use strict";

importScripts("py-runtime.js");
const { BASE, timings, blas, fetchOk, call, heapBytes, ensureBlas } = self.PyRuntime;
const STAGES = [["runtime", "Python runtime (Pyodide)"], ["numpy", "numpy"], ["digitnet", "digitnet package"], ["model", "pretrained model"]];
const SLICE_S = 0.12; // seconds of adapting per slice; other messages are answered between slices

let manifest = null;
const pretrained = {}; // model name -> Promise of the model file's bytes (fetched on first use)
const adapting = { running: false, stop: false };

function progress(stage) {
  const index = STAGES.findIndex(([name]) => name === stage);
  timings[stage] = Math.round(performance.now() - self.PyRuntime.t0);
  self.postMessage({ type: "progress", stage, label: STAGES[index][1], done: index, total: STAGES.length });
}

async function init() {
  // Independent downloads start at once, while the runtime boots.
  const manifestP = fetchOk(new URL("build-manifest.json", BASE), "the build manifest").then((r) => r.json());
  const modelBytesP = manifestP.then((m) =>
    fetchOk(new URL(m.models[m.default_model], BASE), "the pretrained model").then((r) => r.arrayBuffer()));
  modelBytesP.catch(() => {}); // reported where awaited
  manifest = await self.PyRuntime.boot(manifestP, progress);

  progress("model");
  const modelBytes = new Uint8Array(await modelBytesP);
  call("use_model", modelBytes);
  pretrained[manifest.default_model] = Promise.resolve(modelBytes);

  timings.ready = Math.round(performance.now() - self.PyRuntime.t0);
  return { version: manifest.version, timings, modelBytes: modelBytes.byteLength };
}

/** Run an adapting session (started by `start`) in slices of ~SLICE_S, each slice's report
 * posted as an update, yielding between slices so predict/stopTraining are answered
 * meanwhile. Result: {state: "done"|"stopped", report, results, bytes, trainS} or
 * {state: "diverged", message, report}. */
async function runSlices(post, start) {
  if (adapting.running) throw new Error("a training run is already going");
  Object.assign(adapting, { running: true, stop: false });
  try {
    call("load_data");
    if (blas.enabled === null) post({ phase: "blas" });
    const fast = await ensureBlas();
    post({ phase: "start", matmul: fast ? "sgemm" : "numpy", note: blas.note });
    start();
    const started = performance.now();
    let report;
    for (;;) {
      if (adapting.stop) call("stop_training");
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
    adapting.running = false;
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
  /** Fine-tune a copy of the pad's model on the person's examples ({pixels: N*784 bytes,
   * labels: N bytes}); the pad keeps its model. Result: see runSlices (results: {accuracy,
   * source_accuracy, n_test, n_examples, architecture}). */
  adapt: ({ pixels, labels }, post) => runSlices(post, () => call("start_adapt", pixels, labels)),
  /** {pixels, labels} -> {bytes}: the examples as a digitnet examples .npz file. */
  exportExamples: ({ pixels, labels }) => ({ bytes: call("export_examples", pixels, labels) }),
  /** {bytes} of an examples file -> {pixels, labels, n}; a bad file is refused with a reason. */
  importExamples: ({ bytes }) => call("import_examples", bytes),
  stopTraining() { adapting.stop = true; return { running: adapting.running }; },
  // Benchmarks (tools/bench.py). {op: "memory"} -> {heapBytes}; {op: "matmul" | "train" |
  // "train_memory", path: "numpy" | "einsum" | "sgemm", ...digitnet.bench arguments} ->
  // {result, ms, scipyMs, heapBytes}. The sgemm path loads scipy first (once).
  async bench({ op, ...options }) {
    if (op === "memory") return { heapBytes: heapBytes() };
    const firstScipy = options.path === "sgemm" && blas.enabled === null;
    if (firstScipy) await ensureBlas();
    const scipyMs = firstScipy ? blas.ms : null;
    const t = performance.now();
    const result = call("bench", op, options, heapBytes);
    return { result, ms: performance.now() - t, scipyMs, heapBytes: heapBytes() };
  },
};

self.PyRuntime.serve(handlers, init());
