// The training panel: settings with inline validation, Train/Stop, progress, live Chart.js
// charts, per-epoch log, results, and the models kept in IndexedDB (use, rename, export,
// delete, import). The page's wiring (main.js) gives it the worker client and is told
// when the pad's model changes. Python never runs here: the worker trains.
import * as store from "./model-store.js";

const $ = (sel, root = document) => root.querySelector(sel);
const root = document.documentElement;
const N_TRAIN = 8000;

// Mirrors digitnet.recipes (the recipes "tutorial" and "default").
const PRESETS = {
  mlp: {
    tutorial: { epochs: 5, batch_size: 256, lr: 0.001, optimizer: "sgd", augment: false },
    default: { epochs: 30, batch_size: 128, lr: 0.002, optimizer: "adam", augment: true },
  },
  cnn: {
    tutorial: { epochs: 5, batch_size: 256, lr: 0.001, optimizer: "sgd", augment: false },
    default: { epochs: 30, batch_size: 64, lr: 0.001, optimizer: "adam", augment: true },
  },
};

let client = null;
let hooks = {};
let els = null;
let running = false;
let current = { kind: "pretrained", name: "the pretrained model" };
let lastRun = null; // the stored record of the latest finished run
let charts = null;
let points = null;
let chartTimer = 0;
// Measured while training, for people and benchmarks (window.digitnetTraining).
const metrics = { longestTaskMs: 0, longestChartUpdateMs: 0, longestUpdateMs: 0, heap: [], matmul: null };

// ---- Chart.js, loaded lazily --------------------------------------------------------------

let chartLib = null;
function loadChartJs() {
  if (!chartLib) {
    chartLib = new Promise((resolve, reject) => {
      if (window.Chart) return resolve(window.Chart);
      const s = document.createElement("script");
      s.src = new URL("../vendor/chart.umd.js", import.meta.url).href;
      s.async = true;
      s.onload = () => (window.Chart ? resolve(window.Chart) : reject(new Error("Chart.js did not load")));
      s.onerror = () => reject(new Error("Chart.js could not be downloaded"));
      document.head.append(s);
    });
    chartLib.catch(() => (chartLib = null));
  }
  return chartLib;
}

function makeCharts(Chart) {
  const common = {
    animation: false, responsive: true, maintainAspectRatio: false, normalized: true,
    interaction: { mode: "nearest", intersect: false },
    plugins: { legend: { labels: { boxWidth: 12 } } },
  };
  const batch = new Chart(els.chartBatches, {
    type: "line",
    data: {
      datasets: [
        { label: "loss", data: points.loss, yAxisID: "y", borderColor: "#c2410c", pointRadius: 0, borderWidth: 1.5 },
        { label: "accuracy %", data: points.acc, yAxisID: "y1", borderColor: "#2f62e0", pointRadius: 0, borderWidth: 1.5 },
      ],
    },
    options: {
      ...common,
      scales: {
        x: { type: "linear", title: { display: true, text: "epoch" }, min: 0 },
        y: { position: "left", title: { display: true, text: "loss" }, min: 0 },
        y1: { position: "right", title: { display: true, text: "accuracy %" }, min: 0, max: 100, grid: { drawOnChartArea: false } },
      },
    },
  });
  const epoch = new Chart(els.chartEpochs, {
    type: "line",
    data: {
      datasets: [
        { label: "train %", data: points.train, borderColor: "#2f62e0", backgroundColor: "#2f62e0", pointRadius: 3 },
        { label: "test %", data: points.test, borderColor: "#15803d", backgroundColor: "#15803d", pointRadius: 3 },
      ],
    },
    options: {
      ...common,
      scales: {
        x: { type: "linear", title: { display: true, text: "epoch" }, min: 0.5, ticks: { stepSize: 1, precision: 0, callback: (v) => (Number.isInteger(v) ? v : "") } },
        y: { title: { display: true, text: "accuracy %" }, suggestedMin: 80, max: 100 },
      },
    },
  });
  return { batch, epoch };
}

let epochsPlanned = 1;

