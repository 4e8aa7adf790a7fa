// The pad's model selector: the pretrained MLP (loaded at start), the pretrained CNN
// (downloaded the first time it is chosen) and the models kept in this browser. The
// pretrained choice is remembered (localStorage) and restored after a reload; the pad
// always starts on the MLP first so the page is ready as soon as possible.
// Talks to the worker only to switch the pad's model (usePretrained / useModel), like
// the training panel; main.js waits for `settled()` before classifying.
import * as store from "./model-store.js";

const KEY = "digitnet.pretrained"; // "mlp" | "cnn"
const PRETRAINED = { mlp: "MLP", cnn: "CNN" };

let els = null;
let hooks = {};
let client = null;
let current = { kind: "pretrained", name: "mlp" };
let switching = Promise.resolve();
const loaded = new Set(["mlp"]); // pretrained models the worker already has

/** The remembered pretrained model ("mlp" unless the CNN was chosen). */
export function preferred() {
  try {
    const v = localStorage.getItem(KEY);
    return v in PRETRAINED ? v : "mlp";
  } catch {
    return "mlp"; // storage blocked: no memory, still works
  }
}

function remember(name) {
  try {
    localStorage.setItem(KEY, name);
  } catch {
    /* storage blocked */
  }
}

/** Text for "the pad uses …" in the training panel. */
export function label() {
  return `the pretrained ${PRETRAINED[preferred()]}`;
}

export function init(options = {}) {
  hooks = options;
  els = {
    select: document.querySelector('[data-testid="model-select"]'),
    status: document.querySelector("#pad-model-status"),
  };
  els.select.value = `pretrained:${preferred()}`;
  document.documentElement.dataset.padModel = "pretrained:mlp"; // what the worker loads first
  els.select.addEventListener("change", () => choose(els.select.value));
  // The list of kept models changes as the training panel trains and imports.
  const refresh = () => refreshOptions().catch(() => {});
  els.select.addEventListener("pointerdown", refresh);
  els.select.addEventListener("focus", refresh);
}

/** The worker is ready (with the MLP): restore a remembered CNN choice, lazily. */
export function enable(workerClient) {
  client = workerClient;
  els.select.disabled = false;
  refreshOptions().catch(() => {});
  if (preferred() !== "mlp") choose(`pretrained:${preferred()}`);
}

/** Resolves once no model switch is in progress (classifications wait for it). */
export function settled() {
  return switching;
}

function setStatus(text, kind = "info") {
  els.status.textContent = text;
  els.status.dataset.kind = kind;
}

function valueOf(c) {
  return c.kind === "pretrained" ? `pretrained:${c.name}` : `stored:${c.id}`;
}

async function refreshOptions() {
  let records = [];
  try {
    records = await store.list();
  } catch {
    records = []; // no IndexedDB: pretrained models only
  }
  let group = els.select.querySelector("optgroup");
  if (!records.length && current.kind !== "stored") {
    group?.remove();
    return;
  }
  if (!group) {
    group = document.createElement("optgroup");
    group.label = "Your models";
    els.select.append(group);
  }
  const options = records.map((r) => {
    const o = document.createElement("option");
    o.value = `stored:${r.id}`;
    const acc = typeof r.accuracy === "number" ? ` (${(r.accuracy * 100).toFixed(1)}%)` : "";
    o.textContent = `${r.name}${acc}`;
    return o;
  });
  group.replaceChildren(...options);
  els.select.value = valueOf(current);
}

/** Switch the pad's model to `value` ("pretrained:mlp" | "pretrained:cnn" | "stored:<id>"). */
function choose(value) {
  const job = switching.then(() => apply(value));
  switching = job.catch(() => {});
  return job;
}

async function apply(value) {
  const [kind, key] = value.split(":");
  if (valueOf(current) === value && (kind !== "pretrained" || loaded.has(key))) return;
  const root = document.documentElement;
  root.dataset.padModel = "switching";
  try {
    if (kind === "pretrained") {
      setStatus(loaded.has(key) ? "Switching…" : `Loading the pretrained ${PRETRAINED[key]}…`);
      await client.request("usePretrained", { name: key });
      loaded.add(key);
      remember(key);
      current = { kind, name: key };
    } else {
      setStatus("Switching…");
      const record = await store.get(Number(key));
      if (!record) throw new Error("that model is no longer stored");
      const bytes = new Uint8Array(record.bytes).slice();
      await client.request("useModel", { bytes }, [bytes.buffer]);
      current = { kind, id: record.id, name: record.name };
    }
    setStatus("");
    els.select.value = valueOf(current);
    hooks.onChanged?.(current);
  } catch (err) {
    setStatus(`Could not switch: ${err.message}`, "error");
    els.select.value = valueOf(current);
  } finally {
    root.dataset.padModel = valueOf(current);
  }
}

/**
 * The pad's model was switched elsewhere (the training panel): show it here.
 * {kind: "pretrained"} (the preferred one) or {kind: "stored", id, name}.
 */
export async function reflect(c) {
  current = c.kind === "stored" ? { kind: "stored", id: c.id, name: c.name } : { kind: "pretrained", name: preferred() };
  if (current.kind === "pretrained") loaded.add(current.name);
  await refreshOptions().catch(() => {});
  if (current.kind === "stored" && !els.select.querySelector(`option[value="stored:${current.id}"]`)) {
    // Not kept in IndexedDB (storage failed): list it for as long as it is in use.
    const o = document.createElement("option");
    o.value = valueOf(current);
    o.textContent = current.name;
    (els.select.querySelector("optgroup") || els.select).append(o);
  }
  els.select.value = valueOf(current);
  document.documentElement.dataset.padModel = valueOf(current);
}

/** What the pad uses now: {kind, name} or {kind, id, name}. */
export function currentModel() {
  return current;
}
