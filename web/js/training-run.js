// One training run on the training workers (training-pool.js): Train/Stop, progress bar,
// status line, per-epoch log and live charts, then the results and the new model kept
// (saved-models.js). The pad's own worker keeps classifying meanwhile.
import * as form from "./training-form.js";
import * as charts from "./training-charts.js";
import * as results from "./training-results.js";
import * as savedModels from "./saved-models.js";
import * as padModel from "./pad-model.js";
import { TrainingPool } from "./training-pool.js";

const $ = (sel) => document.querySelector(sel);
const root = document.documentElement;

let els = null;
let client = null;
let running = false;
let formValid = false;
let lastRun = null; // the kept record of the latest finished run
const pool = new TrainingPool(new URL("../train-worker.js", import.meta.url));
// Measured while training, for people and benchmarks (window.digitnetTraining).
const metrics = { longestTaskMs: 0, longestChartUpdateMs: 0, longestUpdateMs: 0, heap: [], speeds: [], matmul: null, workers: 0 };

export function init() {
  els = {
    panel: $("#train"),
    form: $("#train-form"),
    train: $('[data-testid="train"]'),
    stop: $('[data-testid="stop"]'),
    progress: $("#train-progress"),
    progressFill: $("#train-progress .progress-fill"),
    status: $("#train-status"),
    engine: $("#train-engine"),
    error: $("#train-error"),
    log: $('[data-testid="train-log"]'),
    speed: $('[data-testid="train-speed"]'),
    useTrained: $('[data-testid="use-trained"]'),
  };
  charts.init((ms) => (metrics.longestChartUpdateMs = Math.max(metrics.longestChartUpdateMs, ms)));
  els.form.addEventListener("submit", (e) => {
    e.preventDefault();
    train();
  });
  els.stop.addEventListener("click", () => {
    els.stop.disabled = true;
    setStatus("Stopping after this batch…");
    pool.stop();
  });
  els.useTrained.addEventListener("click", () => lastRun && savedModels.use(
    { kind: "stored", ...lastRun }, `The pad now uses “${lastRun.name}”.`, "Could not use the new model"));
  // Chart.js is only needed here: fetch it when the panel comes into use.
  const warm = () => charts.loadChartJs().catch(() => {});
  els.panel.addEventListener("pointerenter", warm, { once: true });
  els.panel.addEventListener("focusin", warm, { once: true });
  watchLongTasks();
  pool.onStarting = (n) => setStatus(`Starting ${plural(n, "training worker")} (Python and scipy, once)…`);
  window.digitnetTraining = metrics;
  window.digitnetTrainers = pool; // for tests: kill(rank), idleMs, clients
}

/** The worker is ready: runs can start. */
export function enable(workerClient) {
  client = workerClient;
  updateTrainButton();
  const idle = window.requestIdleCallback || ((cb) => setTimeout(cb, 1500));
  idle(() => charts.loadChartJs().catch(() => {}));
}

/** The form's fields were checked: Train is enabled only when they are all valid. */
export function setFormValid(ok) {
  formValid = ok;
  updateTrainButton();
}

function updateTrainButton() {
  els.train.disabled = running || !formValid || !client;
}

// Main-thread responsiveness while training: the longest task seen (ms).
function watchLongTasks() {
  if (!("PerformanceObserver" in window) || !PerformanceObserver.supportedEntryTypes?.includes("longtask")) return;
  new PerformanceObserver((list) => {
    if (!running) return;
    for (const entry of list.getEntries()) {
      metrics.longestTaskMs = Math.max(metrics.longestTaskMs, entry.duration);
      els.panel.dataset.longestTaskMs = metrics.longestTaskMs.toFixed(0);
    }
  }).observe({ type: "longtask", buffered: false });
}

function setRunning(on) {
  running = on;
  els.stop.disabled = !on;
  form.lock(on);
  root.dataset.state = on ? "training" : "ready";
  els.panel.dataset.training = on ? "running" : "idle";
  form.validate();
  updateTrainButton();
}

function setStatus(text, kind = "info") {
  els.status.textContent = text;
  els.status.dataset.kind = kind;
}

function setProgress(fraction) {
  const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
  els.progress.setAttribute("aria-valuenow", String(pct));
  els.progress.setAttribute("aria-valuetext", `${pct}% trained`);
  els.progressFill.style.width = `${pct}%`;
}

function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "—";
  s = Math.round(s);
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

