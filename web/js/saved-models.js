// "Your models": trained and imported models kept in this browser (model-store.js), each
// usable on the pad, renamable, exportable (.npz) and deletable; importing a model file;
// the line saying which model the pad uses. Switching goes through pad-model.js. Changes
// made in another tab show up here too.
import * as store from "./model-store.js";
import * as padModel from "./pad-model.js";

const $ = (sel) => document.querySelector(sel);

let els = null;
let client = null;
let hooks = {};
let listSeq = 0; // the newest list rendering (an older one finishing later is dropped)

/** hooks.onListChanged(): the kept models changed (the pad's selector lists them too). */
export function init(options = {}) {
  hooks = options;
  els = {
    usePretrained: $('[data-testid="use-pretrained"]'),
    current: $('[data-testid="current-model"]'),
    list: $('[data-testid="model-list"]'),
    empty: $("#models-empty"),
    importInput: $('[data-testid="import"]'),
    message: $("#models-message"),
  };
  els.usePretrained.addEventListener("click", () => use(
    { kind: "pretrained", name: padModel.preferredPretrained() },
    "The pad uses the pretrained model again.", "Could not switch"));
  els.importInput.addEventListener("change", () => {
    const file = els.importInput.files && els.importInput.files[0];
    els.importInput.value = "";
    if (file) importFile(file);
  });
  padModel.onChange(renderCurrent);
  store.onOtherTabChange(otherTabChanged);
  renderList();
}

/** The worker is ready: imports can be checked. */
export function enable(workerClient) {
  client = workerClient;
  renderCurrent();
}

export function message(text, kind = "info") {
  els.message.textContent = text;
  els.message.dataset.kind = kind;
  els.message.hidden = !text;
}

/**
 * Make `choice` the pad's model (see pad-model.switchTo) and say so; `done` is said once it
 * is in use (not when a newer choice replaced it), `what` prefixes a failure.
 */
export async function use(choice, done, what) {
  try {
    if (await padModel.switchTo(choice)) message(done);
  } catch (err) {
    message(`${what}: ${err.message}`, "error");
  }
}

/** Keep a newly trained model: {name, accuracy, architecture, settings, bytes}. Resolves
 * with the stored record, or (storage failed, said so) one kept until the page closes
 * (`unsaved: true`), listed and choosable like the others. */
export async function keep(record) {
  let kept;
  try {
    kept = await store.add(record);
  } catch (err) {
    kept = store.keepForThisPage(record);
    message(`“${kept.name}” could not be saved in the browser (${err.message}), so it is in ` +
      "Your models only until this page is closed.", "error");
  }
  await renderList();
  return kept;
}

/** Another tab added, renamed or deleted a kept model: list what is stored now; a model
 * deleted there while the pad uses it here is replaced by the pretrained one, as here. */
async function otherTabChanged({ change, id, name } = {}) {
  const current = padModel.currentModel();
  const inUse = current?.kind === "stored" && current.id === id;
  if (change === "rename") padModel.renamed(id, name);
  if (change === "remove" && inUse) {
    await use({ kind: "pretrained", name: padModel.preferredPretrained() },
      `“${current.name}” was deleted in another tab; the pad is back on the pretrained model.`,
      `“${current.name}” was deleted in another tab, but the pad could not switch`);
  }
  await renderList();
}

function renderCurrent() {
  const current = padModel.currentModel();
  if (!current) return;
  els.current.textContent = padModel.labelOf(current);
  els.current.dataset.kind = current.kind;
  els.usePretrained.disabled = !client || current.kind === "pretrained";
  for (const li of els.list.children) {
    const on = current.kind === "stored" && Number(li.dataset.id) === current.id;
    li.classList.toggle("current", on);
    if (on) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
  }
}

function fileName(name) {
  return `digitnet-${name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").toLowerCase() || "model"}.npz`;
}

