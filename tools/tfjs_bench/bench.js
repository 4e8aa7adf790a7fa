// The TensorFlow.js side of the benchmark: digitnet's tutorial MLP (784-256-128-10,
// LeakyReLU 0.2, softmax cross-entropy; SGD, batch 256) trained on the same 8,000 digits,
// from the same initial weights, on TF.js's WebAssembly backend.
//
// tools/bench_tfjs.py serves this page with the digits (data/meta.json + data/digits.bin)
// and calls window.tfjsBench.run(options) once per page load (the thread count is fixed
// when the backend starts). Three ways to train, each timed per epoch after a warm-up:
//   fit       what a TF.js user writes: tf.sequential + model.fit
//   minimize  optimizer.minimize on a loss of tf ops (TF.js's autodiff)
//   manual    hand-written forward/backward with tf.matMul in tf.tidy, products laid out
//             so that none is transposed inside the matMul kernel
//   cnn_fit   the tutorial CNN with model.fit (its error if the backend cannot train it)
"use strict";

const BATCH = 256;
const LEAK = 0.2;
const LR_SUM = 1e-3;             // digitnet's tutorial: lr 1e-3 on the batch-summed gradient
const LR_MEAN = LR_SUM * BATCH;  // the same step on the mean gradient (model.fit's loss)
const WARMUP_BATCHES = 3;

async function loadDigits() {
  const meta = await (await fetch("data/meta.json")).json();
  const buf = await (await fetch("data/digits.bin")).arrayBuffer();
  const a = {};
  for (const { name, dtype, shape, offset } of meta.arrays) {
    const n = shape.reduce((p, q) => p * q, 1);
    const Typed = dtype === "float32" ? Float32Array : Int32Array;
    a[name] = { values: new Typed(buf, offset, n), shape, dtype };
  }
  const t = (arr) => tf.tensor(arr.values, arr.shape, arr.dtype);
  return {
    xTrain: t(a.x_train), yTrain: t(a.y_train), xTest: t(a.x_test), yTest: t(a.y_test),
    weights: meta.weights.map((name) => tf.tensor(a[name].values, a[name].shape)),
  };
}

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function permutation(n, random) {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1],
           runs: s.length };
}

function accuracy(predictLogits, d) {
  return tf.tidy(() => {
    const hit = tf.equal(tf.argMax(predictLogits(d.xTest), 1), d.yTest.toInt());
    return hit.sum().dataSync()[0] / d.yTest.shape[0];
  });
}

// ---------------------------------------------------------------- model.fit

function mlpModel() {
  return tf.sequential({ layers: [
    tf.layers.dense({ units: 256, inputShape: [784] }), tf.layers.leakyReLU({ alpha: LEAK }),
    tf.layers.dense({ units: 128 }), tf.layers.leakyReLU({ alpha: LEAK }),
    tf.layers.dense({ units: 10, activation: "softmax" }),
  ] });
}

// digitnet's tutorial CNN in Keras terms (channels last; TF.js's own initial weights).
function cnnModel() {
  const conv = (filters, extra) => tf.layers.conv2d({ filters, kernelSize: 5, padding: "same",
                                                     activation: "relu", ...extra });
  return tf.sequential({ layers: [
    tf.layers.reshape({ targetShape: [28, 28, 1], inputShape: [784] }),
    conv(16), tf.layers.maxPooling2d({ poolSize: 2 }), conv(32), tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(), tf.layers.dense({ units: 128, activation: "relu" }),
    tf.layers.dense({ units: 10, activation: "softmax" }),
  ] });
}

// model.fit as a TF.js user writes it; the MLP starts from digitnet's initial weights.
async function trainFit(d, epochs, isCnn) {
  const model = isCnn ? cnnModel() : mlpModel();
  model.compile({ optimizer: tf.train.sgd(LR_MEAN), loss: "categoricalCrossentropy" });
  const initial = isCnn ? model.getWeights().map((w) => w.clone()) : d.weights;
  const yOneHot = tf.oneHot(d.yTrain, 10).toFloat();
  const warm = WARMUP_BATCHES * BATCH;
  const [xw, yw] = [d.xTrain.slice(0, warm), yOneHot.slice(0, warm)];
  try {
    await model.fit(xw, yw, { batchSize: BATCH, epochs: 1, shuffle: true, verbose: 0 });
    model.setWeights(initial);  // the warm-up's steps do not count
    const seconds = [];
    let t0 = 0;
    await model.fit(d.xTrain, yOneHot, {
      batchSize: BATCH, epochs, shuffle: true, verbose: 0,
      callbacks: { onEpochBegin: async () => { t0 = performance.now(); },
                   onEpochEnd: async () => { seconds.push((performance.now() - t0) / 1000); } },
    });
    return { seconds, acc: accuracy((x) => model.predict(x), d) };
  } finally {
    tf.dispose([xw, yw, yOneHot, ...(isCnn ? initial : [])]);
    model.optimizer.dispose();
    model.dispose();
  }
}

// ---------------------------------------------------------------- loops of tf ops

function makeVariables(d) {
  return d.weights.map((w) => tf.variable(w));  // a variable's assign leaves w as it is
}

function forward(v, x) {
  const [w1, b1, w2, b2, w3, b3] = v;
  const h1 = tf.leakyRelu(tf.add(tf.matMul(x, w1), b1), LEAK);
  const h2 = tf.leakyRelu(tf.add(tf.matMul(h1, w2), b2), LEAK);
  return tf.add(tf.matMul(h2, w3), b3);
}

