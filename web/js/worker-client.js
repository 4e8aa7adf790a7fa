// Promise-based client for web/worker.js: tagged {type, id} requests, errors as data.
// Page-agnostic: it never touches the DOM; the page subscribes to progress and state.

export class WorkerError extends Error {
  constructor(message, detail) {
    super(message);
    this.name = "WorkerError";
    this.detail = detail || message;
  }
}

export class WorkerClient {
  /**
   * @param {string|URL} url  the worker script
   * @param {{onProgress?: Function, onReady?: Function, onFatal?: Function}} hooks
   */
  constructor(url, hooks = {}) {
    this.hooks = hooks;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject}
    this.ready = new Promise((resolve, reject) => {
      this._ready = resolve;
      this._fatal = reject;
    });
    this.ready.catch(() => {});
    this.worker = new Worker(url);
    // One listener for the client's whole life.
    this.worker.addEventListener("message", (event) => this._onMessage(event.data));
    this.worker.addEventListener("error", (event) => {
      event.preventDefault();
      this._fail(new WorkerError(`The worker failed to start: ${event.message || "script error"}`));
    });
  }

  _onMessage(msg) {
    switch (msg.type) {
      case "progress":
        this.hooks.onProgress?.(msg);
        break;
      case "ready":
        this._ready(msg.info);
        this.hooks.onReady?.(msg.info);
        break;
      case "fatal":
        this._fail(new WorkerError(msg.message, msg.detail));
        break;
      case "update": {
        // Intermediate news about a long request (training progress), before its result.
        const entry = this.pending.get(msg.id);
        entry?.onUpdate?.(msg);
        break;
      }
      case "result":
      case "error": {
        const entry = this.pending.get(msg.id);
        if (!entry) return;
        this.pending.delete(msg.id);
        if (msg.type === "result") entry.resolve(msg);
        else entry.reject(new WorkerError(msg.message, msg.detail));
        break;
      }
      default:
        break;
    }
  }

  _fail(err) {
    if (this.failed) return;
    this.failed = err;
    this._fatal(err);
    this.hooks.onFatal?.(err);
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }

  /**
   * Send one request; resolves with the result message, rejects with a WorkerError.
   * `onUpdate` receives the request's "update" messages (progress) until it settles.
   */
  request(type, args = {}, transfer = [], onUpdate = null) {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onUpdate });
      this.worker.postMessage({ type, id, ...args }, transfer);
    });
  }
}

/**
 * Coalesces classification requests: while one is in flight only the most recent
 * submission waits; older ones are dropped (only the latest drawing matters).
 * `submit(job)` returns a promise resolving to the result, or to null when superseded.
 */
export class LatestOnly {
  constructor(run) {
    this.run = run; // job -> Promise
    this.busy = false;
    this.waiting = null; // {job, resolve, reject}
  }

  submit(job) {
    return new Promise((resolve, reject) => {
      if (this.waiting) this.waiting.resolve(null); // superseded before it was sent
      this.waiting = { job, resolve, reject };
      this._pump();
    });
  }

  async _pump() {
    if (this.busy || !this.waiting) return;
    const { job, resolve, reject } = this.waiting;
    this.waiting = null;
    this.busy = true;
    try {
      const result = await this.run(job);
      // A newer submission arrived while this ran: this result is stale.
      resolve(this.waiting ? null : result);
    } catch (err) {
      if (this.waiting) resolve(null);
      else reject(err);
    } finally {
      this.busy = false;
      this._pump();
    }
  }
}
