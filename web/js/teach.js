// "Teach it your handwriting": say which digit a drawing really was (teach-0..9), keep it as
// one of "your examples" (IndexedDB, listed with thumbnails, deletable, exportable and
// importable as a digitnet examples .npz), and adapt the pad's model to them in the worker.
// The adapted model is kept like a trained model (model-store.js) and the page's wiring
// (main.js, `onAdapted`) makes it the pad's model. Python never runs here.
import { digitCanvas } from "./ui.js";
import * as examples from "./examples-store.js";

const $ = (sel) => document.querySelector(sel);
const root = document.documentElement;
const WARN_DROP = 0.005; // a test-accuracy drop above half a point is shown as a warning

let els = null;
let hooks = {};
let client = null;
let input = null; // the 28x28 input (ink = 255) of the latest classification, or null
let kept = []; // the examples: stored records, then any kept for this visit only (id < 0)
let nextLocalId = -1;
let busy = false;

/**
 * hooks: sourceName() -> text naming the pad's model ("the pretrained MLP");
 * settled() -> Promise (no model switch in progress); onAdapted(fields) -> Promise of the
 * kept record (id null if the browser could not store it), once the pad uses it.
 */
export function init(options = {}) {
  hooks = options;
  els = {
    digits: Array.from({ length: 10 }, (_, d) => $(`[data-testid="teach-${d}"]`)),
    teachMessage: $('[data-testid="teach-message"]'),
    list: $('[data-testid="examples"]'),
    count: $("#examples-count"),
    adapt: $('[data-testid="adapt"]'),
    exportButton: $('[data-testid="examples-export"]'),
    importInput: $('[data-testid="examples-import"]'),
    message: $('[data-testid="examples-message"]'),
    progress: $("#adapt-progress"),
    progressFill: $("#adapt-progress .progress-fill"),
    result: $('[data-testid="adapt-result"]'),
  };
  els.digits.forEach((b, d) => b.addEventListener("click", () => teach(d)));
  els.adapt.addEventListener("click", () => adapt());
  els.exportButton.addEventListener("click", () => exportExamples());
  els.importInput.addEventListener("change", () => {
    const file = els.importInput.files && els.importInput.files[0];
    els.importInput.value = "";
    if (file) importExamples(file);
  });
  load();
}

/** The worker is ready: adapting, export and import can run. */
export function enable(workerClient) {
  client = workerClient;
  setBusy(false);
}

/** The latest classification's 28x28 input (Uint8Array(784), ink = 255), or null. */
export function setInput(preview) {
  input = preview ? preview.slice() : null;
}

