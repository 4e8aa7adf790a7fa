/* What the page's Pyodide workers share (worker.js: the pad's; train-worker.js: training):
 * loading Pyodide, numpy and the digitnet wheel from this site, one
 * digitnet.worker_api.WorkerAPI, value conversion between JavaScript and Python, scipy's
 * BLAS for training, and the tagged-message loop. Loaded with importScripts; defines
 * self.PyRuntime. No DOM, no Python source.
 *
 * Protocol (tagged messages):
 *   main -> worker  {type, id, ...args}
 *   worker -> main  {type: "result", id, ...payload} | {type: "update", id, ...news}
 *                   {type: "error", id, message, detail}   (errors are data, never thrown across)
 *                   {type: "progress", stage, label, done, total}   (loading stages, no id)
 *                   {type: "ready", info} | {type: "fatal", message, detail}
 */
"use strict";

self.PyRuntime = (() => {
  const BASE = new URL("./", self.location.href);
  const t0 = performance.now();
  const timings = {};
  const methods = {}; // WorkerAPI bound methods, looked up once (each lookup makes a PyProxy)
  const blas = { enabled: null, note: "", ms: 0 };
  let pyodide = null;
  let api = null; // the WorkerAPI instance (a PyProxy)

  async function fetchOk(url, what) {
    const fail = (why) => new Error(`Could not download ${what} (${url}): ${why}`);
    const response = await fetch(url).catch((err) => { throw fail(err.message); });
    if (!response.ok) throw fail(`HTTP ${response.status}`);
    return response;
  }

  /** Pyodide packages (or wheel URLs) from the site's own copy; errors collected. */
  async function loadPackages(names) {
    const errors = [];
    await pyodide.loadPackage(names, { messageCallback: () => {}, errorCallback: (m) => errors.push(m) });
    if (errors.length) throw new Error(errors.join("; "));
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

  /** Copy the float32 numpy array a WorkerAPI method returns into `target` (a Float32Array
   * of the same length, or a new one when it is missing or another size) and return it:
   * one copy out of Python's memory, into memory the caller can reuse. */
  function callInto(name, target) {
    methods[name] ??= api[name];
    const array = methods[name]();
    const view = array.getBuffer("f32");
    try {
      if (!target || target.length !== view.data.length) target = new Float32Array(view.data.length);
      target.set(view.data);
      return target;
    } finally {
      view.release();
      array.destroy();
    }
  }

  /** The buffers of a result's typed arrays (nested objects too), transferred, not copied. */
  function buffersOf(obj) {
    return Object.values(obj).flatMap((v) => (ArrayBuffer.isView(v) ? [v.buffer]
      : v && typeof v === "object" && !Array.isArray(v) ? buffersOf(v) : []));
  }

  function pythonMessage(err) {
    // PythonError.message is the whole traceback; the last line names the exception.
    const text = String((err && err.message) || err);
    const lines = text.trim().split("\n").filter((l) => l.trim());
    return { message: lines[lines.length - 1] || text, detail: text };
  }

  /** Pyodide, then numpy and the digitnet wheel (numpy its only dependency) in one parallel
   * step of Pyodide's own loader, then the WorkerAPI. `progress(stage)` names each stage
   * as it starts ("runtime", "numpy", "digitnet"). Resolves with the build manifest. */
  async function boot(manifestP, progress = () => {}) {
    progress("runtime");
    importScripts(new URL("pyodide/pyodide.js", BASE).href);
    pyodide = await self.loadPyodide({ indexURL: new URL("pyodide/", BASE).href });
    progress("numpy");
    const manifest = await manifestP;
    await loadPackages(["numpy", new URL(manifest.wheel, BASE).href]).catch((err) => {
      throw new Error(`Could not load numpy and digitnet: ${err.message}`);
    });
    timings.installed = Math.round(performance.now() - t0);
    progress("digitnet");
    api = pyodide.pyimport("digitnet.worker_api").WorkerAPI();
    timings.imported = Math.round(performance.now() - t0);
    return manifest;
  }

  /** Load scipy once and train with its BLAS sgemm; false (with blas.note) if it cannot load. */
  async function ensureBlas() {
    if (blas.enabled !== null) return blas.enabled;
    const t = performance.now();
    try {
      await loadPackages("scipy");
      blas.enabled = call("enable_blas");
      if (!blas.enabled) blas.note = "scipy could not be loaded";
    } catch (err) {
      blas.enabled = false;
      blas.note = `scipy could not be loaded: ${pythonMessage(err).message}`;
    }
    blas.ms = performance.now() - t;
    return blas.enabled;
  }

  /** Answer requests with `handlers[type](args, post)` once `ready` resolves: one listener
   * for the worker's whole life; results' typed arrays are transferred. */
  function serve(handlers, ready) {
    ready.then((info) => self.postMessage({ type: "ready", info }),
      (err) => self.postMessage({ type: "fatal", ...pythonMessage(err) }));
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
  }

  /** {version, python, numpy}: the versions this worker runs (the benchmark reports them). */
  function versions() {
    const sys = pyodide.pyimport("sys");
    const numpy = pyodide.pyimport("numpy");
    try {
      return { version: pyodide.version, python: sys.version.split(" ")[0], numpy: numpy.__version__ };
    } finally {
      sys.destroy();
      numpy.destroy();
    }
  }

  return {
    BASE, t0, timings, blas, fetchOk, loadPackages, call, callInto, pythonMessage, boot, ensureBlas, serve,
    versions, heapBytes: () => pyodide._module.HEAPU8.length,
  };
})();
