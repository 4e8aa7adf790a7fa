// One IndexedDB object store in its own database (records keyed by an auto-increment `id`),
// shared by the browser-kept stores (model-store.js, examples-store.js): opened once and
// created on first use, one transaction per call, failures turned into the store's own
// one-sentence reasons. Data only: no DOM, no worker.

/** `store` in database `name` (version 1). `reasons` words the failures for the store's
 * panel: {opening(err) -> Error (indexedDB.open threw), notOpened, blocked, refused (a
 * failed request), aborted (a transaction ended without an error, e.g. storage full)}.
 * Returns run(mode, fn): fn(objectStore) -> a request or an array of them, in one "readonly"
 * or "readwrite" transaction; resolves with their results once it completes (an array). */
export function transactions(name, store, reasons) {
  let dbPromise = null;

  function open() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        if (!self.indexedDB) {
          reject(new Error("this browser offers no storage (IndexedDB)"));
          return;
        }
        let req;
        try {
          req = indexedDB.open(name, 1);
        } catch (err) {
          reject(reasons.opening(err));
          return;
        }
        req.onupgradeneeded = () => {
          if (!req.result.objectStoreNames.contains(store)) {
            req.result.createObjectStore(store, { keyPath: "id", autoIncrement: true });
          }
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error || new Error(reasons.notOpened));
        req.onblocked = () => reject(new Error(reasons.blocked));
      });
      dbPromise.catch(() => (dbPromise = null)); // the next call tries again
    }
    return dbPromise;
  }

  return async function run(mode, fn) {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(store, mode); // a throw here rejects the promise
      const reqs = [].concat(fn(tx.objectStore(store)) || []);
      tx.oncomplete = () => resolve(reqs.map((r) => r.result));
      tx.onerror = () => reject(tx.error || new Error(reasons.refused));
      tx.onabort = () => reject(tx.error || new Error(reasons.aborted));
    });
  };
}
