// Wiring: service worker, compute worker, pad, upload, gallery. No Python here.
import { WorkerClient, LatestOnly } from "./worker-client.js";
import { Pad } from "./pad.js";
import { decodeImageFile, ImageInputError } from "./image-input.js";
import * as ui from "./ui.js";
import * as training from "./training.js";
import * as picker from "./model-picker.js";
import * as padModel from "./pad-model.js";
import * as insight from "./insight.js";
import * as teach from "./teach.js";
import * as gallery from "./gallery.js";
import { siteManifest } from "./site-manifest.js";

const root = document.documentElement;
const startedAt = performance.now();

ui.init();
ui.renderEmpty();
training.init({ onListChanged: () => picker.refresh().catch(() => {}) });
picker.init();
padModel.onChange((model, { changed }) => changed && showModelChange());
insight.init({ onToggle: (open) => open && refreshInsight(true) });
teach.init({
  sourceName: () => padModel.labelOf(padModel.currentModel()),
  settled: () => padModel.settled(),
  onAdapted,
});
gallery.init({
  onPick: (pixels) => {
    pad.clear();
    ui.showThumb(null);
    ui.setMessage("A test digit from the gallery");
    // Already an MNIST input: classified as-is, exactly as in the gallery.
    classify(() => ({ pixels: pixels.slice(), width: 28, height: 28, raw: true }), "test digit");
  },
});

let client = null;
let ready = false;
let generation = 0; // bumps whenever what the result panel should show changes
let deferred = null; // a classification asked for before the model was ready

const pad = new Pad(document.querySelector('[data-testid="pad"]'), {
  onStrokeStart: () => {
    ui.setMessage("");
    ui.showThumb(null);
  },
  onStrokeEnd: (t) => classify(drawing, "drawing", t, pad.strokes.length),
});

/** The drawing as sent: re-rendered to fit its extent, and as it lies on the pad (only
 * there do strokes along the pad's border show). */
function drawing() {
  return { ...pad.snapshot(112), placed: pad.snapshot(112, null).pixels };
}

// Every request goes through LatestOnly: while one runs, only the newest waits.
// A model switch in progress (the CNN downloading) finishes first. With "Inside the
// network" open, the CNN's feature maps come back with the prediction.
const predictions = new LatestOnly(async (image) => {
  await padModel.settled();
  return client.request("predict", { ...image, insight: insight.isOpen() }, [image.pixels.buffer]);
});

/**
 * @param {() => {pixels, width, height}} getImage
 * @param {string} source  "drawing" or a file name
 * @param {number} t0      performance.now() when the user finished the input
 * @param {number} strokes how many strokes the drawing had (0 for images)
 */
async function classify(getImage, source, t0 = performance.now(), strokes = 0) {
  const gen = ++generation;
  if (client && client.failed) {
    ui.renderPending("The network could not be loaded (see the message above).");
    return;
  }
  if (!ready) {
    deferred = () => classify(getImage, source, performance.now(), strokes);
    ui.renderPending("The model is still loading — your digit will be classified in a moment.");
    return;
  }
  let result;
  try {
    result = await predictions.submit(getImage());
  } catch (err) {
    if (gen === generation) showFailure(`Could not classify: ${err.message}`);
    return;
  }
  if (result === null || gen !== generation) return; // superseded by newer input
  const verdict = !result.empty && !result.rejected;
  teach.setInput(verdict ? result.preview : null);
  if (result.empty) {
    ui.renderEmpty(source === "drawing" ? "Draw a digit" : "No digit found in that image");
  } else if (result.rejected) {
    ui.renderEmpty(result.rejected, "rejected");
  } else {
    ui.renderPrediction(result, source);
  }
  if (insight.isOpen()) insight.renderMaps(result.maps || null, verdict ? insightKind : "empty");
  ui.setLatency(performance.now() - t0, result.computeMs, strokes);
}

/** Classifying failed: say why, and no older verdict stays beside the message. */
function showFailure(text) {
  teach.setInput(null);
  ui.setMessage(text, "error");
  ui.renderEmpty("No verdict", "error");
  if (insight.isOpen()) insight.renderMaps(null);
}

document.getElementById("clear").addEventListener("click", () => {
  generation++;
  deferred = null;
  pad.clear();
  teach.setInput(null);
  ui.setMessage("");
  ui.showThumb(null);
  ui.renderEmpty();
  if (insight.isOpen()) insight.renderMaps(null);
});

const upload = document.querySelector('[data-testid="upload"]');
upload.addEventListener("change", () => {
  const file = upload.files && upload.files[0];
  upload.value = ""; // choosing the same file again still fires "change"
  if (file) classifyFile(file);
});

