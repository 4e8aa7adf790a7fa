// "Your examples": the digits a person corrected, kept in the browser (IndexedDB), so they
// survive a reload. Data only: no DOM, no worker. A record: {id, label (0-9), pixels
// (Uint8Array(784): the 28x28 input the pad classified, ink = 255), date (ISO)}.
// Its own database, so the models' database (model-store.js) keeps its schema.

import { transactions } from "./idb.js";

const run = transactions("digitnet-examples", "examples", {
  opening: (err) => err,
  notOpened: "the browser's storage could not be opened",
  blocked: "the storage is blocked by another tab",
  refused: "the browser's storage refused the change",
  aborted: "the browser's storage is full",
});

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
