// Drawing pad: Pointer Events (mouse, touch, pen), smooth thick strokes, DPR-aware.
//
// Strokes are kept as points normalised to [0, 1] so the pad can be redrawn at any size
// (resize, rotation) and rendered directly at a small size for classification: that
// render is vector-exact, antialiased and tiny (a few KB to the worker).

const PEN = 0.075; // on-screen pen width as a fraction of the pad side: 280 px -> 21 px
// Pen width of the image sent for classification, as a fraction of the drawing's extent
// (the longer side of its bounding box), so a digit drawn small is not sent with strokes
// thick enough to fill its loops: MNIST-like thickness at any drawing size. (10-14% read
// drawn digits equally well; 14% gives each class about the ink mass MNIST digits have.)
export const SEND_PEN = 0.14;
const INK = "#14213d";
const PAPER = "#ffffff";

export class Pad {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onStrokeEnd?: Function, onStrokeStart?: Function}} hooks
   */
  constructor(canvas, hooks = {}) {
    this.canvas = canvas;
    this.hooks = hooks;
    this.ctx = canvas.getContext("2d");
    this.strokes = []; // [[{x, y}, ...], ...] in [0, 1]
    this.current = null;
    this.pointerId = null;
    this.side = 0;
    canvas.style.touchAction = "none";
    canvas.addEventListener("pointerdown", (e) => this._down(e));
    canvas.addEventListener("pointermove", (e) => this._move(e));
    canvas.addEventListener("pointerup", (e) => this._up(e));
    canvas.addEventListener("pointercancel", (e) => this._up(e));
    canvas.addEventListener("lostpointercapture", (e) => this._up(e));
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(() => this._resize()).observe(canvas);
    this._resize();
  }

  isEmpty() {
    return this.strokes.length === 0;
  }

  clear() {
    this.strokes = [];
    this.current = null;
    this.pointerId = null;
    this._redraw();
  }

  /**
   * The drawing re-rendered at size x size pixels, white ink on black (MNIST polarity),
   * scaled to fill the square with a pen of `penFraction` of the drawing's extent
   * (null: as it looks on the pad, at its place, with the on-screen pen).
   * @returns {{pixels: Uint8Array, width: number, height: number}}
   */
  snapshot(size = 112, penFraction = SEND_PEN) {
    if (!this.small || this.small.width !== size) {
      this.small = new OffscreenCanvas(size, size);
      this.smallCtx = this.small.getContext("2d", { willReadFrequently: true });
    }
    const ctx = this.smallCtx;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, size, size);
    if (penFraction === null) paintStrokes(ctx, this.strokes, size, "#fff");
    else paintFitted(ctx, this.strokes, size, penFraction, "#fff");
    const rgba = ctx.getImageData(0, 0, size, size).data;
    const pixels = new Uint8Array(size * size);
    for (let i = 0; i < pixels.length; i++) pixels[i] = rgba[i * 4];
    return { pixels, width: size, height: size };
  }

  _resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width * dpr));
    const h = Math.max(1, Math.round(rect.height * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.side = Math.min(w, h);
    this._redraw();
  }

  _redraw() {
    const { ctx, canvas } = this;
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    paintStrokes(ctx, this.strokes, this.side, INK);
  }

  _point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return {
      x: Math.min(1, Math.max(0, (e.clientX - rect.left) / rect.width)),
      y: Math.min(1, Math.max(0, (e.clientY - rect.top) / rect.height)),
    };
  }

  _down(e) {
    if (this.pointerId !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    this.pointerId = e.pointerId;
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      /* synthetic events may have no capturable pointer */
    }
    this.current = [this._point(e)];
    this.strokes.push(this.current);
    this.hooks.onStrokeStart?.();
    this._paintDot(this.current[0]);
  }

  _move(e) {
    if (e.pointerId !== this.pointerId || !this.current) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) {
      const p = this._point(ev);
      const last = this.current[this.current.length - 1];
      if (Math.hypot(p.x - last.x, p.y - last.y) < 0.002) continue;
      this.current.push(p);
      this._paintSegment(this.current);
    }
  }

  _up(e) {
    if (e.pointerId !== this.pointerId || !this.current) return;
    const endTime = performance.now();
    this.current = null;
    this.pointerId = null;
    this._redraw(); // replace incremental segments by the final smoothed path
    this.hooks.onStrokeEnd?.(endTime);
  }

  _style(ctx, side) {
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    ctx.lineWidth = PEN * side;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  _paintDot(p) {
    const { ctx, side } = this;
    this._style(ctx, side);
    ctx.beginPath();
    ctx.arc(p.x * this.canvas.width, p.y * this.canvas.height, (PEN * side) / 2, 0, Math.PI * 2);
    ctx.fill();
  }

  // Incremental: the newest quadratic piece between the midpoints around the last point.
  _paintSegment(pts) {
    const { ctx, side } = this;
    const n = pts.length;
    const W = this.canvas.width;
    const H = this.canvas.height;
    this._style(ctx, side);
    ctx.beginPath();
    const a = pts[n - 3] || pts[n - 2];
    const b = pts[n - 2];
    const c = pts[n - 1];
    ctx.moveTo(((a.x + b.x) / 2) * W, ((a.y + b.y) / 2) * H);
    ctx.quadraticCurveTo(b.x * W, b.y * H, ((b.x + c.x) / 2) * W, ((b.y + c.y) / 2) * H);
    ctx.lineTo(c.x * W, c.y * H);
    ctx.stroke();
  }
}

/** Paint strokes (normalised points) as smoothed thick lines on a square of `side` px. */
export function paintStrokes(ctx, strokes, side, color) {
  const W = ctx.canvas.width;
  const H = ctx.canvas.height;
  paintPaths(ctx, strokes, (p) => [p.x * W, p.y * H], PEN * side, color);
}

/**
 * Paint strokes scaled and centred to fill a size x size canvas, with a pen of
 * `penFraction` of the drawing's extent (its bounding box's longer side).
 */
export function paintFitted(ctx, strokes, size, penFraction, color) {
  const pts = strokes.flat();
  if (!pts.length) return;
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const extent = Math.max(x1 - x0, y1 - y0, 0.01); // a dot still gets a finite scale
  const scale = (0.9 * size) / (extent * (1 + penFraction)); // the pen's ends fit too
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const at = (p) => [(p.x - cx) * scale + size / 2, (p.y - cy) * scale + size / 2];
  paintPaths(ctx, strokes, at, penFraction * extent * scale, color);
}

// Smoothed round-capped strokes: quadratic pieces through the midpoints between points.
function paintPaths(ctx, strokes, at, width, color) {
  ctx.save();
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const pts of strokes) {
    if (pts.length === 1) {
      const [x, y] = at(pts[0]);
      ctx.beginPath();
      ctx.arc(x, y, width / 2, 0, Math.PI * 2);
      ctx.fill();
      continue;
    }
    ctx.beginPath();
    ctx.moveTo(...at(pts[0]));
    for (let i = 1; i < pts.length - 1; i++) {
      const [px, py] = at(pts[i]);
      const [mx, my] = at({ x: (pts[i].x + pts[i + 1].x) / 2, y: (pts[i].y + pts[i + 1].y) / 2 });
      ctx.quadraticCurveTo(px, py, mx, my);
    }
    ctx.lineTo(...at(pts[pts.length - 1]));
    ctx.stroke();
  }
  ctx.restore();
}
