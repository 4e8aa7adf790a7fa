/* digitnet training worker: one of the N workers a training run is split over
 * (js/training-pool.js starts them). Pyodide + numpy + scipy's BLAS + digitnet
 * (py-runtime.js); the Python side is digitnet.worker_api.WorkerAPI's replica methods.
 *
 * Per batch, every worker computes the summed gradient of its share, sends it to every
 * other worker over that pair's MessagePort (transferred, not copied), and applies the
 * rank-ordered sum of all of them, so every worker holds the same weights. Worker 0
 * reports progress, decides when to stop (its stop travels in place of its gradient, so
 * every worker stops at the same batch) and returns the model.
 * Peer message: {grad: Float32Array, loss, correct, heap} | {stop: true}
 *               | {valCorrect} (to worker 0, at an epoch's end).
 */
"use strict";

importScripts("py-runtime.js");
const { BASE, fetchOk, call, callInto, heapBytes, ensureBlas, blas } = self.PyRuntime;
const REPORT_S = 0.25; // worker 0 reports about this often (seconds): 4 times a second is live enough, and the page's redraws take CPU from the workers
const run = { going: false, stop: false };

async function init() {
  const manifestP = fetchOk(new URL("build-manifest.json", BASE), "the build manifest").then((r) => r.json());
  await self.PyRuntime.boot(manifestP);
  call("load_data");
  await ensureBlas();
  return { matmul: blas.enabled ? "sgemm" : "numpy", note: blas.note, heapBytes: heapBytes() };
}

/** Messages from one peer, in order: `next()` resolves with the next one. */
class Inbox {
  constructor(port) {
    this.queue = [];
    this.waiting = null;
    port.onmessage = (event) => {
      if (this.waiting) {
        this.waiting(event.data);
        this.waiting = null;
      } else this.queue.push(event.data);
    };
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => (this.waiting = resolve));
  }
}

/** This worker's gradient to every peer over its port, transferred: copied out of Python
 * once, into `spare` buffers (the ones peers sent earlier, whose contents are already in
 * Python, so a run stops allocating after its first batch). */
function sendToPeers(ports, out, spare) {
  const peers = ports.filter(Boolean);
  if (!peers.length) return;
  const first = callInto("replica_gradient", spare.pop());
  peers.forEach((port, i) => {
    let grad = first;
    if (i < peers.length - 1) {
      grad = spare.pop() ?? new Float32Array(first.length);
      grad.set(first); // every peer but the last gets a copy; the last, the buffer itself
    }
    port.postMessage({ grad, loss: out.loss, correct: out.correct, heap: heapBytes() }, [grad.buffer]);
  });
}

/** At an epoch's end each worker has measured its share of the test split: the others
 * send their counts to worker 0, which adds them up (messages from one peer keep their
 * order, so a count arrives before that worker's next gradient). */
async function addUpValidation(record, rank, world, ports, inboxes) {
  if (rank !== 0) {
    ports[0].postMessage({ valCorrect: record.val_correct });
    return;
  }
  const counts = [record.val_correct];
  for (let j = 1; j < world; j++) counts.push((await inboxes[j].next()).valCorrect);
  call("replica_validated", counts);
}

/** One training run's share. {settings, rank, world, ports: a MessagePort per rank (null at
 * this worker's own)}. Worker 0 posts reports ({state, seen, total, progress, loss, accuracy,
 * epochs, examples_per_s, heapBytes, heaps, ...}) and returns {state: "done" | "stopped",
 * report, results, bytes} or {state: "diverged", message, report}; the others {state}. */
async function train({ settings, rank, world, ports }, post) {
  if (run.going) throw new Error("a training run is already going");
  Object.assign(run, { going: true, stop: false });
  const inboxes = ports.map((port) => port && new Inbox(port));
  const heaps = new Array(world).fill(0);
  const spare = []; // gradient buffers to reuse (see sendToPeers)
  try {
    call("start_replica", settings, rank, world);
    if (rank === 0) post({ phase: "start", matmul: blas.enabled ? "sgemm" : "numpy", note: blas.note, workers: world });
    const started = performance.now();
    let sliceStart = started;
    let waitMs = 0; // waiting for the other workers' gradients
    let record = null;
    for (;;) {
      if (rank === 0 && run.stop) {
        for (const port of ports) port?.postMessage({ stop: true });
        call("replica_stop");
        break;
      }
      const out = call("replica_compute");
      if (out === null) break; // the run is over: every worker ends at the same batch
      sendToPeers(ports, out, spare);
      const grads = [], losses = [], corrects = [];
      let stopped = false;
      const waitStart = performance.now();
      for (let j = 0; j < world && !stopped; j++) {
        const m = j === rank ? { grad: null, loss: out.loss, correct: out.correct, heap: heapBytes() } : await inboxes[j].next();
        stopped = Boolean(m.stop);
        grads.push(m.grad);
        losses.push(m.loss);
        corrects.push(m.correct);
        heaps[j] = m.heap;
      }
      waitMs += performance.now() - waitStart;
      if (stopped) {
        call("replica_stop");
        break;
      }
      record = call("replica_apply", grads, losses, corrects);
      for (const grad of grads) if (grad) spare.push(grad); // now copied into Python
      if (record.kind === "diverged") break;
      if (record.kind === "epoch" && world > 1) await addUpValidation(record, rank, world, ports, inboxes);
      if (rank === 0 && (record.kind === "epoch" || performance.now() - sliceStart >= REPORT_S * 1000)) {
        post({ ...call("replica_report"), heapBytes: heapBytes(), heaps, wait_s: waitMs / 1000, elapsed_s: (performance.now() - started) / 1000 });
        sliceStart = performance.now();
        if (world === 1) await new Promise((resolve) => setTimeout(resolve, 0)); // hear Stop
      }
    }
    if (rank !== 0) return { state: record?.kind === "diverged" ? "diverged" : "ended" };
    const report = { ...call("replica_report"), heapBytes: heapBytes(), heaps, wait_s: waitMs / 1000, elapsed_s: (performance.now() - started) / 1000 };
    post(report);
    if (report.state === "diverged") return { state: "diverged", message: report.message, report };
    const { results, bytes } = call("finish_replica");
    return { state: report.state, report, results, bytes };
  } finally {
    for (const port of ports) port?.close();
    run.going = false;
  }
}

self.PyRuntime.serve({
  train,
  stopTraining() { run.stop = true; return { running: run.going }; },
  memory: () => ({ heapBytes: heapBytes() }),
}, init());