// Dropping an image file on the drawing card works like choosing it.
const dropZone = document.getElementById("draw");
dropZone.addEventListener("dragover", (e) => {
  if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
  e.preventDefault();
  dropZone.classList.add("dropping");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dropping"));
dropZone.addEventListener("drop", (e) => {
  dropZone.classList.remove("dropping");
  const file = e.dataTransfer?.files?.[0];
  if (!file) return;
  e.preventDefault();
  classifyFile(file);
});

async function classifyFile(file) {
  const gen = ++generation;
  const t0 = performance.now();
  ui.setMessage(`Reading ${file.name}…`);
  let image;
  try {
    image = await decodeImageFile(file);
  } catch (err) {
    if (gen !== generation) return;
    ui.showThumb(null);
    showFailure(err instanceof ImageInputError ? err.message : `Could not read ${file.name}.`);
    return;
  }
  if (gen !== generation) return;
  pad.clear();
  ui.showThumb(image.pixels, image.width, image.height);
  ui.setMessage(`Uploaded ${file.name} (${image.width}×${image.height})`);
  await classify(() => ({ ...image, pixels: image.pixels.slice() }), file.name, t0);
}

// ---- start-up ---------------------------------------------------------------------------

async function controlledByServiceWorker() {
  // The service worker caches every file as the page first downloads it (one download,
  // then offline). So on a first visit, wait briefly until it controls this page.
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return false;
  const sw = navigator.serviceWorker;
  // Already controlled (a later visit): the browser checks for an update by itself.
  if (sw.controller) return true;
  const claimed = new Promise((resolve) => sw.addEventListener("controllerchange", resolve, { once: true }));
  const attempt = (async () => {
    const registration = await sw.register("sw.js");
    await sw.ready;
    // A force-reloaded page is not claimed by itself: ask the active worker to claim it.
    if (!sw.controller) registration.active?.postMessage({ type: "claim" });
    await claimed;
  })();
  attempt.catch((err) => console.warn("digitnet: service worker unavailable, no offline use", err));
  // Never hold the page back for long: without a service worker it still works online.
  await Promise.race([attempt.catch(() => {}), sleep(2500)]);
  return Boolean(sw.controller);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Post `message` to a service worker; resolves with its reply. */
function ask(worker, message) {
  const channel = new MessageChannel();
  const reply = new Promise((resolve) => (channel.port1.onmessage = (e) => resolve(e.data)));
  worker.postMessage(message, [channel.port2]);
  return reply;
}

let offlineChecks = 0;

/** Ask the controlling service worker to cache every file still missing; <html
 * data-offline> says "ready" only when its whole version is cached and verified. */
async function completeOfflineCache() {
  const sw = navigator.serviceWorker && navigator.serviceWorker.controller;
  if (!sw) return;
  const check = ++offlineChecks;
  const result = await ask(sw, { type: "precache" });
  if (check !== offlineChecks) return; // a newer controller was asked since
  const ok = Boolean(result && result.ok);
  root.dataset.offline = ok ? "ready" : "incomplete";
  root.dataset.offlineVersion = (result && result.version) || "";
  ui.renderOffline(ok);
  if (!ok) console.warn("digitnet: some files could not be cached for offline use", result);
}

/** The page is ready: cache the rest for offline use, and again whenever another service
 * worker takes control (a first visit claimed late, or a new version took over). */
function keepOfflineCache() {
  const run = () => completeOfflineCache().catch((err) => console.warn("digitnet: offline cache", err));
  if (navigator.serviceWorker) navigator.serviceWorker.addEventListener("controllerchange", run);
  run();
}

/** "Adapt to my handwriting" made a model: keep it like a trained one, then the pad uses
 * it. Resolves with the kept record (`unsaved` when the browser could not store it). */
async function onAdapted(fields) {
  const record = await training.keepModel(fields);
  await padModel.switchTo({ kind: "stored", id: record.id, name: record.name, bytes: record.bytes });
  return record;
}

let insightKind = "mlp"; // the pad model's kind, as "Inside the network" last saw it

/** Filters of the pad's model (when the panel is open), and the current digit's maps. */
async function refreshInsight(reclassify = false) {
  if (!insight.isOpen() || !ready) return;
  try {
    await padModel.settled();
    const info = await client.request("insight");
    insightKind = info.kind;
    insight.renderFilters(info);
  } catch (err) {
    insight.renderFilters(null);
    ui.setMessage(`Inside the network: ${err.message}`, "error");
    return;
  }
  if (pad.isEmpty()) insight.renderMaps(null);
  else if (reclassify) classify(drawing, "drawing", performance.now(), pad.strokes.length);
}

/** The pad's model changed: its filters, the drawing's prediction and the gallery follow. */
function showModelChange() {
  refreshInsight(false);
  if (!pad.isEmpty()) classify(drawing, "drawing", performance.now(), pad.strokes.length);
  gallery.modelChanged();
}

/** The build manifest: the pad's default model and the training form's recipes. */
async function configure() {
  try {
    const manifest = await siteManifest();
    padModel.configure(manifest);
    picker.showPretrained();
    training.configure(manifest);
  } catch (err) {
    training.configure(null, err.message);
  }
}

async function start() {
  const configured = configure();
  const controlled = await controlledByServiceWorker();
  root.dataset.sw = controlled ? "controlled" : "none";
  const workerStartedAt = performance.now();
  client = new WorkerClient(new URL("../worker.js", import.meta.url), {
    onProgress: ui.renderProgress,
  });
  let info;
  try {
    info = await client.ready;
  } catch (err) {
    ui.renderFatal(err);
    return;
  }
  await configured;
  ready = true;
  // Loading timings and the worker client, for people and benchmarks.
  window.digitnet = { info, startedAt, workerStartedAt, client };
  const seconds = performance.now() / 1000; // since navigation started
  root.dataset.readyMs = String(Math.round(performance.now()));
  ui.renderReady(info, seconds);
  padModel.enable(client);
  training.enable(client);
  picker.enable();
  teach.enable(client);
  refreshInsight(true);
  if (deferred) deferred();
  deferred = null;
  keepOfflineCache();
  gallery.enable(client);
}

start();
