// The training workers: a run is split over N of them (train-worker.js), started on the
// first Train (from the service worker's cache when offline), wired to each other with a
// MessageChannel per pair, and released after IDLE_MS without a run. A worker that fails
// to start or dies ends the run; the pool then trains with one worker until the page
// reloads. Page-agnostic: no DOM.
import { WorkerClient, WorkerError } from "./worker-client.js";

export const MAX_WORKERS = 8;
const IDLE_MS = 60_000;

/** Workers this device can afford: its cores, at most 4; at most 2 on a phone or with
 * 4 GB of memory or less, 1 with 2 GB or less (each worker holds its own Python, ~150 MB). */
export function affordableWorkers(nav = navigator) {
  let n = Math.min(4, Math.max(1, nav.hardwareConcurrency || 1));
  const memory = nav.deviceMemory; // GB, rounded; Chromium only
  const mobile = nav.userAgentData?.mobile ?? /Mobi|Android/i.test(nav.userAgent || "");
  if (mobile || (memory && memory <= 4)) n = Math.min(n, 2);
  if (memory && memory <= 2) n = 1;
  return n;
}

export class TrainingPool {
  /** @param {string|URL} url  the training worker script */
  constructor(url) {
    this.url = url;
    this.clients = [];
    this.onlyOne = false; // a worker failed: train with one worker from now on
    this.idleMs = IDLE_MS;
    this.idleTimer = null;
    this.running = false;
    this.onStarting = null; // fn(n): workers are being started
  }

  /** How many workers a run asked for `wanted` will use. */
  workersFor(wanted) {
    return this.onlyOne ? 1 : Math.max(1, Math.min(MAX_WORKERS, wanted | 0));
  }

  /** Train: settings as the worker's `train` takes them, over `wanted` workers (see
   * workersFor); `onUpdate` hears worker 0's reports. Resolves with worker 0's result
   * ({state: "cancelled"} when stopped before the workers were ready);
   * rejects with a WorkerError (its message one sentence) when the run could not go on. */
  async train(settings, wanted, onUpdate) {
    if (this.running) throw new WorkerError("A training run is already going.");
    this.running = true;
    this.stopAsked = false;
    clearTimeout(this.idleTimer);
    const n = this.workersFor(wanted);
    try {
      const clients = await this._start(n);
      if (this.stopAsked) return { state: "cancelled" }; // Stop while the workers loaded
      const ports = clients.map(() => new Array(n).fill(null));
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          const channel = new MessageChannel();
          ports[i][j] = channel.port1;
          ports[j][i] = channel.port2;
        }
      }
      const runs = clients.map((client, rank) => client.request(
        "train", { settings, rank, world: n, ports: ports[rank] }, ports[rank].filter(Boolean),
        rank === 0 ? onUpdate : null));
      const results = await Promise.all(runs);
      return results[0];
    } catch (err) {
      this._failed(err);
      throw err;
    } finally {
      this.running = false;
      this.idleTimer = setTimeout(() => this.release(), this.idleMs);
    }
  }

  /** Ask the run to end after the batch in progress (worker 0 tells the others). */
  stop() {
    this.stopAsked = true;
    this.clients[0]?.request("stopTraining").catch(() => {});
  }

  /** The workers' WebAssembly heaps (bytes), worker 0 first; [] when none runs. */
  async heaps() {
    return Promise.all(this.clients.map((c) => c.request("memory").then((m) => m.heapBytes)));
  }

  /** End every worker (their memory is returned to the browser). */
  release() {
    clearTimeout(this.idleTimer);
    for (const client of this.clients) client.worker.terminate();
    this.clients = [];
  }

  /** Test hook: end worker `rank` as a crash would; the run it was in ends with an error. */
  kill(rank) {
    const client = this.clients[rank];
    if (!client) return false;
    client.worker.terminate();
    client._fail(new WorkerError(`training worker ${rank + 1} stopped unexpectedly`));
    return true;
  }

  /** n ready workers: the first n of the idle ones, more started if needed (all load in
   * parallel). Workers beyond n stay idle until released, so going back to more workers
   * does not load them again. */
  async _start(n) {
    if (this.clients.length < n) this.onStarting?.(n);
    while (this.clients.length < n) this.clients.push(new WorkerClient(this.url));
    const chosen = this.clients.slice(0, n);
    try {
      await Promise.all(chosen.map((c) => c.ready));
      return chosen;
    } catch (err) {
      throw new WorkerError(`a training worker could not start (${err.message.replace(/\.$/, "")})`, err.detail);
    }
  }

  /** A run failed: workers waiting for a dead or failed peer would wait forever, so all
   * are ended; after a crash or a failed start, later runs use one worker. */
  _failed(err) {
    const crashed = this.clients.some((c) => c.failed);
    this.release();
    if (crashed) this.onlyOne = true;
    err.crashed = crashed;
  }
}
