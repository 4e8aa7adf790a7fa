// The training run's two live charts (Chart.js, loaded lazily from vendor/): loss and
// accuracy every few batches, and train vs test accuracy per epoch. Each canvas's
// data-points attribute counts its points (for people and tests).

let chartLib = null;
let charts = null;
let canvases = null;
let points = { loss: [], acc: [], train: [], test: [] };
let epochsPlanned = 1;
const REDRAW_MS = 250;
let timer = 0;
let lastRedraw = -Infinity; // performance.now() of the last timed redraw
let epochsChanged = false; // the epoch chart only changes at an epoch's end
let onRedraw = () => {};

/** Fetch Chart.js once (it is only needed here). */
export function loadChartJs() {
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

/** redrawn(ms): told how long each redraw took. */
export function init(redrawn = () => {}) {
  onRedraw = redrawn;
  canvases = {
    batches: document.querySelector('[data-testid="chart-batches"]'),
    epochs: document.querySelector('[data-testid="chart-epochs"]'),
  };
  countPoints();
}

function makeCharts(Chart) {
  const common = {
    animation: false, responsive: true, maintainAspectRatio: false, normalized: true,
    interaction: { mode: "nearest", intersect: false },
    plugins: { legend: { labels: { boxWidth: 12 } } },
  };
  const batch = new Chart(canvases.batches, {
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
  const epoch = new Chart(canvases.epochs, {
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

/** Both charts span the whole run from the start: progress reads left to right. */
function setRange() {
  if (!charts) return;
  charts.batch.options.scales.x.max = epochsPlanned;
  charts.epoch.options.scales.x.max = epochsPlanned + 0.5;
}

function countPoints() {
  canvases.batches.dataset.points = String(points.loss.length);
  canvases.epochs.dataset.points = String(points.test.length);
}

/** A new run of `epochs` epochs: empty charts, created once Chart.js is there.
 * Resolves when the charts exist; rejects when Chart.js could not be loaded. */
export function start(epochs) {
  points = { loss: [], acc: [], train: [], test: [] };
  epochsPlanned = epochs;
  if (charts) {
    setRange();
    charts.batch.data.datasets[0].data = points.loss;
    charts.batch.data.datasets[1].data = points.acc;
    charts.epoch.data.datasets[0].data = points.train;
    charts.epoch.data.datasets[1].data = points.test;
    redrawNow();
  }
  countPoints();
  return loadChartJs().then((Chart) => {
    if (!charts) {
      charts = makeCharts(Chart);
      setRange();
    }
    scheduleRedraw();
  });
}

/** A batch report at `epoch` (fractional): loss and accuracy (0..1). */
export function addBatch(epoch, loss, accuracy) {
  points.loss.push({ x: epoch, y: loss });
  points.acc.push({ x: epoch, y: accuracy * 100 });
}

/** Epoch `n` (1-based) finished with these accuracies (0..1). */
export function addEpoch(n, train, test) {
  points.train.push({ x: n, y: train * 100 });
  points.test.push({ x: n, y: test * 100 });
  epochsChanged = true;
}

/** Redraw at most ~4 times a second: drawing is the main thread's only real work here.
 * A report that comes after a quiet spell is drawn at once, in the same frame as the rest
 * of the panel's update (one frame per report, not two); sooner ones wait for the timer. */
export function scheduleRedraw() {
  countPoints();
  if (timer || !charts) return;
  const wait = REDRAW_MS - (performance.now() - lastRedraw);
  if (wait <= 0) return timedRedraw();
  timer = setTimeout(() => {
    timer = 0;
    timedRedraw();
  }, wait);
}

function timedRedraw() {
  const t = performance.now();
  redraw(epochsChanged);
  lastRedraw = performance.now();
  onRedraw(lastRedraw - t);
}

export function redrawNow() {
  redraw(true);
}

function redraw(withEpochs) {
  if (!charts) return;
  charts.batch.update("none");
  if (withEpochs) charts.epoch.update("none");
  epochsChanged = false;
}