/** Both charts span the whole run from the start: progress reads left to right. */
function setChartRange() {
  if (!charts) return;
  charts.batch.options.scales.x.max = epochsPlanned;
  charts.epoch.options.scales.x.max = epochsPlanned + 0.5;
}

function resetCharts(epochs) {
  points = { loss: [], acc: [], train: [], test: [] };
  epochsPlanned = epochs;
  if (charts) {
    setChartRange();
    charts.batch.data.datasets[0].data = points.loss;
    charts.batch.data.datasets[1].data = points.acc;
    charts.epoch.data.datasets[0].data = points.train;
    charts.epoch.data.datasets[1].data = points.test;
    charts.batch.update("none");
    charts.epoch.update("none");
  }
  countPoints();
}

function countPoints() {
  els.chartBatches.dataset.points = String(points.loss.length);
  els.chartEpochs.dataset.points = String(points.test.length);
}

/** Redraw at most ~4 times a second: drawing is the main thread's only real work here. */
function scheduleChartUpdate() {
  countPoints();
  if (chartTimer || !charts) return;
  chartTimer = setTimeout(() => {
    chartTimer = 0;
    const t = performance.now();
    charts.batch.update("none");
    charts.epoch.update("none");
    metrics.longestChartUpdateMs = Math.max(metrics.longestChartUpdateMs, performance.now() - t);
  }, 250);
}

// ---- settings and validation ------------------------------------------------------------

const FIELDS = {
  epochs: (text) => (/^\s*\d+\s*$/.test(text) && Number(text) >= 1 && Number(text) <= 500
    ? null : "Enter a whole number of epochs from 1 to 500."),
  batch_size: (text) => (/^\s*\d+\s*$/.test(text) && Number(text) >= 1 && Number(text) <= N_TRAIN
    ? null : `Enter a whole batch size from 1 to ${N_TRAIN.toLocaleString("en")} (the training set).`),
  lr: (text) => {
    const v = Number(text);
    if (text.trim() === "" || !Number.isFinite(v)) return "Enter a number, e.g. 0.001.";
    if (v <= 0) return "The learning rate must be greater than 0.";
    if (v > 10) return "A learning rate above 10 is too large to train.";
    return null;
  },
};

function validate() {
  let ok = true;
  for (const [name, check] of Object.entries(FIELDS)) {
    const input = els.form.elements[name];
    const message = check(input.value);
    const err = $(`#${input.id}-error`);
    err.textContent = message || "";
    input.setAttribute("aria-invalid", message ? "true" : "false");
    if (message) ok = false;
  }
  els.train.disabled = running || !ok || !client;
  return ok;
}

function fillPreset() {
  const f = els.form.elements;
  const p = PRESETS[f.model.value][f.preset.value];
  f.epochs.value = String(p.epochs);
  f.batch_size.value = String(p.batch_size);
  f.lr.value = String(p.lr);
  f.optimizer.value = p.optimizer;
  f.augment.checked = p.augment;
  validate();
}

function settings() {
  const f = els.form.elements;
  return {
    model: f.model.value, recipe: f.preset.value, epochs: Number(f.epochs.value),
    batch_size: Number(f.batch_size.value), lr: Number(f.lr.value), optimizer: f.optimizer.value,
    augment: f.augment.checked,
  };
}

// ---- training -----------------------------------------------------------------------------

