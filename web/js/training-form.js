// The training form: model, recipe and its settings, with inline validation. The choices,
// each recipe's settings and the limits come from the build manifest's `recipes` (the
// same definitions the CLI uses); nothing about them is written here.

import { affordableWorkers, MAX_WORKERS } from "./training-pool.js";

const $ = (sel) => document.querySelector(sel);

let form = null;
let spec = null; // build-manifest.json's `recipes`
let checks = {}; // field name -> (text) -> message or null
let hooks = {};

/** Readable name of a recipe: "default" is what the site ships. */
function recipeLabel(name) {
  if (name === "default") return "Default (what this site ships)";
  return name.charAt(0).toUpperCase() + name.slice(1);
}

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

/** Offer exactly `names` in `select`: the page's own options (their order and wording)
 * for the names it knows, then the others by name; the first one is chosen. */
function offer(select, names) {
  const known = [...select.options].filter((o) => names.includes(o.value));
  const added = names.filter((n) => !known.some((o) => o.value === n)).map((n) => option(n, n.toUpperCase()));
  select.replaceChildren(...known, ...added);
  select.selectedIndex = 0;
}

function optionText(select, value) {
  return [...select.options].find((o) => o.value === value)?.textContent || value;
}

/** hooks.onValidity(ok) after every check. */
export function init(options = {}) {
  hooks = options;
  form = $("#train-form");
  offerWorkers(affordableWorkers());
}

/** The worker-count choices: 1 up to this device's cores (at most MAX_WORKERS), `chosen`
 * selected (what the device can afford, unless a worker failed). */
function offerWorkers(chosen) {
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  const most = Math.max(chosen, Math.min(MAX_WORKERS, cores));
  const select = form.elements.workers;
  select.replaceChildren(...Array.from({ length: most }, (_, i) => option(String(i + 1), String(i + 1))));
  select.value = String(chosen);
  $("#t-workers-note").textContent = `This device has ${cores} core${cores === 1 ? "" : "s"}; ` +
    `${chosen} worker${chosen === 1 ? "" : "s"} suggested.`;
}

/** After a worker failed: offer only `n` workers. */
export function limitWorkers(n) {
  offerWorkers(n);
  $("#t-workers-note").textContent = "A training worker failed, so training uses one from now on.";
}

/** How many training workers to use. */
export function workers() {
  return Number(form.elements.workers.value) || 1;
}

/** The manifest's training spec arrived: build the choices and the checks, fill defaults. */
export function configure(trainingSpec) {
  spec = trainingSpec;
  const f = form.elements;
  offer(f.model, spec.models);
  offer(f.optimizer, spec.optimizers);
  checks = makeChecks(spec.limits, spec.train_size);
  fillRecipeChoices();
  f.model.addEventListener("change", fillRecipeChoices);
  f.recipe.addEventListener("change", fillRecipe);
  form.addEventListener("input", validate);
}

/** Say the form cannot be used (the manifest could not be read). */
export function unavailable(message) {
  $("#t-epochs-error").textContent = `The training settings could not be loaded: ${message}.`;
  hooks.onValidity?.(false);
}

function makeChecks(limits, trainSize) {
  const whole = (text) => /^\s*\d+\s*$/.test(text);
  const e = limits.epochs;
  const bMin = limits.batch_size.min;
  const lr = limits.lr;
  return {
    epochs: (text) => (whole(text) && Number(text) >= e.min && Number(text) <= e.max
      ? null : `Enter a whole number of epochs from ${e.min} to ${e.max}.`),
    batch_size: (text) => (whole(text) && Number(text) >= bMin && Number(text) <= trainSize
      ? null : `Enter a whole batch size from ${bMin} to ${trainSize.toLocaleString("en")} (the training set).`),
    lr: (text) => {
      const v = Number(text);
      if (text.trim() === "" || !Number.isFinite(v)) return "Enter a number, e.g. 0.001.";
      if (v <= lr.min_exclusive) return `The learning rate must be greater than ${lr.min_exclusive}.`;
      if (v > lr.max) return `A learning rate above ${lr.max} is too large to train.`;
      return null;
    },
  };
}

function fillRecipeChoices() {
  const f = form.elements;
  const recipes = spec.recipes[f.model.value] || {};
  const previous = f.recipe.value;
  f.recipe.replaceChildren(...Object.entries(recipes).map(([name, r]) =>
    option(name, `${recipeLabel(name)}: ${optionText(f.optimizer, r.optimizer)}, ${r.epochs} epochs`)));
  const names = Object.keys(recipes);
  f.recipe.value = names.includes(previous) ? previous : names.includes("default") ? "default" : names[0];
  fillRecipe();
}

function fillRecipe() {
  const f = form.elements;
  const r = spec.recipes[f.model.value][f.recipe.value];
  f.epochs.value = String(r.epochs);
  f.batch_size.value = String(r.batch_size);
  f.lr.value = String(r.lr);
  f.optimizer.value = r.optimizer;
  f.augment.checked = r.augment;
  validate();
}

/** Check every field, show each one's message; true when all are valid. */
export function validate() {
  if (!spec) return false;
  let ok = true;
  for (const [name, check] of Object.entries(checks)) {
    const input = form.elements[name];
    const message = check(input.value);
    $(`#${input.id}-error`).textContent = message || "";
    input.setAttribute("aria-invalid", message ? "true" : "false");
    if (message) ok = false;
  }
  hooks.onValidity?.(ok);
  return ok;
}

/** The settings the worker's `train` request takes. */
export function settings() {
  const f = form.elements;
  return {
    model: f.model.value, recipe: f.recipe.value, epochs: Number(f.epochs.value),
    batch_size: Number(f.batch_size.value), lr: Number(f.lr.value), optimizer: f.optimizer.value,
    augment: f.augment.checked,
  };
}

/** Size of the training split (examples per epoch). */
export function trainSize() {
  return spec.train_size;
}

/** Lock every setting while a run goes (the buttons are the run's business). */
export function lock(on) {
  for (const el of form.elements) if (el.tagName !== "BUTTON") el.disabled = on;
}
