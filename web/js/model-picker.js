// The selector by the pad: the pretrained models the site ships and the models kept in
// this browser. Choosing one asks pad-model.js to switch; the selector shows whatever
// the pad settles on (pad-model.js owns the choice and remembers it).
import * as store from "./model-store.js";
import * as padModel from "./pad-model.js";

const LABELS = { mlp: "Pretrained MLP", cnn: "Pretrained CNN (convolutional)" };

let els = null;
let refreshSeq = 0; // the newest refresh (an older one finishing later is dropped)

export function init() {
  els = {
    select: document.querySelector('[data-testid="model-select"]'),
    status: document.querySelector("#pad-model-status"),
  };
  els.select.addEventListener("change", () => choose(els.select.value));
  // The kept models change as the training panel trains, imports and deletes.
  const refreshSoon = () => refresh().catch(() => {});
  els.select.addEventListener("pointerdown", refreshSoon);
  els.select.addEventListener("focus", refreshSoon);
  padModel.onChange(() => {
    els.select.value = padModel.keyOf(padModel.shownChoice());
    refreshSoon();
  });
  padModel.onStatus((text, kind) => {
    els.status.textContent = text;
    els.status.dataset.kind = kind;
  });
}

/** The shipped pretrained models are known (build-manifest.json): list them. */
export function showPretrained() {
  const options = padModel.pretrainedNames().map((name) => {
    const o = document.createElement("option");
    o.value = `pretrained:${name}`;
    o.textContent = LABELS[name] || `Pretrained ${name.toUpperCase()}`;
    return o;
  });
  els.select.querySelectorAll(":scope > option").forEach((o) => o.remove());
  els.select.prepend(...options);
  // At start-up: the remembered choice, which the pad switches to once the worker is ready.
  els.select.value = padModel.keyOf(padModel.shownChoice());
}

/** The worker is ready: the selector can be used. */
export function enable() {
  els.select.disabled = false;
  refresh().catch(() => {});
}

function choose(value) {
  const [kind, key] = value.split(":");
  const choice = kind === "pretrained" ? { kind, name: key } : { kind, id: Number(key) };
  padModel.switchTo(choice).catch(() => {}); // a failure is shown by the status line
}

/** Rebuild the "Your models" group from the store and show the pad's current model. */
export async function refresh() {
  const seq = ++refreshSeq;
  let records = [];
  try {
    records = await store.list();
  } catch {
    records = []; // no IndexedDB: pretrained models only
  }
  if (seq !== refreshSeq) return;
  const current = padModel.currentModel();
  if (!current) return;
  const options = records.map((r) => {
    const o = document.createElement("option");
    o.value = `stored:${r.id}`;
    const acc = typeof r.accuracy === "number" ? ` (${(r.accuracy * 100).toFixed(1)}%)` : "";
    o.textContent = `${r.name}${acc}`;
    return o;
  });
  if (current.kind === "stored" && !records.some((r) => r.id === current.id)) {
    // No longer listed (deleted a moment ago): shown for as long as it is in use.
    const o = document.createElement("option");
    o.value = padModel.keyOf(current);
    o.textContent = current.name;
    options.push(o);
  }
  let group = els.select.querySelector("optgroup");
  if (!options.length) {
    group?.remove();
  } else {
    if (!group) {
      group = document.createElement("optgroup");
      group.label = "Your models";
      els.select.append(group);
    }
    group.replaceChildren(...options);
  }
  els.select.value = padModel.keyOf(padModel.shownChoice());
}