function onUpdate(msg) {
  const t = performance.now();
  handleUpdate(msg);
  metrics.longestUpdateMs = Math.max(metrics.longestUpdateMs, performance.now() - t);
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function handleUpdate(msg) {
  if (msg.phase === "start") {
    metrics.matmul = msg.matmul;
    metrics.workers = msg.workers;
    els.panel.dataset.matmul = msg.matmul;
    els.panel.dataset.workers = String(msg.workers);
    els.engine.textContent = `Training on ${plural(msg.workers, "worker")} (one CPU core each). ` + (msg.matmul === "sgemm"
      ? "Matrix products: BLAS sgemm (scipy)."
      : `Matrix products: numpy (slower)${msg.note ? ` — ${msg.note}` : ""}.`);
    return;
  }
  if (msg.batches > 0 && msg.loss !== null) charts.addBatch(msg.seen / form.trainSize(), msg.loss, msg.accuracy);
  for (const e of msg.epochs) {
    charts.addEpoch(e.epoch + 1, e.accuracy, e.val_accuracy);
    log(`Epoch: ${e.epoch}, Loss: ${e.loss.toFixed(4)}, Acc: ${(e.accuracy * 100).toFixed(2)}` +
      ` — test ${(e.val_accuracy * 100).toFixed(2)}%`);
    metrics.heap.push({ epoch: e.epoch + 1, bytes: msg.heapBytes, workers: msg.heaps });
    metrics.time = { compute_s: msg.compute_s, apply_s: msg.apply_s, wait_s: msg.wait_s, elapsed_s: msg.elapsed_s };
    els.panel.dataset.heapBytes = String(msg.heapBytes);
    showSpeed(e.examples_per_s);
  }
  charts.scheduleRedraw();
  setProgress(msg.progress);
  els.panel.dataset.examplesPerS = msg.examples_per_s.toFixed(0);
  if (msg.state === "running") {
    setStatus(`Training… ${Math.round(msg.examples_per_s).toLocaleString("en")} examples/s · ` +
      `${duration(msg.eta_s)} left`);
  }
}

/** examples/s of the last completed epoch, and on how many workers. */
function showSpeed(rate) {
  metrics.speeds.push(rate);
  els.speed.dataset.value = rate.toFixed(0);
  els.speed.textContent = `Last epoch: ${Math.round(rate).toLocaleString("en")} examples/s on ` +
    `${plural(metrics.workers, "worker")}.`;
}

function log(line) {
  els.log.textContent += (els.log.textContent ? "\n" : "") + line;
  els.log.scrollTop = els.log.scrollHeight;
}

async function train() {
  if (running || !form.validate() || !client) return;
  const chosen = form.settings();
  setRunning(true);
  els.log.textContent = "";
  results.hide();
  els.useTrained.hidden = true;
  els.error.hidden = true;
  setProgress(0);
  setStatus("Starting…");
  els.engine.textContent = "";
  charts.start(chosen.epochs)
    .catch((err) => setStatus(`${err.message}; training continues without charts.`, "error"));
  let result;
  try {
    result = await pool.train(chosen, form.workers(), onUpdate);
  } catch (err) {
    setRunning(false);
    failed(err);
    return;
  }
  setRunning(false);
  charts.redrawNow();
  const inUse = padModel.labelOf(padModel.currentModel());
  if (result.state === "diverged") {
    els.panel.dataset.outcome = "diverged";
    setStatus("Training stopped: it diverged.", "error");
    els.error.textContent = divergedMessage(result.message, inUse);
    els.error.hidden = false;
    return;
  }
  if (result.state === "cancelled" || (result.state === "stopped" && result.report.seen === 0)) {
    // Stopped before the first batch (while the workers or scipy loaded): an untrained
    // network is no model.
    els.panel.dataset.outcome = "stopped";
    setStatus(`Stopped before training began, so no model was made; the pad still uses ${inUse}.`);
    return;
  }
  await finish(chosen, result);
}

/** One sentence: where the run diverged, that its network was discarded, and what the pad uses. */
function divergedMessage(detail, inUse) {
  const where = /at (epoch \d+, batch \d+)/.exec(detail || "");
  return `Training diverged${where ? ` at ${where[1]}` : ""} (the loss stopped being a finite number), ` +
    `so this run's network was discarded and the pad still uses ${inUse}; try a smaller learning rate.`;
}

/** The run could not start or go on (a worker failed): say so; nothing else changed. */
function failed(err) {
  const keeps = `${padModel.labelOf(padModel.currentModel())} is still in use`;
  if (err.crashed) {
    setStatus("Training stopped: a training worker failed.", "error");
    els.error.textContent = `The run was ended because ${err.message.replace(/\.$/, "")}; nothing was ` +
      `saved and ${keeps}. Training uses one worker from now on.`;
    form.limitWorkers(1);
  } else {
    setStatus(`Training could not run: ${err.message}`, "error");
    els.error.textContent = `Nothing was saved; ${keeps}.`;
  }
  els.error.hidden = false;
  els.panel.dataset.outcome = "failed";
}

/** A run ended done or stopped: say so, show the results, keep the model. */
async function finish(chosen, result) {
  const r = result.results;
  const epochsSeen = result.report.seen / form.trainSize();
  const stopped = result.state === "stopped";
  const epochs = `${chosen.epochs} epoch${chosen.epochs === 1 ? "" : "s"}`;
  setStatus(stopped
    ? `Stopped after ${result.report.seen.toLocaleString("en")} examples (${epochsSeen.toFixed(1)} epochs). The partly trained model is kept.`
    : `Done: ${epochs} in ${duration(result.report.elapsed_s)}, ` +
      `${Math.round(result.report.examples_per_s).toLocaleString("en")} examples/s.`);
  if (stopped) log(`Stopped at ${epochsSeen.toFixed(2)} epochs.`);
  results.show(r);
  const name = `${chosen.model.toUpperCase()} · ${chosen.recipe} · ` +
    (stopped ? `stopped at ${epochsSeen.toFixed(1)} of ${chosen.epochs} epochs` : epochs);
  lastRun = await savedModels.keep({
    name, accuracy: r.accuracy, architecture: r.architecture, settings: chosen, bytes: result.bytes,
  });
  els.useTrained.hidden = false;
  els.useTrained.disabled = false;
  els.panel.dataset.outcome = result.state; // last: results shown, model kept and listed
}
