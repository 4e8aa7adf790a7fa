// Trained models kept in the browser (IndexedDB), so they survive a reload.
// Data only: no DOM, no worker. A record: {id, name, date (ISO), accuracy (0..1 or null),
// architecture (text), settings (object), bytes (Uint8Array: the digitnet .npz file)}.
// A model the browser could not store can be kept for this page's life instead
// (`keepForThisPage`): a negative id and `unsaved: true`, listed with the stored ones.
// Other tabs of the site hear every change (`onOtherTabChange`).

const DB_NAME = "digitnet";
const DB_VERSION = 1;
const STORE = "models";
export const NAME_MAX = 80; // characters of a model's name (a long file name must not stretch the page)

let dbPromise = null;
const memory = new Map(); // id (< 0) -> records kept only while this page is open
let nextMemoryId = -1;
const channel = "BroadcastChannel" in self ? new BroadcastChannel("digitnet-models") : null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      if (!self.indexedDB) {
        reject(new Error("this browser offers no storage (IndexedDB)"));
        return;
      }
      let req;
      try {
        req = indexedDB.open(DB_NAME, DB_VERSION);
      } catch (err) {
        reject(new Error(`the browser's storage could not be opened (${err.message})`));
        return;
      }
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) {
          req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
        }
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error || new Error("IndexedDB could not be opened"));
      req.onblocked = () => reject(new Error("IndexedDB is blocked by another tab"));
    });
    dbPromise.catch(() => (dbPromise = null));
  }
  return dbPromise;
}

async function run(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const store = tx.objectStore(STORE);
    let result;
    const req = fn(store);
    if (req) req.onsuccess = () => (result = req.result);
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error || new Error("IndexedDB request failed"));
    tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted (storage full?)"));
  });
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
    stored = (await run("readonly", (s) => s.getAll())) || [];
  } catch (err) {
    if (!memory.size) throw err;
  }
  return [...stored, ...memory.values()]
    .sort((a, b) => (b.date || "").localeCompare(a.date || "") || b.id - a.id);
}

export function get(id) {
  if (id < 0) return Promise.resolve(memory.get(id));
  return run("readonly", (s) => s.get(id));
}

/** Store a new record; resolves with it (with its id). */
export async function add(record) {
  const clean = { ...record, name: cleanName(record.name), date: record.date || new Date().toISOString() };
  delete clean.id;
  const id = await run("readwrite", (s) => s.add(clean));
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
  await run("readwrite", (s) => s.put(record));
  announce({ change: "rename", id, name: record.name });
  return record;
}

export async function remove(id) {
  if (id < 0) {
    memory.delete(id);
    return;
  }
  await run("readwrite", (s) => s.delete(id));
  announce({ change: "remove", id });
}
