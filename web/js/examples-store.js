// "Your examples": the digits a person corrected, kept in the browser (IndexedDB), so they
// survive a reload. Data only: no DOM, no worker. A record: {id, label (0-9), pixels
// (Uint8Array(784): the 28x28 input the pad classified, ink = 255), date (ISO)}.
// Its own database, so the models' database (model-store.js) keeps its schema.

const DB_NAME = "digitnet-examples";
const DB_VERSION = 1;
const STORE = "examples";

let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      if (!("indexedDB" in self) || !self.indexedDB) {
        reject(new Error("this browser offers no storage (IndexedDB)"));
        return;
      }
      let req;
      try {
        req = indexedDB.open(DB_NAME, DB_VERSION);
      } catch (err) {
        reject(err);
        return;
      }
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) {
          req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
        }
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error || new Error("the browser's storage could not be opened"));
      req.onblocked = () => reject(new Error("the storage is blocked by another tab"));
    });
    dbPromise.catch(() => (dbPromise = null));
  }
  return dbPromise;
}

/** Run fn(store) -> request(s) in one transaction; resolves with the requests' results. */
async function run(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    let tx;
    try {
      tx = db.transaction(STORE, mode);
    } catch (err) {
      reject(err);
      return;
    }
    const reqs = [].concat(fn(tx.objectStore(STORE)) || []);
    tx.oncomplete = () => resolve(reqs.map((r) => r.result));
    tx.onerror = () => reject(tx.error || new Error("the browser's storage refused the change"));
    tx.onabort = () => reject(tx.error || new Error("the browser's storage is full"));
  });
}

/** All examples, oldest first. */
export async function list() {
  const [all] = await run("readonly", (s) => s.getAll());
  return all || [];
}

/** Keep new examples ({label, pixels}); all or none. Resolves with the records (with ids). */
export async function addMany(examples) {
  const date = new Date().toISOString();
  const clean = examples.map(({ label, pixels }) => ({ label, pixels, date }));
  const ids = await run("readwrite", (s) => clean.map((r) => s.add(r)));
  return clean.map((r, i) => ({ ...r, id: ids[i] }));
}

export function remove(id) {
  return run("readwrite", (s) => s.delete(id));
}