function say(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

function setBusy(on) {
  busy = on;
  els.adapt.disabled = on || !client;
  els.exportButton.disabled = on || !client;
  els.importInput.disabled = on || !client;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const percent = (a) => `${(a * 100).toFixed(1)}%`;

// ---- your examples ---------------------------------------------------------------------------

async function load() {
  try {
    kept = await examples.list();
  } catch (err) {
    kept = [];
    say(els.message, `Your examples cannot be kept in this browser (${err.message}): corrections ` +
      "are used for this visit only.", "error");
  }
  render();
}

/** Keep examples; when the browser cannot store them, keep them for this visit and say so. */
async function keep(newExamples) {
  try {
    const records = await examples.addMany(newExamples);
    kept.push(...records);
    return true;
  } catch (err) {
    kept.push(...newExamples.map((e) => ({ ...e, id: nextLocalId--, date: new Date().toISOString() })));
    return err.message || String(err);
  }
}

async function teach(digit) {
  if (!input) {
    say(els.teachMessage, "Draw a digit first, then tap the digit it really is.", "error");
    return;
  }
  const stored = await keep([{ label: digit, pixels: input.slice() }]);
  render();
  const total = plural(kept.length, "example");
  if (stored === true) {
    say(els.teachMessage, `Kept as ${digit === 8 ? "an" : "a"} ${digit} (${total}). ` +
      "“Adapt to my handwriting” teaches them to the model.");
  } else {
    say(els.teachMessage, `This example could not be kept in the browser (${stored}); it is ` +
      `used for this visit only (${total}).`, "error");
  }
}

function render() {
  const frag = document.createDocumentFragment();
  for (const r of kept) {
    const li = document.createElement("li");
    li.dataset.testid = "example";
    li.dataset.label = String(r.label);
    if (r.id < 0) li.dataset.unsaved = "true";
    const canvas = digitCanvas(r.pixels);
    canvas.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.className = "example-label";
    label.textContent = String(r.label);
    const del = document.createElement("button");
    del.type = "button";
    del.className = "example-delete";
    del.dataset.testid = "example-delete";
    del.textContent = "×";
    del.setAttribute("aria-label", `Delete this example of a ${r.label}`);
    del.addEventListener("click", () => removeExample(r));
    li.append(canvas, label, del);
    frag.append(li);
  }
  els.list.replaceChildren(frag);
  els.count.textContent = kept.length
    ? `${plural(kept.length, "example")} of ${plural(new Set(kept.map((r) => r.label)).size, "digit")}.`
    : "No examples yet: when a prediction is wrong or unsure, tap the digit it really is.";
}

async function removeExample(record) {
  try {
    if (record.id >= 0) await examples.remove(record.id);
  } catch (err) {
    say(els.message, `Could not delete that example: ${err.message}.`, "error");
    return;
  }
  kept = kept.filter((r) => r !== record);
  render();
  say(els.message, `Deleted an example of a ${record.label}.`);
}

/** The examples as the worker takes them: N*784 pixel bytes and N label bytes. */
function packed() {
  const pixels = new Uint8Array(kept.length * 784);
  const labels = new Uint8Array(kept.length);
  kept.forEach((r, i) => {
    pixels.set(r.pixels, i * 784);
    labels[i] = r.label;
  });
  return { pixels, labels };
}

function workerReason(err) {
  // The worker reports Python's last line, "package.module.SomeError: what went wrong".
  return String(err.message || err).replace(/^[\w.]*(Error|Exception): /, "");
}

async function exportExamples() {
  if (!kept.length) {
    say(els.message, "There are no examples to export yet.", "error");
    return;
  }
  try {
    const { pixels, labels } = packed();
    const { bytes } = await client.request("exportExamples", { pixels, labels }, [pixels.buffer, labels.buffer]);
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = "digitnet-examples.npz";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    say(els.message, `Exported ${plural(kept.length, "example")} (digitnet-examples.npz).`);
  } catch (err) {
    say(els.message, `Could not export: ${workerReason(err)}`, "error");
  }
}

async function importExamples(file) {
  let result;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    result = await client.request("importExamples", { bytes }, [bytes.buffer]);
  } catch (err) {
    say(els.message, `${file.name} could not be imported: ${workerReason(err)} Your examples are unchanged.`, "error");
    return;
  }
  const added = Array.from({ length: result.n }, (_, i) => ({
    label: result.labels[i], pixels: result.pixels.slice(i * 784, (i + 1) * 784),
  }));
  const stored = await keep(added);
  render();
  say(els.message, stored === true ? `Imported ${plural(result.n, "example")} from ${file.name}.`
    : `Imported ${plural(result.n, "example")} from ${file.name}, but the browser could not keep ` +
      `them (${stored}): they are used for this visit only.`, stored === true ? "info" : "error");
}

// ---- adapting --------------------------------------------------------------------------------

function setProgress(fraction) {
  const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
  els.progress.setAttribute("aria-valuenow", String(pct));
  els.progressFill.style.width = `${pct}%`;
}

function refusal() {
  if (!kept.length) {
    return "There are no examples yet: draw a digit, tap the digit it really is, then adapt.";
  }
  const digits = new Set(kept.map((r) => r.label));
  if (digits.size < 2) {
    const [d] = digits;
    return `All your examples are ${d}s: add examples of at least one other digit first, or ` +
      `the model would learn to answer only ${d}.`;
  }
  if (root.dataset.state === "training") return "Wait until the training run has finished.";
  return null;
}

async function adapt() {
  if (busy) return;
  const refused = refusal();
  if (refused) {
    say(els.message, refused, "error");
    return;
  }
  setBusy(true);
  root.dataset.state = "training";
  els.result.hidden = true;
  els.progress.hidden = false;
  setProgress(0);
  const n = kept.length;
  let record = null;
  try {
    await hooks.settled?.();
    const source = hooks.sourceName?.() || "the pad's model";
    say(els.message, `Adapting ${source} to ${plural(n, "example")}…`);
    const { pixels, labels } = packed();
    const res = await client.request("adapt", { pixels, labels }, [pixels.buffer, labels.buffer], (msg) => {
      if (msg.phase === "blas") say(els.message, "Loading the fast matrix product (once)…");
      else if (msg.progress !== undefined) {
        setProgress(msg.progress);
        say(els.message, `Adapting ${source}… step ${msg.step} of ${msg.steps}`);
      }
    });
    const r = res.results;
    const name = `Adapted ${source.replace(/^the /, "")} · ${plural(n, "example")}`;
    const fields = { name, accuracy: r.accuracy, architecture: r.architecture,
      settings: { adapted_from: source, examples: n, source_accuracy: r.source_accuracy }, bytes: res.bytes };
    record = await hooks.onAdapted(fields);
    const storeNote = record.unsaved ? " It could not be kept in the browser: it is used for this visit only." : "";
    showResult(r, source, res.trainS);
    say(els.message, `The pad now uses “${name}”.${storeNote}`, storeNote ? "error" : "info");
  } catch (err) {
    say(els.message, `Could not adapt: ${workerReason(err)}${record ? "" : " The pad keeps its model."}`, "error");
  } finally {
    els.progress.hidden = true;
    root.dataset.state = "ready";
    setBusy(false);
  }
}

function showResult(r, source, seconds) {
  const drop = r.source_accuracy - r.accuracy;
  els.result.dataset.accuracy = r.accuracy.toFixed(4);
  els.result.dataset.sourceAccuracy = r.source_accuracy.toFixed(4);
  els.result.dataset.seconds = seconds.toFixed(2);
  els.result.dataset.kind = drop > WARN_DROP ? "warning" : "info";
  els.result.textContent = `Adapted in ${seconds.toFixed(1)} s: ${percent(r.accuracy)} on the ` +
    `${r.n_test.toLocaleString("en")} test digits (${source}: ${percent(r.source_accuracy)}).` +
    (drop > WARN_DROP ? ` Warning: ${(drop * 100).toFixed(1)} points lower — it may now misread ` +
      "some ordinary digits; the selector by the pad switches back." : "");
  els.result.hidden = false;
}
