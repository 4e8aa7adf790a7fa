"""Everything the page's compute worker asks of Python, as one object.

``web/worker.js`` creates one `WorkerAPI` and forwards the page's requests to its methods;
it holds the state between them: the pad's model, the bundled data (loaded on first
need), the last classified digit, the training run, and the backend training uses.
Methods take bytes-like objects, numbers, strings and dicts, and return numpy arrays,
bytes, Python scalars, None, or dicts/lists of those (the worker turns each result into
JavaScript values with one conversion). Errors are exceptions with a one-sentence
message. numpy only; scipy is used for training when it imports.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import backend, data, examples, explain, inkshape
from .finetune import AdaptSession
from .model import Sequential
from .modelcheck import POOR_ACCURACY
from .parallel import Replica
from .preprocess import DIGIT, EMPTY, MIN_SIDE, prepare
from .recipes import get_recipe
from .session import (TrainingSession, check_model, describe, evaluate_model,
                      predict_test_split)
from .train import fit_recipe

GALLERY_MAX = 64
GALLERY_PICK = 7          # the gallery shows each class's 8th test digit (a fixed choice)
GALLERY_MISTAKES = 2      # ... then up to this many of the model's mistakes


_nothing = contextlib.nullcontext


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 bytes (0..255), rounded."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _image(pixels, height, width) -> np.ndarray:
    """height*width uint8 bytes -> (height, width) uint8 array."""
    height, width = int(height), int(width)
    gray = np.frombuffer(bytes(pixels), dtype=np.uint8)
    if gray.size != height * width:
        raise ValueError(f"predict: {gray.size} pixels do not make a {height}x{width} image")
    return gray.reshape(height, width)


class WorkerAPI:
    """The worker's Python side: pad model, data, last input, training run, backend."""

    def __init__(self, dataset: data.Dataset | None = None):
        self.model: Sequential | None = None
        self._data = dataset
        self.last_input: np.ndarray | None = None   # (28, 28) float32, the last classified digit
        self.session: TrainingSession | AdaptSession | None = None  # training or adapting
        self.replica: Replica | None = None         # this worker's share of a training run
        self.train_backend: str | None = None       # "sgemm" once enabled, else the default

    # ---------------------------------------------------------------- model

    def use_model(self, blob) -> str:
        """Make these model-file bytes the pad's model; returns its short description.
        Bad bytes raise ModelFileError and the current model stays."""
        self.model = check_model(bytes(blob))
        return describe(self.model)

    def check_model(self, blob) -> dict:
        """{architecture, accuracy on the test digits, poor: below POOR_ACCURACY} of model
        bytes, without using them. A poor model can be kept, but should not silently become
        the pad's model."""
        model = check_model(bytes(blob))
        result = evaluate_model(model, self.data, n_mistakes=0)
        return {"architecture": result["architecture"], "accuracy": result["accuracy"],
                "poor": result["accuracy"] < POOR_ACCURACY}

    def _require_model(self) -> Sequential:
        if self.model is None:
            raise RuntimeError("no model is loaded yet")
        return self.model

    # ---------------------------------------------------------------- data

    @property
    def data(self) -> data.Dataset:
        if self._data is None:
            self._data = data.load_bundle()
        return self._data

    def load_data(self) -> int:
        """Load the bundled digits (once); returns the number of test digits."""
        return len(self.data.y_test)

    # ---------------------------------------------------------------- classifying

    def predict(self, pixels, height: int, width: int, raw: bool = False,
                placed=None) -> dict | None:
        """Classify a grey image: ``pixels`` height*width uint8 bytes, any polarity.

        ``raw``: the pixels already are a 28x28 MNIST input (ink = 255), used as they are.
        ``placed``: for a drawing re-rendered to fit its own extent, the same drawing as it
        lies on the pad (height*width bytes): only there do lines along the pad's border show.
        Returns None for a blank image; {"rejected": one sentence} for an image too small
        to hold a digit or ink that does not look like one; else {"probs": (10,) float64,
        "preview": (784,) uint8, the 28x28 input the model saw}.
        """
        gray = _image(pixels, height, width)
        if raw:
            if gray.shape != (28, 28):
                raise ValueError(f"predict: a raw input must be 28x28, not {height}x{width}")
            if not gray.any():
                return None
            img = gray.astype(np.float32) / 255.0
        else:
            prepared = prepare(gray)
            if prepared.outcome == EMPTY and min(gray.shape) >= MIN_SIDE:
                return None                       # blank: nothing was drawn yet
            if prepared.outcome != EMPTY and placed is not None:
                # Lines along the pad's border (a frame) show only as the drawing lies on
                # the pad: there they are dropped and the rest is judged on its own.
                on_pad = prepare(_image(placed, height, width))
                if on_pad.reason == inkshape.ALONG_EDGE or on_pad.border_dropped:
                    prepared = on_pad
            if prepared.outcome != DIGIT:
                return {"rejected": prepared.message}
            img = prepared.image
        proba = self._require_model().predict_proba(img.reshape(1, 784))[0]
        self.last_input = img
        return {"probs": proba.astype(np.float64), "preview": _to_uint8(img).reshape(784)}

    def feature_maps(self) -> dict | None:
        """The first convolution's maps of the last classified digit: {n, h, w, peak,
        pixels: (n*h*w,) uint8}; None for a model without convolutions or no digit yet."""
        model = self._require_model()
        if self.last_input is None or not explain.is_cnn(model):
            return None
        maps = explain.feature_maps(model, self.last_input)
        n, h, w = maps.shape
        return {"n": n, "h": h, "w": w, "peak": float(maps.max()),
                "pixels": explain.to_uint8(maps).reshape(-1)}

    def insight(self) -> dict:
        """The pad model's first layer for display: {kind: "cnn"|"mlp", n, h, w, title,
        pixels: (n*h*w,) uint8, 128 = 0, 0/255 = each image's most negative/positive}."""
        info = explain.overview(self._require_model())
        n, h, w = info["images"].shape
        return {"kind": info["kind"], "n": n, "h": h, "w": w, "title": info["title"],
                "pixels": explain.to_uint8(info["images"], signed=True).reshape(-1)}

    def gallery(self, n: int) -> dict:
        """``n`` test digits (1..64): one per class, then a few of the model's mistakes.

        Returns {n, images: (n*784,) uint8, labels, preds: (n,) uint8, conf: (n,) float64,
        wrong: how many test digits the model gets wrong in total}.
        """
        n = max(1, min(GALLERY_MAX, int(n)))
        d = self.data
        preds, conf = predict_test_split(self._require_model(), d)
        wrong = np.flatnonzero(preds != d.y_test)
        n_wrong = min(len(wrong), max(0, n - 10), GALLERY_MISTAKES)
        picks = [int(np.flatnonzero(d.y_test == c)[GALLERY_PICK]) for c in range(10)][:n - n_wrong]
        picks += [int(i) for i in wrong[:n_wrong]]
        while len(picks) < n:
            picks.append(len(picks) * 97 % len(d.y_test))
        idx = np.array(picks, dtype=np.int64)
        return {"n": n, "images": _to_uint8(d.x_test[idx]).reshape(-1),
                "labels": d.y_test[idx].astype(np.uint8), "preds": preds[idx].astype(np.uint8),
                "conf": conf[idx].astype(np.float64), "wrong": int(len(wrong))}

    # ---------------------------------------------------------------- training

    def enable_blas(self) -> bool:
        """Train with scipy's BLAS sgemm from now on, if scipy imports; True if so."""
        self.train_backend = "sgemm" if backend.available("sgemm") else None
        return self.train_backend is not None

    def start_training(self, settings: dict) -> dict:
        """Begin a training run of a fresh network (settings: see `recipes.recipe_for`).
        Returns the first report (nothing trained yet). One run at a time."""
        self._no_run_going()
        self.session = TrainingSession(self.data, dict(settings), self.train_backend)
        return self.session.report()

    def start_adapt(self, pixels, labels) -> dict:
        """Begin fine-tuning a copy of the pad's model on the person's examples (N*784
        uint8 pixel bytes, ink = 255, and N label bytes), mixed with bundled digits.
        Stepped and finished like a training run; the pad keeps its model meanwhile."""
        self._no_run_going()
        images, labels = examples.from_buffers(pixels, labels)
        self.session = AdaptSession(self._require_model(), self.data, images, labels,
                                    self.train_backend)
        return self.session.run.report()

    def _no_run_going(self) -> None:
        if self.session is not None and self.session.state == "running":
            raise RuntimeError("a training run is already going")

    def _require_session(self) -> TrainingSession:
        if self.session is None:
            raise RuntimeError("no training run has been started")
        return self.session

    def train_step(self, budget_s: float = 0.12) -> dict:
        """Train for about ``budget_s`` seconds; the slice's report (`TrainingSession.step`)."""
        return self._require_session().step(float(budget_s))

    def stop_training(self) -> None:
        """End the run after the batch in progress; its model stays usable."""
        if self.session is not None:
            self.session.stop()

    def finish_training(self) -> dict:
        """The finished or stopped run's {results (`session.evaluate_model`), bytes (the
        model file)}; the run is then forgotten. Raises if it diverged or still runs."""
        s = self._require_session()
        if s.state == "running":
            raise RuntimeError("the training run is still going")
        self.session = None
        return {"results": s.results(), "bytes": s.model_bytes()}

    # ---------------------------------------------------------------- data-parallel training
    # A training worker holds one Replica of a run shared by `world` workers (`parallel`):
    # per batch it computes its share's gradient, the workers exchange them, and each applies
    # the rank-ordered sum. Rank 0 also reports, measures and returns the model.

    def start_replica(self, settings: dict, rank: int, world: int) -> None:
        """Begin this worker's replica ``rank`` (0-based) of a run over ``world`` workers."""
        self.replica = Replica(self.data, dict(settings), int(rank), int(world), self.train_backend)

    def _require_replica(self) -> Replica:
        if self.replica is None:
            raise RuntimeError("no training run has been started")
        return self.replica

    def replica_compute(self) -> dict | None:
        """The next batch's share: {loss: summed over the share, correct}; its summed
        gradient is then `replica_gradient()`. None when the run is over."""
        out = self._require_replica().compute()
        return None if out is None else {"loss": out["loss"], "correct": out["correct"]}

    def replica_gradient(self) -> np.ndarray:
        """(P,) float32: the summed gradient of the share `replica_compute` just did (the
        replica's own buffer, overwritten by the next batch: copy it out before then)."""
        return self._require_replica().grad

    def replica_apply(self, grads, losses, corrects) -> dict:
        """Every worker's (grad, loss, correct) in rank order (grad None for this worker's
        own) -> the step is taken; the batch/epoch/diverged record (`Replica.apply`)."""
        buffers = [None if g is None else memoryview(g) for g in grads]
        return self._require_replica().apply(buffers, [float(v) for v in losses],
                                             [int(v) for v in corrects])

    def replica_validated(self, counts) -> None:
        """Rank 0: every worker's right answers on its share of the test split at the
        epoch just ended, in rank order (`Replica.validated`)."""
        self._require_replica().validated([int(c) for c in counts])

    def replica_stop(self) -> None:
        """End the run before its next batch (every worker stops at the same one)."""
        self._require_replica().stop()

    def replica_report(self) -> dict:
        """Rank 0: the run's progress since the last report (`Replica.report`)."""
        return self._require_replica().report()

    def finish_replica(self) -> dict:
        """Rank 0, once the run ended done or stopped: {results (`session.evaluate_model`),
        bytes (the model file)}; the run is then forgotten."""
        r = self._require_replica()
        if r.state in ("running", "diverged"):
            raise RuntimeError(f"the training run is {r.state}: it has no model to give")
        self.replica = None
        with backend.use(r.backend) if r.backend else _nothing():
            results = evaluate_model(r.model, self.data)
        return {"results": results, "bytes": r.model_bytes()}

    # ---------------------------------------------------------------- your examples

    @staticmethod
    def export_examples(pixels, labels) -> bytes:
        """The page's examples (N*784 pixel bytes, N label bytes) -> an examples .npz file."""
        return examples.save_examples(*examples.from_buffers(pixels, labels))

    @staticmethod
    def import_examples(blob) -> dict:
        """An examples .npz file -> {pixels: (N*784,) uint8, labels: (N,) uint8, n};
        a bad file raises ExamplesError with a one-sentence reason."""
        images, labels = examples.load_examples(examples.raw_bytes(blob))
        return {"pixels": images.reshape(-1), "labels": labels.astype(np.uint8), "n": len(labels)}

    # ---------------------------------------------------------------- benchmarks

    def bench(self, op: str, options: dict | None = None, heap=None) -> dict:
        """Speed measurements (`digitnet.bench`) in this process.

        op: "matmul" (GFLOP/s), "train" (examples/s) or "train_memory" (``heap()`` and
        the live Python/numpy bytes after every epoch of one run). options: path (a
        backend name; default: the current one) and the measuring function's arguments.
        """
        from . import bench  # measuring tools (and their imports) only when measuring

        o = dict(options or {})
        name = o.get("path") or backend.current()
        with backend.use(name):
            if op == "matmul":
                return bench.matmul_gflops(batch=o.get("batch", 256), repeats=o.get("repeats", 5),
                                           matmul=backend.matmul)
            if op == "train":
                return bench.training_throughput(o.get("model", "mlp"), o.get("recipe", "tutorial"),
                                                 epochs=o.get("epochs", 1),
                                                 repeats=o.get("repeats", 1), limit=o.get("limit"),
                                                 dataset=self.data)
            if op == "train_memory":
                return self._train_memory(o, heap or (lambda: 0))
        raise ValueError(f"unknown bench op {op!r}; expected matmul, train or train_memory")

    def _train_memory(self, o: dict, heap) -> dict:
        import tracemalloc

        from . import bench

        ds = bench.subset(self.data, o.get("limit"), n_test=None)
        recipe = get_recipe(o.get("model", "mlp"), o.get("recipe", "tutorial")).with_overrides(
            epochs=o.get("epochs", 10))
        # A WebAssembly heap only grows (a high-water mark); tracemalloc's live bytes
        # (Python objects and numpy buffers) show whether anything accumulates per epoch.
        heaps, live = [], []

        def on_epoch(_record):
            heaps.append(int(heap()))
            live.append(tracemalloc.get_traced_memory()[0])

        before = int(heap())
        tracemalloc.start()
        try:
            fit_recipe(recipe, ds, on_epoch=on_epoch)
        finally:
            tracemalloc.stop()
        return {"heap_before": before, "heap_by_epoch": heaps, "epochs": len(heaps),
                "live_bytes_by_epoch": live, "examples": len(ds.x_train)}