function download(record) {
  const url = URL.createObjectURL(new Blob([record.bytes], { type: "application/octet-stream" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName(record.name);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function renderList() {
  const seq = ++listSeq;
  let records;
  try {
    records = await store.list();
  } catch (err) {
    if (seq === listSeq) message(`Saved models are unavailable: ${err.message}`, "error");
    return;
  }
  if (seq !== listSeq) return;
  els.empty.hidden = records.length > 0;
  const frag = document.createDocumentFragment();
  for (const r of records) frag.append(listItem(r));
  els.list.replaceChildren(frag);
  renderCurrent();
  hooks.onListChanged?.();
}

function listItem(r) {
  const li = document.createElement("li");
  li.dataset.testid = "saved-model";
  li.dataset.id = String(r.id);
  if (r.unsaved) li.dataset.unsaved = "true";
  const name = document.createElement("span");
  name.className = "model-name";
  name.textContent = r.name;
  const meta = document.createElement("span");
  meta.className = "muted model-meta";
  const acc = typeof r.accuracy === "number" ? `${(r.accuracy * 100).toFixed(1)}% test accuracy · ` : "";
  const unsaved = r.unsaved ? "not saved: kept until this page is closed · " : "";
  meta.textContent = `${unsaved}${acc}${r.architecture || ""} · ${new Date(r.date).toLocaleString("en")}`;
  const actions = document.createElement("span");
  actions.className = "model-actions";
  const button = (label, action, onClick) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "button small secondary";
    b.textContent = label;
    b.dataset.action = action;
    b.setAttribute("aria-label", `${label} ${r.name}`);
    b.addEventListener("click", onClick);
    actions.append(b);
  };
  button("Use", "use", () => use({ kind: "stored", ...r }, `The pad now uses “${r.name}”.`, `Could not use “${r.name}”`));
  button("Rename", "rename", () => startRename(li, r));
  button("Export", "export", () => download(r));
  button("Delete", "delete", () => remove(r));
  li.append(name, meta, actions);
  return li;
}

async function remove(r) {
  try {
    await store.remove(r.id);
  } catch (err) {
    message(`Could not delete “${r.name}”: ${err.message}`, "error");
    return;
  }
  const current = padModel.currentModel();
  if (current?.kind === "stored" && current.id === r.id) {
    await use({ kind: "pretrained", name: padModel.preferredPretrained() },
      `Deleted “${r.name}”; the pad is back on the pretrained model.`, `Deleted “${r.name}”, but could not switch`);
  } else {
    message(`Deleted “${r.name}”.`);
  }
  await renderList();
}

function startRename(li, record) {
  const nameEl = li.querySelector(".model-name");
  const input = document.createElement("input");
  input.type = "text";
  input.value = record.name;
  input.maxLength = store.NAME_MAX;
  input.setAttribute("aria-label", "New name");
  input.dataset.testid = "rename-input";
  nameEl.replaceWith(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const name = input.value.trim();
    if (save && name && name !== record.name) {
      try {
        const renamed = await store.rename(record.id, name);
        padModel.renamed(record.id, renamed.name);
      } catch (err) {
        message(`Could not rename: ${err.message}`, "error");
      }
    }
    await renderList();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    else if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

async function importFile(file) {
  const shown = store.cleanName(file.name); // a long file name must not stretch the page
  message(`Checking ${shown}…`);
  let bytes;
  try {
    bytes = new Uint8Array(await file.arrayBuffer());
  } catch {
    message(`Could not read ${shown}. Nothing was changed.`, "error");
    return;
  }
  let checked;
  try {
    const copy = bytes.slice();
    checked = await client.request("checkModel", { bytes: copy }, [copy.buffer]);
  } catch (err) {
    message(`${shown} is not a usable digitnet model: ${err.message}. Nothing was changed.`, "error");
    return;
  }
  const name = store.cleanName(file.name.replace(/\.npz$/i, "")) || "imported model";
  let record = { name, accuracy: checked.accuracy, architecture: checked.architecture, settings: null, bytes };
  let notSaved = "";
  try {
    record = await store.add(record);
  } catch (err) {
    record = store.keepForThisPage(record);
    notSaved = ` It could not be saved in the browser (${err.message}), so it is in Your models only ` +
      "until this page is closed.";
  }
  await renderList();
  const score = `${(checked.accuracy * 100).toFixed(1)}% on the test digits`;
  if (checked.poor) {
    // A model this weak would silently make the pad's answers worse: the person chooses it.
    message(`Kept “${record.name}” in Your models but not used on the pad, because it scored only ` +
      `${score}; choose “Use” to try it anyway.${notSaved}`, "warning");
    return;
  }
  await use({ kind: "stored", ...record }, `Imported ${shown} (${score}); the pad now uses it.${notSaved}`,
    `Could not use ${shown}`);
}