function setRunning(on) {
  running = on;
  els.stop.disabled = !on;
  for (const el of els.form.elements) if (el !== els.stop && el.tagName !== "BUTTON") el.disabled = on;
  root.dataset.state = on ? "training" : "ready";
  els.panel.dataset.training = on ? "running" : "idle";
  validate();
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

function handleUpdate(msg) {
  if (msg.phase === "blas") {
    setStatus("Loading the fast matrix product (scipy's BLAS, ~20 MB, once)…");
    return;
  }
  if (msg.phase === "start") {
    metrics.matmul = msg.matmul;
    els.panel.dataset.matmul = msg.matmul;
    els.engine.textContent = msg.matmul === "sgemm"
      ? "Matrix products: BLAS sgemm (scipy)."
      : `Matrix products: numpy (slower)${msg.note ? ` — ${msg.note}` : ""}.`;
    return;
  }
  const epochFloat = msg.seen / N_TRAIN;
  if (msg.batches > 0 && msg.loss !== null) {
    points.loss.push({ x: epochFloat, y: msg.loss });
    points.acc.push({ x: epochFloat, y: msg.accuracy * 100 });
  }
  for (const e of msg.epochs) {
    points.train.push({ x: e.epoch + 1, y: e.accuracy * 100 });
    points.test.push({ x: e.epoch + 1, y: e.val_accuracy * 100 });
    const line = `Epoch: ${e.epoch}, Loss: ${e.loss.toFixed(4)}, Acc: ${(e.accuracy * 100).toFixed(2)}` +
      ` — test ${(e.val_accuracy * 100).toFixed(2)}%`;
    els.log.textContent += (els.log.textContent ? "\n" : "") + line;
    els.log.scrollTop = els.log.scrollHeight;
    metrics.heap.push({ epoch: e.epoch + 1, bytes: msg.heapBytes });
    els.panel.dataset.heapBytes = String(msg.heapBytes);
  }
  scheduleChartUpdate();
  setProgress(msg.progress);
  els.panel.dataset.examplesPerS = msg.examples_per_s.toFixed(0);
  if (msg.state === "running") {
    setStatus(`Training… ${Math.round(msg.examples_per_s).toLocaleString("en")} examples/s · ` +
      `${duration(msg.eta_s)} left`);
  }
}

async function train() {
  if (running || !validate()) return;
  const chosen = settings();
  setRunning(true);
  resetCharts(chosen.epochs);
  els.log.textContent = "";
  els.results.hidden = true;
  els.useTrained.hidden = true;
  els.error.hidden = true;
  setProgress(0);
  setStatus("Starting…");
  loadChartJs().then((Chart) => {
    if (!charts) {
      charts = makeCharts(Chart);
      setChartRange();
    }
    scheduleChartUpdate();
  }).catch((err) => setStatus(`${err.message}; training continues without charts.`, "error"));
  let result;
  try {
    result = await client.request("train", { settings: chosen }, [], onUpdate);
  } catch (err) {
    setRunning(false);
    setStatus(`Training could not run: ${err.message}`, "error");
    return;
  }
  setRunning(false);
  if (charts) {
    charts.batch.update("none");
    charts.epoch.update("none");
  }
  if (result.state === "diverged") {
    els.panel.dataset.outcome = "diverged";
    setStatus("Training stopped: it diverged.", "error");
    els.error.textContent = `${result.message}. Try a smaller learning rate. ` +
      `Nothing was saved; ${current.name} is still in use.`;
    els.error.hidden = false;
    return;
  }
  const r = result.results;
  const examples = result.report.seen;
  setStatus(result.state === "stopped"
    ? `Stopped after ${examples.toLocaleString("en")} examples (${(examples / N_TRAIN).toFixed(1)} epochs). The partly trained model is kept.`
    : `Done: ${chosen.epochs} epoch${chosen.epochs === 1 ? "" : "s"} in ${duration(result.report.elapsed_s)}, ` +
      `${Math.round(result.report.examples_per_s).toLocaleString("en")} examples/s.`);
  if (result.state === "stopped") {
    els.log.textContent += `${els.log.textContent ? "\n" : ""}Stopped at ${(examples / N_TRAIN).toFixed(2)} epochs.`;
  }
  renderResults(r);
  const name = `${chosen.model.toUpperCase()} · ${chosen.recipe} · ` +
    (result.state === "stopped" ? `stopped at ${(examples / N_TRAIN).toFixed(1)} of ${chosen.epochs} epochs`
      : `${chosen.epochs} epoch${chosen.epochs === 1 ? "" : "s"}`);
  try {
    lastRun = await store.add({
      name, accuracy: r.accuracy, architecture: r.architecture, settings: chosen, bytes: result.bytes,
    });
  } catch (err) {
    lastRun = { id: null, name, accuracy: r.accuracy, architecture: r.architecture, bytes: result.bytes };
    modelsMessage(`This model could not be saved in the browser: ${err.message}`, "error");
  }
  els.useTrained.hidden = false;
  els.useTrained.disabled = false;
  await renderList();
  els.panel.dataset.outcome = result.state; // last: results shown, model kept and listed
}

function renderResults(r) {
  els.results.hidden = false;
  els.testAccuracy.dataset.value = r.accuracy.toFixed(4);
  els.testAccuracy.textContent = `${(r.accuracy * 100).toFixed(2)}%`;
  els.resultsNote.textContent = `on ${r.n_test.toLocaleString("en")} held-out test digits · ${r.architecture}`;
  // Confusion matrix: rows = true digit, columns = predicted digit.
  const table = document.createElement("table");
  table.className = "confusion";
  table.dataset.testid = "confusion";
  const cap = document.createElement("caption");
  cap.textContent = "Confusion matrix: rows are the true digit, columns the prediction";
  const head = document.createElement("tr");
  head.append(cell("th", "true ↓ / predicted →"));
  for (let d = 0; d < 10; d++) head.append(cell("th", String(d), "col"));
  const max = Math.max(1, ...r.confusion.flatMap((row, i) => row.filter((_, j) => j !== i)));
  table.append(cap, head);
  r.confusion.forEach((row, i) => {
    const tr = document.createElement("tr");
    tr.append(cell("th", String(i), "row"));
    row.forEach((n, j) => {
      const td = cell("td", String(n));
      if (i === j) td.className = "diag";
      else if (n > 0) td.style.setProperty("--heat", (0.15 + 0.85 * n / max).toFixed(3));
      tr.append(td);
    });
    table.append(tr);
  });
  els.confusion.replaceChildren(table);
  const frag = document.createDocumentFragment();
  for (const m of r.mistakes) {
    const li = document.createElement("li");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    const img = new ImageData(28, 28);
    m.pixels.forEach((v, k) => {
      img.data[4 * k] = img.data[4 * k + 1] = img.data[4 * k + 2] = v;
      img.data[4 * k + 3] = 255;
    });
    canvas.getContext("2d").putImageData(img, 0, 0);
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `a ${m.label} taken for a ${m.predicted}`);
    const cap2 = document.createElement("span");
    cap2.textContent = `${m.predicted} (${Math.round(m.confidence * 100)}%), is ${m.label}`;
    li.append(canvas, cap2);
    frag.append(li);
  }
  els.mistakes.replaceChildren(frag);
  els.mistakesNote.hidden = r.mistakes.length === 0;
}

