// The pad's model: the one owner of which network classifies the pad, and the one way to
// change it. Every switch (the selector, "Use" on a kept model, "use the pretrained
// model", an import, "Use this model" after a run) goes through `switchTo`: switches run one
// at a time, and a request made while another runs replaces any request still waiting,
// so the last choice wins and the ones in between are skipped. Listeners hear only the
// settled result, so the selector, the prediction and the remembered choice agree.
// No DOM beyond <html data-pad-model>; the worker is told through the client.
import * as store from "./model-store.js";

const KEY = "digitnet.pretrained"; // the remembered pretrained model's name
const root = document.documentElement;

let shipped = []; // names of the pretrained models the site ships
let defaultName = ""; // the one the worker loads at start
let client = null;
let enableWorker;
const workerReady = new Promise((resolve) => (enableWorker = resolve));
let current = null; // known once configured
const loaded = new Set(); // pretrained models the worker has already fetched
let waiting = null; // the newest request not started: {choice, resolve, reject}
let heading = null; // the latest choice asked for and not yet settled (the selector shows it)
let draining = null; // Promise while requests are being applied
const changeListeners = new Set();
const statusListeners = new Set();

/** "pretrained:<name>" | "stored:<id>" (a negative id: kept only while this page is open). */
export function keyOf(choice) {
  return choice.kind === "pretrained" ? `pretrained:${choice.name}` : `stored:${choice.id ?? "unsaved"}`;
}

/** Text for "the pad uses …". */
export function labelOf(choice) {
  return choice.kind === "pretrained" ? `the pretrained ${choice.name.toUpperCase()}` : `“${choice.name}”`;
}

/** The shipped models and the one the worker loads first (build-manifest.json). */
export function configure(manifest) {
  shipped = Object.keys(manifest.models || {});
  defaultName = manifest.default_model in (manifest.models || {}) ? manifest.default_model : shipped[0];
  current = { kind: "pretrained", name: defaultName };
  loaded.add(defaultName);
  // A remembered other choice: switched to as soon as the worker is ready.
  const preferred = preferredPretrained();
  if (preferred !== defaultName) heading = { kind: "pretrained", name: preferred };
  root.dataset.padModel = keyOf(current);
  for (const fn of changeListeners) fn(current, { changed: false });
}

/** The remembered pretrained model, or the site's default one. */
export function preferredPretrained() {
  try {
    const name = localStorage.getItem(KEY);
    return shipped.includes(name) ? name : defaultName;
  } catch {
    return defaultName; // storage blocked: no memory, still works
  }
}

function remember(name) {
  try {
    localStorage.setItem(KEY, name);
  } catch {
    /* storage blocked */
  }
}

export function pretrainedNames() {
  return shipped.slice();
}

/** What the pad uses now: {kind: "pretrained", name} or {kind: "stored", id, name, accuracy};
 * null until configure(). */
export function currentModel() {
  return current;
}

/** What the selector shows: the choice the pad is switching to (the user's latest pick, or
 * the remembered one at start-up), else the model in use. */
export function shownChoice() {
  return heading ?? current;
}

/** fn(current, {changed}) after every settled switch (changed: false when no model was
 * loaded: it failed, or the choice was already in use). */
export function onChange(fn) {
  changeListeners.add(fn);
}

/** fn(text, kind) while switching ("" when done). */
export function onStatus(fn) {
  statusListeners.add(fn);
}

function status(text, kind = "info") {
  for (const fn of statusListeners) fn(text, kind);
}

/** The worker is ready (holding the default model): restore a remembered other choice. */
export function enable(workerClient) {
  client = workerClient;
  enableWorker();
  if (heading) switchTo(heading);
}

/** Resolves once no switch is in progress (classifications wait for it). */
export function settled() {
  return draining ? draining.catch(() => {}) : Promise.resolve();
}

/**
 * Make `choice` the pad's model: {kind: "pretrained", name} or {kind: "stored", id, name?,
 * bytes?} (bytes are read from the store when absent). Resolves true once it is the pad's
 * model, false when a newer request replaced it; rejects when it could not be used (the
 * model in use then stays).
 */
export function switchTo(choice) {
  return new Promise((resolve, reject) => {
    waiting?.resolve(false); // replaced before it started
    waiting = { choice, resolve, reject };
    heading = choice;
    root.dataset.padModel = "switching";
    if (!draining) draining = drain().finally(() => (draining = null));
  });
}

/** A kept model was renamed: if the pad uses it, its label follows. */
export function renamed(id, name) {
  if (current?.kind !== "stored" || current.id !== id) return;
  current = { ...current, name };
  for (const fn of changeListeners) fn(current, { changed: false });
}

async function drain() {
  await workerReady;
  let failure = null;
  let applied = false;
  while (waiting) {
    const { choice, resolve, reject } = waiting;
    waiting = null;
    const unsaved = choice.kind === "stored" && choice.id == null;
    if (!unsaved && keyOf(choice) === keyOf(current)) {
      failure = null;
      resolve(true);
      continue;
    }
    try {
      current = await apply(choice);
      applied = true;
      failure = null;
      resolve(!waiting);
    } catch (err) {
      failure = err;
      reject(err);
    }
  }
  heading = null;
  root.dataset.padModel = keyOf(current);
  if (current.kind === "pretrained") remember(current.name);
  status(failure ? `Could not switch: ${failure.message}` : "", failure ? "error" : "info");
  for (const fn of changeListeners) fn(current, { changed: applied });
}

/** Load `choice` into the worker; returns what the pad then uses. */
async function apply(choice) {
  if (choice.kind === "pretrained") {
    if (!shipped.includes(choice.name)) throw new Error(`this site ships no pretrained model “${choice.name}”`);
    status(loaded.has(choice.name) ? "Switching…" : `Loading the pretrained ${choice.name.toUpperCase()}…`);
    await client.request("usePretrained", { name: choice.name });
    loaded.add(choice.name);
    return { kind: "pretrained", name: choice.name };
  }
  status("Switching…");
  let record = choice;
  if (!record.bytes) {
    record = await store.get(choice.id);
    if (!record) throw new Error("that model is no longer stored");
  }
  const bytes = new Uint8Array(record.bytes).slice();
  await client.request("useModel", { bytes }, [bytes.buffer]);
  return { kind: "stored", id: record.id ?? null, name: record.name, accuracy: record.accuracy ?? null };
}
