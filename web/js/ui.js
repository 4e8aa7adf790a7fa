// Page-only rendering: status, prediction, probability bars, preview, gallery.
// Knows the DOM; knows nothing about workers or Python.

const $ = (sel) => document.querySelector(sel);
const UNSURE = 0.6; // below this top probability the page says it is not sure
const root = document.documentElement;

let els = null;
let renders = 0; // counts result renders (data-seq), so tests can wait for the next one

export function init() {
  els = {
    status: $("#status"),
    statusText: $("#status-text"),
    statusDetail: $("#status-detail"),
    progress: $("#load-progress"),
    progressFill: $("#load-progress .progress-fill"),
    stages: [...document.querySelectorAll("#stages li")],
    error: $("#error"),
    prediction: $('[data-testid="prediction"]'),
    verdict: $("#verdict-text"),
    confidence: $("#confidence"),
    preview: $('[data-testid="preview"]'),
    bars: Array.from({ length: 10 }, (_, d) => $(`[data-testid="prob-${d}"]`)),
    pcts: Array.from({ length: 10 }, (_, d) => $(`#pct-${d}`)),
    message: $("#input-message"),
    thumb: $("#upload-thumb"),
    gallery: $("#gallery"),
    gallerySummary: $("#gallery-summary"),
    accuracy: $("#model-accuracy"),
  };
  clearPreview();
}

// ---- loading / status -------------------------------------------------------------

// Where each stage starts on the progress bar: roughly its share of a typical load.
const STAGE_START = { runtime: 0, numpy: 55, digitnet: 78, model: 92 };

export function renderProgress({ stage, label, done, total }) {
  els.stages.forEach((li, i) => {
    li.dataset.status = i < done ? "done" : i === done ? "active" : "waiting";
  });
  const pct = STAGE_START[stage] ?? Math.round((done / total) * 100);
  els.progress.setAttribute("aria-valuenow", String(pct));
  els.progress.setAttribute("aria-valuetext", `Loading ${label}`);
  els.progressFill.style.width = `${Math.max(4, pct)}%`;
  els.statusText.textContent = `Loading ${label}…`;
  els.status.dataset.stage = stage;
}

export function renderReady(info, seconds) {
  els.stages.forEach((li) => (li.dataset.status = "done"));
  els.progress.setAttribute("aria-valuenow", "100");
  els.progressFill.style.width = "100%";
  els.statusText.textContent = "Ready — draw a digit or upload a picture of one.";
  els.statusDetail.textContent = `Loaded in ${seconds.toFixed(1)} s`;
  root.dataset.state = "ready";
}

export function renderOffline(ok) {
  const loaded = els.statusDetail.textContent.split(" · ")[0];
  els.statusDetail.textContent = ok ? `${loaded} · works offline` : loaded;
}

export function renderFatal(err) {
  root.dataset.state = "error";
  els.statusText.textContent = "digitnet could not start.";
  els.error.hidden = false;
  const message = document.createElement("p");
  message.className = "error-message";
  message.textContent = err.message || String(err);
  els.error.replaceChildren(message);
  if (err.detail && err.detail !== err.message) {
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Technical details";
    const pre = document.createElement("pre");
    pre.textContent = err.detail;
    details.append(summary, pre);
    els.error.append(details);
  }
}

export function renderModelAccuracy(accuracy, n, modelName = null, pretrainedKind = "") {
  const who = modelName ? `Your model “${modelName}”` : `Pretrained ${pretrainedKind || "model"}`;
  els.accuracy.textContent = `${who}: ${(accuracy * 100).toFixed(1)}% on ${n.toLocaleString("en")} held-out test digits.`;
}

// ---- prediction ---------------------------------------------------------------------

/** No verdict: no digit, flat bars, blank preview, and `text` in the verdict's place.
 * state: "empty" (nothing to classify), "rejected" (not a digit) or "error". */
export function renderEmpty(text = "Draw a digit", state = "empty") {
  els.prediction.dataset.seq = String(++renders);
  els.prediction.textContent = "";
  els.prediction.removeAttribute("data-confidence");
  els.prediction.dataset.state = state;
  els.verdict.textContent = text;
  els.confidence.textContent = "";
  setBars(null);
  clearPreview();
}

/** Waiting for the model (still loading): keep the old result, say why nothing changes. */
export function renderPending(text) {
  els.verdict.textContent = text;
}

/**
 * @param {{probs: Float64Array, preview: Uint8Array}} result
 * @param {string} source  "drawing" or the uploaded file's name
 */
