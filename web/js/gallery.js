// The gallery of bundled test digits and the pad model's accuracy on all of them. Scoring
// every test digit takes the worker seconds for the CNN (and it answers nothing else
// meanwhile), so the gallery is computed only once its card has been on screen for a
// moment (not at start-up, nor when the page merely scrolls past it), and each model's
// result is kept for the page's life: switching back costs nothing.
import * as ui from "./ui.js";
import * as padModel from "./pad-model.js";

const GALLERY_SIZE = 12;
const DWELL_MS = 800; // on screen this long = the user is looking at it

let client = null;
let onPick = () => {};
let inView = false;
let dwell = 0;
let shownFor = null; // keyOf the model the gallery shows
const kept = new Map(); // model key -> {nTest, result, name, kind}

/** onPick(pixels): a gallery digit (28x28 grey bytes, ink = 255) was clicked. */
export function init(options = {}) {
  onPick = options.onPick || onPick;
  const card = document.querySelector(".gallery-card");
  if (!("IntersectionObserver" in window)) {
    inView = true;
    return;
  }
  new IntersectionObserver((entries) => {
    inView = entries[entries.length - 1].isIntersecting;
    clearTimeout(dwell);
    if (inView) dwell = setTimeout(update, DWELL_MS);
  }).observe(card);
}

/** The worker is ready. */
export function enable(workerClient) {
  client = workerClient;
  if (inView) dwell = setTimeout(update, DWELL_MS);
}

/** The pad's model changed: the gallery follows when it is (next) looked at. */
export function modelChanged() {
  if (inView && client) {
    clearTimeout(dwell);
    dwell = setTimeout(update, DWELL_MS);
  }
}

function update() {
  if (!client || !inView) return;
  show().catch((err) => ui.setMessage(`The gallery could not be shown: ${err.message}`, "error"));
}

async function show() {
  await padModel.settled();
  const now = padModel.currentModel();
  const key = padModel.keyOf(now);
  if (key === shownFor) return;
  let entry = kept.get(key);
  if (!entry) {
    const { nTest } = await client.request("loadData");
    const result = await client.request("gallery", { n: GALLERY_SIZE });
    entry = { nTest, result };
    if (now.kind === "pretrained" || now.id != null) kept.set(key, entry); // an unsaved model has no lasting key
  }
  if (padModel.keyOf(padModel.currentModel()) !== key) return; // switched meanwhile: the next look shows it
  shownFor = key;
  ui.renderGallery(entry.result, onPick);
  ui.renderModelAccuracy(1 - entry.result.wrong / entry.nTest, entry.nTest,
    now.kind === "stored" ? now.name : null, now.kind === "pretrained" ? now.name.toUpperCase() : "");
}
