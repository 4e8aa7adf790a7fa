// Trained models kept in the browser (IndexedDB), so they survive a reload.
// Data only: no DOM, no worker. A record: {id, name, date (ISO), accuracy (0..1 or null),
// architecture (text), settings (object), bytes (Uint8Array: the digitnet .npz file)}.
// A model the browser could not store can be kept for this page's life instead
// (`keepForThisPage`): a negative id and `unsaved: true`, listed with the stored ones.
// Other tabs of the site hear every change (`onOtherTabChange`).

import { transactions } from "./idb.js";

export const NAME_MAX = 80; // characters of a model's name (a long file name must not stretch the page)

const run = transactions("digitnet", "models", {
  opening: (err) => new Error(`the browser's storage could not be opened (${err.message})`),
  notOpened: "IndexedDB could not be opened",
  blocked: "IndexedDB is blocked by another tab",
  refused: "IndexedDB request failed",
  aborted: "IndexedDB transaction aborted (storage full?)",
});
const memory = new Map(); // id (< 0) -> records kept only while this page is open
let nextMemoryId = -1;
const channel = "BroadcastChannel" in self ? new BroadcastChannel("digitnet-models") : null;

/** The result of fn(store)'s one request, in one transaction. */
async function one(mode, fn) {
  const [result] = await run(mode, fn);
  return result;
}

/** A name as kept: trimmed, at most NAME_MAX characters (an ellipsis marks a cut). */
export function cleanName(name) {
  const text = String(name ?? "").trim();
  return text.length > NAME_MAX ? `${text.slice(0, NAME_MAX - 1).trimEnd()}…` : text;
}

function announce(change) {
  channel?.postMessage(change);
}

/** fn({change: "add"|"rename"|"remove", id, name}) when another tab changed the stored models. */
export function onOtherTabChange(fn) {
  channel?.addEventListener("message", (e) => fn(e.data));
}

/** All records (stored, then those kept for this page), newest first. Rejects only when
 * the browser's storage fails and nothing is kept for this page either. */
export async function list() {
  let stored = [];
  try {
    stored = (await one("readonly", (s) => s.getAll())) || [];
  } catch (err) {
    if (!memory.size) throw err;
  }
  return [...stored, ...memory.values()]
    .sort((a, b) => (b.date || "").localeCompare(a.date || "") || b.id - a.id);
}

export function get(id) {
  if (id < 0) return Promise.resolve(memory.get(id));
  return one("readonly", (s) => s.get(id));
}

/** Store a new record; resolves with it (with its id). */
export async function add(record) {
  const clean = { ...record, name: cleanName(record.name), date: record.date || new Date().toISOString() };
  delete clean.id;
  const id = await one("readwrite", (s) => s.add(clean));
  announce({ change: "add", id, name: clean.name });
  return { ...clean, id };
}

/** Keep a record the browser could not store until this page closes (other tabs do not see it). */
export function keepForThisPage(record) {
  const kept = { ...record, name: cleanName(record.name), date: record.date || new Date().toISOString(),
    id: nextMemoryId--, unsaved: true };
  memory.set(kept.id, kept);
  return kept;
}

export async function rename(id, name) {
  const record = await get(id);
  if (!record) throw new Error("that model is no longer stored");
  record.name = cleanName(name);
  if (id < 0) return record;
  await one("readwrite", (s) => s.put(record));
  announce({ change: "rename", id, name: record.name });
  return record;
}

export async function remove(id) {
  if (id < 0) {
    memory.delete(id);
    return;
  }
  await one("readwrite", (s) => s.delete(id));
  announce({ change: "remove", id });
}
