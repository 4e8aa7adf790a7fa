// Trained models kept in the browser (IndexedDB), so they survive a reload.
// Data only: no DOM, no worker. A record: {id, name, date (ISO), accuracy (0..1 or null),
// architecture (text), settings (object), bytes (Uint8Array: the digitnet .npz file)}.

const DB_NAME = "digitnet";
const DB_VERSION = 1;
const STORE = "models";

let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      if (!("indexedDB" in self)) {
        reject(new Error("this browser has no IndexedDB: trained models cannot be kept"));
        return;
      }
      const req = indexedDB.open(DB_NAME, DB_VERSION);
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

/** All records, newest first. */
export async function list() {
  const all = (await run("readonly", (s) => s.getAll())) || [];
  return all.sort((a, b) => (b.date || "").localeCompare(a.date || "") || b.id - a.id);
}

export function get(id) {
  return run("readonly", (s) => s.get(id));
}

/** Store a new record; resolves with it (with its id). */
export async function add(record) {
  const clean = { ...record, date: record.date || new Date().toISOString() };
  delete clean.id;
  const id = await run("readwrite", (s) => s.add(clean));
  return { ...clean, id };
}

export async function rename(id, name) {
  const record = await get(id);
  if (!record) throw new Error("that model is no longer stored");
  record.name = name;
  await run("readwrite", (s) => s.put(record));
  return record;
}

export function remove(id) {
  return run("readwrite", (s) => s.delete(id));
}