export function renderPrediction(result, source) {
  const probs = Array.from(result.probs);
  const order = probs.map((p, d) => [p, d]).sort((a, b) => b[0] - a[0]);
  const [[p1, d1], [p2, d2]] = order;
  els.prediction.dataset.seq = String(++renders);
  els.prediction.textContent = String(d1);
  els.prediction.dataset.confidence = p1.toFixed(4);
  const unsure = p1 < UNSURE;
  els.prediction.dataset.state = unsure ? "unsure" : "sure";
  const what = source === "drawing" ? "" : ` (${source})`;
  if (unsure) {
    els.verdict.textContent = `Not sure — maybe ${d1}, or ${d2}${what}`;
    els.confidence.textContent = `${pct(p1)} for ${d1}, runner-up ${d2} at ${pct(p2)}`;
  } else {
    els.verdict.textContent = `It's ${d1 === 8 ? "an" : "a"} ${d1}${what}`;
    els.confidence.textContent = `${pct(p1)} confident` + (p2 >= 0.05 ? ` · runner-up ${d2} at ${pct(p2)}` : "");
  }
  setBars(probs, d1);
  drawPreview(result.preview);
}

/** Latency of the last classification, for people and benchmarks. */
export function setLatency(ms, computeMs, strokes = 0) {
  els.prediction.dataset.latencyMs = ms.toFixed(1);
  els.prediction.dataset.strokes = String(strokes);
  if (computeMs !== undefined) els.prediction.dataset.computeMs = computeMs.toFixed(1);
}

function pct(p) {
  return p >= 0.995 ? `${(p * 100).toFixed(1)}%` : `${Math.round(p * 100)}%`;
}

function setBars(probs, top) {
  els.bars.forEach((bar, d) => {
    const p = probs ? probs[d] : 0;
    bar.dataset.value = p.toFixed(4);
    bar.setAttribute("aria-valuenow", p.toFixed(3));
    bar.setAttribute("aria-valuetext", `${d}: ${Math.round(p * 100)}%`);
    bar.style.setProperty("--p", p.toFixed(4));
    bar.parentElement.classList.toggle("top", probs !== null && d === top);
    els.pcts[d].textContent = probs ? `${Math.round(p * 100)}%` : "";
  });
}

function clearPreview() {
  const ctx = els.preview.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, 28, 28);
  els.preview.dataset.empty = "true";
}

function drawPreview(preview) {
  const ctx = els.preview.getContext("2d");
  ctx.putImageData(greyImage(preview, 28, 28), 0, 0);
  els.preview.dataset.empty = "false";
}

/** A 28x28 canvas showing `pixels` (784 grey values), e.g. a kept example's thumbnail. */
export function digitCanvas(pixels) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 28;
  canvas.getContext("2d").putImageData(greyImage(pixels, 28, 28), 0, 0);
  return canvas;
}

function greyImage(grey, w, h) {
  const img = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = grey[i];
    img.data[4 * i] = v;
    img.data[4 * i + 1] = v;
    img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  return img;
}

// ---- input messages -----------------------------------------------------------------

export function setMessage(text, kind = "info") {
  els.message.textContent = text;
  els.message.dataset.kind = kind;
  els.message.hidden = !text;
}

export function showThumb(grey, width, height) {
  if (!grey) {
    els.thumb.hidden = true;
    return;
  }
  const scale = Math.min(1, 96 / Math.max(width, height));
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext("2d").putImageData(greyImage(grey, width, height), 0, 0);
  els.thumb.width = Math.max(1, Math.round(width * scale));
  els.thumb.height = Math.max(1, Math.round(height * scale));
  const ctx = els.thumb.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(canvas, 0, 0, els.thumb.width, els.thumb.height);
  els.thumb.hidden = false;
}

// ---- gallery ------------------------------------------------------------------------

export function renderGallery({ n, images, labels, preds, conf }, onPick) {
  const frag = document.createDocumentFragment();
  let wrong = 0;
  for (let i = 0; i < n; i++) {
    const ok = labels[i] === preds[i];
    if (!ok) wrong++;
    const li = document.createElement("li");
    li.className = ok ? "ok" : "wrong";
    li.dataset.testid = "gallery-item";
    li.dataset.label = String(labels[i]);
    li.dataset.predicted = String(preds[i]);
    const button = document.createElement("button");
    button.type = "button";
    button.title = "Show this digit's probabilities";
    const canvas = document.createElement("canvas");
    canvas.width = 28;
    canvas.height = 28;
    const pixels = images.subarray(i * 784, (i + 1) * 784);
    canvas.getContext("2d").putImageData(greyImage(pixels, 28, 28), 0, 0);
    canvas.setAttribute("aria-hidden", "true");
    const caption = document.createElement("span");
    caption.className = "caption";
    caption.innerHTML = ok
      ? `<b>${preds[i]}</b> <span class="mark" aria-label="correct">✓</span>`
      : `<b>${preds[i]}</b> <span class="mark" aria-label="wrong">✗</span> <span class="actual">is ${labels[i]}</span>`;
    button.setAttribute(
      "aria-label",
      `Test digit ${labels[i]}, predicted ${preds[i]} (${Math.round(conf[i] * 100)}%)${ok ? "" : ", misclassified"}`,
    );
    button.append(canvas, caption);
    button.addEventListener("click", () => onPick?.(new Uint8Array(pixels)));
    li.append(button);
    frag.append(li);
  }
  els.gallery.replaceChildren(frag);
  els.gallerySummary.textContent =
    wrong === 0
      ? `All ${n} classified correctly.`
      : `${n - wrong} of ${n} right — ✗ marks a mistake and shows the true label.`;
}
