// "Inside the network": draws the first layer's filters (or, for an MLP, the input weights
// of some first-layer units) and the feature maps of the drawn digit on two canvases.
// Page-only: it is handed the data (from the worker, via main.js) and never talks to the
// worker itself. Images arrive as bytes: filters signed (128 = 0), maps unsigned (0 = none).

const $ = (sel) => document.querySelector(sel);
let els = null;
let hooks = {};

export function init(options = {}) {
  hooks = options;
  els = {
    details: $("#inside-details"),
    filters: $('[data-testid="filters"]'),
    filtersCaption: $("#filters-caption"),
    maps: $('[data-testid="feature-maps"]'),
    mapsCaption: $("#maps-caption"),
  };
  els.details.addEventListener("toggle", () => hooks.onToggle?.(els.details.open));
}

/** Is the panel open? Feature maps are only computed (with the prediction) while it is. */
export function isOpen() {
  return Boolean(els && els.details.open);
}

// Diverging colours for weights: blue (negative) - white (0) - red (positive).
function signedColour(v) {
  const t = (v - 128) / 127; // -1..1
  if (t >= 0) return [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t))];
  return [Math.round(255 * (1 + t)), Math.round(255 * (1 + 0.55 * t)), 255];
}

// "Hot" colours for activations: black - red - orange - yellow - white.
function hotColour(v) {
  const t = v / 255;
  return [Math.round(255 * Math.min(1, 3 * t)), Math.round(255 * Math.min(1, Math.max(0, 3 * t - 1))),
    Math.round(255 * Math.min(1, Math.max(0, 3 * t - 2)))];
}

/**
 * Draw n images of h*w bytes as a grid: `scale` device pixels per value, `gap` between.
 * Sets data-n, data-empty="false" for tests and people reading the DOM.
 */
function drawGrid(canvas, { n, h, w, pixels }, { cols, scale, gap = 3, colour }) {
  const rows = Math.ceil(n / cols);
  canvas.width = cols * (w * scale + gap) - gap;
  canvas.height = rows * (h * scale + gap) - gap;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const tile = new ImageData(w, h);
  const small = new OffscreenCanvas(w, h);
  const sctx = small.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < h * w; k++) {
      const [r, g, b] = colour(pixels[i * h * w + k]);
      tile.data[4 * k] = r;
      tile.data[4 * k + 1] = g;
      tile.data[4 * k + 2] = b;
      tile.data[4 * k + 3] = 255;
    }
    sctx.putImageData(tile, 0, 0);
    const x = (i % cols) * (w * scale + gap);
    const y = Math.floor(i / cols) * (h * scale + gap);
    ctx.drawImage(small, x, y, w * scale, h * scale);
  }
  canvas.dataset.n = String(n);
  canvas.dataset.empty = "false";
}

function blank(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.empty = "true";
  canvas.dataset.n = "0";
}

/** The model's first layer: {kind: "cnn"|"mlp", n, h, w, title, pixels}; null = unknown. */
export function renderFilters(info) {
  if (!info) {
    blank(els.filters);
    els.filtersCaption.textContent = "—";
    return;
  }
  const scale = Math.max(2, Math.floor(48 / info.h));
  drawGrid(els.filters, info, { cols: 4, scale, gap: info.h <= 7 ? 4 : 3, colour: signedColour });
  els.filters.dataset.kind = info.kind;
  els.filters.setAttribute("aria-label", info.kind === "cnn"
    ? `The ${info.n} filters of the first convolution` : `Input weights of ${info.n} first-layer units`);
  els.filtersCaption.textContent = info.kind === "cnn"
    ? `The ${info.title}. Each slides over the digit and fires where the image looks like it.`
    : `An MLP has no filters: these are the ${info.title}, each drawn as a 28×28 image.`;
}

/**
 * Feature maps of the digit just classified ({n, h, w, peak, pixels}), or null with the
 * reason shown instead ("mlp": the model has none; "empty": nothing drawn).
 */
export function renderMaps(maps, reason = "empty") {
  if (!maps) {
    blank(els.maps);
    els.maps.width = els.maps.height = 0;
    els.mapsCaption.textContent = reason === "mlp"
      ? "An MLP has no feature maps: every unit sees the whole image at once. Choose the CNN to see them."
      : "Draw a digit to see the feature maps.";
    return;
  }
  drawGrid(els.maps, maps, { cols: 8, scale: 2, gap: 3, colour: hotColour });
  els.maps.dataset.peak = maps.peak.toFixed(3);
  els.mapsCaption.textContent = `Your digit through the first layer: ${maps.n} feature maps of ` +
    `${maps.h}×${maps.w} (after the ReLU; strongest value ${maps.peak.toFixed(2)}).`;
}