// One SGD step of the summed softmax cross-entropy via TF.js's autodiff.
function minimizeStep(optimizer, v) {
  return (xb, yb) => optimizer.minimize(
    () => tf.losses.softmaxCrossEntropy(yb, forward(v, xb), undefined, 0, tf.Reduction.SUM),
    false, v);
}

// One SGD step by hand: dlogits = softmax - onehot (summed loss), then each layer's
// dW = x^T dz, db = sum(dz), dx = dz W^T, with the transposes done as their own op.
function manualStep(v) {
  const [w1, b1, w2, b2, w3, b3] = v;
  return (xb, yb) => tf.tidy(() => {
    const a1 = tf.add(tf.matMul(xb, w1), b1);
    const h1 = tf.leakyRelu(a1, LEAK);
    const a2 = tf.add(tf.matMul(h1, w2), b2);
    const h2 = tf.leakyRelu(a2, LEAK);
    const dz3 = tf.sub(tf.softmax(tf.add(tf.matMul(h2, w3), b3)), yb);
    const dz2 = tf.mul(tf.matMul(dz3, tf.transpose(w3)), tf.step(a2, LEAK));
    const dz1 = tf.mul(tf.matMul(dz2, tf.transpose(w2)), tf.step(a1, LEAK));
    const grads = [
      tf.matMul(tf.transpose(xb), dz1), tf.sum(dz1, 0),
      tf.matMul(tf.transpose(h1), dz2), tf.sum(dz2, 0),
      tf.matMul(tf.transpose(h2), dz3), tf.sum(dz3, 0),
    ];
    v.forEach((p, i) => p.assign(tf.sub(p, tf.mul(LR_SUM, grads[i]))));
  });
}

function runEpoch(step, d, order, batches) {
  const n = order.length;
  for (let i = 0, b = 0; i < n && b < batches; i += BATCH, b++) {
    tf.tidy(() => {
      const idx = tf.tensor1d(order.subarray(i, Math.min(i + BATCH, n)), "int32");
      step(tf.gather(d.xTrain, idx), tf.oneHot(tf.gather(d.yTrain, idx), 10).toFloat());
    });
  }
}

async function trainLoop(kind, d, epochs, seed) {
  const v = makeVariables(d);
  const optimizer = tf.train.sgd(LR_SUM);
  const step = kind === "manual" ? manualStep(v) : minimizeStep(optimizer, v);
  const n = d.xTrain.shape[0];
  const random = mulberry32(seed);
  runEpoch(step, d, permutation(n, random), WARMUP_BATCHES);
  v.forEach((p, i) => p.assign(d.weights[i]));  // the warm-up's steps do not count
  const seconds = [];
  for (let e = 0; e < epochs; e++) {
    const t0 = performance.now();
    runEpoch(step, d, permutation(n, random), Infinity);
    await v[0].data();  // every step has run
    seconds.push((performance.now() - t0) / 1000);
  }
  const acc = accuracy((x) => forward(v, x), d);
  tf.dispose(v);
  optimizer.dispose();
  return { seconds, acc };
}

// ---------------------------------------------------------------- entry point

let started = false;

// threads: a count, or "all" = navigator.hardwareConcurrency. TF.js 4.22 caps its pool at
// half the reported cores (for hyper-threading); a count above that cap is reached by
// reporting twice the count as the core count to TF.js (cap_lifted in the results).
async function run({ threads = 1, variants = ["fit", "minimize", "manual"], epochs = 1, seed = 0 } = {}) {
  if (started) throw new Error("tfjsBench.run runs once per page load (the thread count is fixed then)");
  started = true;
  const cores = navigator.hardwareConcurrency;
  const wanted = threads === "all" ? cores : threads;
  const capLifted = wanted > Math.max(1, Math.floor(cores / 2));
  if (capLifted) Object.defineProperty(navigator, "hardwareConcurrency", { value: 2 * wanted, configurable: true });
  tf.wasm.setWasmPaths("/tfjs-backend-wasm/");
  tf.wasm.setThreadsCount(wanted);
  if (!(await tf.setBackend("wasm"))) throw new Error("TF.js could not start its wasm backend");
  await tf.ready();
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const multithread = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
  const out = {
    tfjs: tf.version.tfjs, backend: tf.getBackend(), threads: tf.wasm.getThreadsCount(),
    simd, multithread,
    binary: simd && multithread ? "tfjs-backend-wasm-threaded-simd.wasm"
      : simd ? "tfjs-backend-wasm-simd.wasm" : "tfjs-backend-wasm.wasm",
    hardware_concurrency: cores, threads_requested: wanted, cap_lifted: capLifted,
    cross_origin_isolated: self.crossOriginIsolated, results: {},
  };
  const d = await loadDigits();
  const n = d.xTrain.shape[0];
  for (const kind of variants) {
    const before = tf.memory().numTensors;
    let r;
    try {
      r = kind === "fit" || kind === "cnn_fit" ? await trainFit(d, epochs, kind === "cnn_fit")
        : await trainLoop(kind, d, epochs, seed);
    } catch (e) {
      if (kind !== "cnn_fit") throw e;
      out.cannot_train = { ...out.cannot_train, [kind]: String(e.message || e) };  // e.g. a missing kernel
      continue;
    }
    out.results[kind] = {
      examples: n, epochs, batch_size: BATCH, epoch_s: r.seconds,
      examples_per_s: summary(r.seconds.map((s) => n / s)), test_accuracy: r.acc,
      leaked_tensors: tf.memory().numTensors - before,
    };
  }
  tf.dispose([d.xTrain, d.yTrain, d.xTest, d.yTest, ...d.weights]);
  return out;
}

window.tfjsBench = { run };