function cell(tag, text, scope) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (scope) el.scope = scope;
  return el;
}

// ---- models that last ----------------------------------------------------------------------

function modelsMessage(text, kind = "info") {
  els.modelsMessage.textContent = text;
  els.modelsMessage.dataset.kind = kind;
  els.modelsMessage.hidden = !text;
}

async function useRecord(record) {
  const bytes = new Uint8Array(record.bytes).slice();
  await client.request("useModel", { bytes }, [bytes.buffer]);
  current = { kind: "stored", id: record.id, name: `“${record.name}”` };
  renderCurrent();
  hooks.onModelChanged?.({ name: record.name, accuracy: record.accuracy, id: record.id });
}

async function usePretrained() {
  // The model selector by the pad (model-picker.js) says which pretrained model (MLP/CNN).
  await client.request("usePretrained", { name: hooks.pretrainedName?.() || "mlp" });
  current = { kind: "pretrained", name: "the pretrained model" };
  renderCurrent();
  hooks.onModelChanged?.({ name: null });
}

function renderCurrent() {
  els.current.textContent = current.kind === "pretrained"
    ? hooks.pretrainedLabel?.() || "the pretrained model" : current.name;
  els.current.dataset.kind = current.kind;
  els.usePretrained.disabled = current.kind === "pretrained";
  for (const li of els.list.children) {
    const on = current.kind === "stored" && Number(li.dataset.id) === current.id;
    li.classList.toggle("current", on);
    if (on) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
  }
}

