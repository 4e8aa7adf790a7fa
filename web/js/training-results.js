// A finished run's results: test accuracy, the confusion matrix and the most confident
// mistakes (28x28 thumbnails).
import { digitCanvas } from "./ui.js";

const $ = (sel) => document.querySelector(sel);

function cell(tag, text, scope) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (scope) el.scope = scope;
  return el;
}

export function hide() {
  $("#train-results").hidden = true;
}

/** r: {accuracy, n_test, architecture, confusion (10x10, rows = true digit), mistakes}. */
export function show(r) {
  $("#train-results").hidden = false;
  const acc = $('[data-testid="test-accuracy"]');
  acc.dataset.value = r.accuracy.toFixed(4);
  acc.textContent = `${(r.accuracy * 100).toFixed(2)}%`;
  $("#results-note").textContent = `on ${r.n_test.toLocaleString("en")} held-out test digits · ${r.architecture}`;
  $("#confusion").replaceChildren(confusionTable(r.confusion));
  const frag = document.createDocumentFragment();
  for (const m of r.mistakes) frag.append(mistake(m));
  $("#mistakes").replaceChildren(frag);
  $("#mistakes-title").hidden = r.mistakes.length === 0;
}

function confusionTable(confusion) {
  const table = document.createElement("table");
  table.className = "confusion";
  table.dataset.testid = "confusion";
  const cap = document.createElement("caption");
  cap.textContent = "Confusion matrix: rows are the true digit, columns the prediction";
  const head = document.createElement("tr");
  head.append(cell("th", "true ↓ / predicted →"));
  for (let d = 0; d < 10; d++) head.append(cell("th", String(d), "col"));
  const max = Math.max(1, ...confusion.flatMap((row, i) => row.filter((_, j) => j !== i)));
  table.append(cap, head);
  confusion.forEach((row, i) => {
    const tr = document.createElement("tr");
    tr.append(cell("th", String(i), "row"));
    row.forEach((n, j) => {
      const td = cell("td", String(n));
      if (i === j) td.className = "diag";
      else if (n > 0) td.style.setProperty("--heat", (0.15 + 0.85 * n / max).toFixed(3));
      tr.append(td);
    });
    table.append(tr);
  });
  return table;
}

/** m: {pixels (784 grey values), label, predicted, confidence}. */
function mistake(m) {
  const li = document.createElement("li");
  const canvas = digitCanvas(m.pixels);
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `a ${m.label} taken for a ${m.predicted}`);
  const caption = document.createElement("span");
  caption.textContent = `${m.predicted} (${Math.round(m.confidence * 100)}%), is ${m.label}`;
  li.append(canvas, caption);
  return li;
}
