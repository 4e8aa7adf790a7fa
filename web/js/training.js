// The training panel: the form (training-form.js), a run with live charts
// (training-run.js), its results, and the models kept in this browser (saved-models.js).
// Python never runs here: the worker trains.
import * as form from "./training-form.js";
import * as run from "./training-run.js";
import * as savedModels from "./saved-models.js";

/** hooks.onListChanged(): the kept models changed. */
export function init(hooks = {}) {
  form.init({ onValidity: run.setFormValid });
  run.init();
  savedModels.init({ onListChanged: hooks.onListChanged });
}

/** The build manifest arrived (its `recipes` key drives the form), or could not be read (null, message). */
export function configure(manifest, problem = "") {
  if (manifest && manifest.recipes) form.configure(manifest.recipes);
  else form.unavailable(problem || "the build manifest has no recipes");
}

/** The worker is ready: training, imports and model switching can start. */
export function enable(workerClient) {
  run.enable(workerClient);
  savedModels.enable(workerClient);
}

/** Keep a model made outside the panel (adapted to the person's examples) in "Your models";
 * resolves with the kept record (`unsaved` when the browser could not store it). */
export const keepModel = (record) => savedModels.keep(record);