function fileName(name) {
  return `digitnet-${name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").toLowerCase() || "model"}.npz`;
}

function download(record) {
  const url = URL.createObjectURL(new Blob([record.bytes], { type: "application/octet-stream" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName(record.name);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function renderList() {
  let records;
  try {
    records = await store.list();
  } catch (err) {
    modelsMessage(`Saved models are unavailable: ${err.message}`, "error");
    return;
  }
  els.empty.hidden = records.length > 0;
  const frag = document.createDocumentFragment();
  for (const r of records) {
    const li = document.createElement("li");
    li.dataset.testid = "saved-model";
    li.dataset.id = String(r.id);
    const name = document.createElement("span");
    name.className = "model-name";
    name.textContent = r.name;
    const meta = document.createElement("span");
    meta.className = "muted model-meta";
    const acc = typeof r.accuracy === "number" ? `${(r.accuracy * 100).toFixed(1)}% test accuracy · ` : "";
    meta.textContent = `${acc}${r.architecture || ""} · ${new Date(r.date).toLocaleString("en")}`;
    const actions = document.createElement("span");
    actions.className = "model-actions";
    const button = (label, action, aria) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "button small secondary";
      b.textContent = label;
      b.dataset.action = action;
      b.setAttribute("aria-label", `${aria} ${r.name}`);
      actions.append(b);
      return b;
    };
    button("Use", "use", "Use").addEventListener("click", () =>
      guard(`Could not use “${r.name}”`, async () => {
        await useRecord(r);
        modelsMessage(`The pad now uses “${r.name}”.`);
      }));
    button("Rename", "rename", "Rename").addEventListener("click", () => startRename(li, r));
    button("Export", "export", "Export").addEventListener("click", () => download(r));
    button("Delete", "delete", "Delete").addEventListener("click", () =>
      guard(`Could not delete “${r.name}”`, async () => {
        await store.remove(r.id);
        if (current.kind === "stored" && current.id === r.id) {
          await usePretrained();
          modelsMessage(`Deleted “${r.name}”; the pad is back on the pretrained model.`);
        } else {
          modelsMessage(`Deleted “${r.name}”.`);
        }
        await renderList();
      }));
    li.append(name, meta, actions);
    frag.append(li);
  }
  els.list.replaceChildren(frag);
  renderCurrent();
}

function startRename(li, record) {
  const nameEl = li.querySelector(".model-name");
  const input = document.createElement("input");
  input.type = "text";
  input.value = record.name;
  input.maxLength = 80;
  input.setAttribute("aria-label", "New name");
  input.dataset.testid = "rename-input";
  nameEl.replaceWith(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const name = input.value.trim();
    if (save && name && name !== record.name) {
      await guard("Could not rename", async () => {
        await store.rename(record.id, name);
        if (current.kind === "stored" && current.id === record.id) current.name = `“${name}”`;
      });
    }
    await renderList();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    else if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

async function importFile(file) {
  modelsMessage(`Checking ${file.name}…`);
  let bytes;
  try {
    bytes = new Uint8Array(await file.arrayBuffer());
  } catch {
    modelsMessage(`Could not read ${file.name}. Nothing was changed.`, "error");
    return;
  }
  let checked;
  try {
    const copy = bytes.slice();
    checked = await client.request("checkModel", { bytes: copy }, [copy.buffer]);
  } catch (err) {
    modelsMessage(`${file.name} is not a usable digitnet model: ${err.message}. Nothing was changed.`, "error");
    return;
  }
  const name = file.name.replace(/\.npz$/i, "") || "imported model";
  let record = { name, accuracy: checked.accuracy, architecture: checked.architecture, settings: null, bytes };
  try {
    record = await store.add(record);
  } catch (err) {
    modelsMessage(`Imported, but it could not be saved in the browser: ${err.message}`, "error");
  }
  await renderList();
  await guard(`Could not use ${file.name}`, async () => {
    await useRecord(record);
    modelsMessage(`Imported ${file.name} (${(checked.accuracy * 100).toFixed(1)}% on the test digits); the pad now uses it.`);
  });
}

async function guard(what, fn) {
  try {
    await fn();
  } catch (err) {
    modelsMessage(`${what}: ${err.message}`, "error");
  }
}

// ---- set-up ----------------------------------------------------------------------------------

export function init(options = {}) {
  hooks = options;
  const panel = $("#train");
  els = {
    panel,
    form: $("#train-form"),
    train: $('[data-testid="train"]'),
    stop: $('[data-testid="stop"]'),
    progress: $("#train-progress"),
    progressFill: $("#train-progress .progress-fill"),
    status: $("#train-status"),
    engine: $("#train-engine"),
    error: $("#train-error"),
    chartBatches: $('[data-testid="chart-batches"]'),
    chartEpochs: $('[data-testid="chart-epochs"]'),
    log: $('[data-testid="train-log"]'),
    results: $("#train-results"),
    testAccuracy: $('[data-testid="test-accuracy"]'),
    resultsNote: $("#results-note"),
    confusion: $("#confusion"),
    mistakes: $("#mistakes"),
    mistakesNote: $("#mistakes-title"),
    useTrained: $('[data-testid="use-trained"]'),
    usePretrained: $('[data-testid="use-pretrained"]'),
    current: $('[data-testid="current-model"]'),
    list: $('[data-testid="model-list"]'),
    empty: $("#models-empty"),
    importInput: $('[data-testid="import"]'),
    modelsMessage: $("#models-message"),
  };
  points = { loss: [], acc: [], train: [], test: [] };
  countPoints();
  fillPreset();
  const f = els.form.elements;
  f.model.addEventListener("change", fillPreset);
  f.preset.addEventListener("change", fillPreset);
  els.form.addEventListener("input", validate);
  els.form.addEventListener("submit", (e) => {
    e.preventDefault();
    train();
  });
  els.stop.addEventListener("click", () => {
    els.stop.disabled = true;
    setStatus("Stopping after this batch…");
    client.request("stopTraining").catch(() => {});
  });
  els.useTrained.addEventListener("click", () => lastRun && guard("Could not use the new model", async () => {
    await useRecord(lastRun);
    modelsMessage(`The pad now uses “${lastRun.name}”.`);
  }));
  els.usePretrained.addEventListener("click", () => guard("Could not switch", async () => {
    await usePretrained();
    modelsMessage("The pad uses the pretrained model again.");
  }));
  els.importInput.addEventListener("change", () => {
    const file = els.importInput.files && els.importInput.files[0];
    els.importInput.value = "";
    if (file) importFile(file);
  });
  // Chart.js is only needed here: fetch it when the panel comes into use or at idle time.
  const warm = () => loadChartJs().catch(() => {});
  panel.addEventListener("pointerenter", warm, { once: true });
  panel.addEventListener("focusin", warm, { once: true });
  // Main-thread responsiveness while training: the longest task seen (ms), for people and tests.
  if ("PerformanceObserver" in window && PerformanceObserver.supportedEntryTypes?.includes("longtask")) {
    new PerformanceObserver((list) => {
      if (!running) return;
      for (const entry of list.getEntries()) {
        metrics.longestTaskMs = Math.max(metrics.longestTaskMs, entry.duration);
        panel.dataset.longestTaskMs = metrics.longestTaskMs.toFixed(0);
      }
    }).observe({ type: "longtask", buffered: false });
  }
  window.digitnetTraining = metrics;
  renderList();
}

/** The pad's model was switched elsewhere (the selector by the pad): show it here.
 * {kind: "pretrained"} or {kind: "stored", id, name}. */
export function setCurrent({ kind, id = null, name = "" }) {
  current = kind === "stored" ? { kind, id, name: `“${name}”` } : { kind: "pretrained", name: "the pretrained model" };
  renderCurrent();
}

/** Re-read the models kept in the browser (another panel added one). */
export const refreshList = () => renderList();

/** The worker is ready: training and model switching can start. */
export function enable(workerClient) {
  client = workerClient;
  validate();
  const idle = window.requestIdleCallback || ((cb) => setTimeout(cb, 1500));
  idle(() => loadChartJs().catch(() => {}));
}
