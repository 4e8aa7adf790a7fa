"""A training run advanced a time slice at a time, and the results a page shows after it.

`TrainingSession` drives `train.training_steps` (the CLI's loop) in slices, so a browser
worker can answer other messages in between; `evaluate_model` gives the test accuracy,
confusion matrix and most confident mistakes; `check_model` vets model bytes before they
replace anything. numpy only. Non-goals: DOM or JavaScript knowledge, persistence.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np

from . import backend
from .metrics import confusion_matrix
from .modelcheck import check_on_digits
from .model import ModelFileError, Sequential, dumps, loads
from .recipes import model_and_optimizer, recipe_for
from .train import TrainingDiverged, training_steps

N_MISTAKES = 12


class TrainingSession:
    """One training run, advanced by ``step(budget_s)`` a time slice at a time.

    Wraps `train.training_steps` (the same loop as the CLI). Stopping = not stepping any
    more; the model then holds the weights of the last finished batch. States: "running",
    "done", "stopped", "diverged" (the loss stopped being finite: the run is over and its
    model must not be used).
    """

    def __init__(self, dataset, settings: dict, backend_name: str | None = None):
        """settings: see `recipes.recipe_for`; backend_name: the product the slices use
        (e.g. "sgemm"), None for the current one. Raises SettingError for bad settings."""
        self.recipe = recipe_for(settings, n_train=len(dataset.x_train))
        self.data = dataset
        self.backend = backend_name
        self.model, self.optimizer = model_and_optimizer(self.recipe)
        r = self.recipe
        self._steps = training_steps(
            self.model, dataset.x_train, dataset.y_train, self.optimizer, epochs=r.epochs,
            batch_size=r.batch_size, augment_shift=r.augment_shift, seed=r.seed,
            lr_schedule=r.lr_schedule, loss_reduction=r.loss_reduction,
            augment=r.augmentation(), x_val=dataset.x_test, y_val=dataset.y_test)
        self.state = "running"
        self.message = ""
        self.total = r.epochs * len(dataset.x_train)
        self.seen = 0
        self.train_time = 0.0
        self.epochs: list[dict] = []

    def step(self, budget_s: float = 0.12) -> dict:
        """Run batches for about ``budget_s`` seconds (at least one batch, and stop at an
        epoch's end so the page logs it at once); return what happened (``report``)."""
        losses, accs, epochs = [], [], []
        if self.state != "running":
            return self.report(losses, accs, epochs)
        deadline = time.perf_counter() + budget_s
        with self._backend():
            while True:
                try:
                    rec = next(self._steps)
                except StopIteration:
                    self.state = "done"
                    break
                except TrainingDiverged as e:
                    self.state, self.message = "diverged", str(e)
                    break
                self.seen, self.train_time = rec["seen"], rec["train_time"]
                if rec["kind"] == "epoch":
                    rec = {k: v for k, v in rec.items() if k != "kind"}
                    self.epochs.append(rec)
                    epochs.append(rec)
                    if rec["epoch"] == self.recipe.epochs - 1:
                        self.state = "done"
                        self._steps.close()
                    break
                losses.append(rec["loss"])
                accs.append(rec["accuracy"])
                if time.perf_counter() >= deadline:
                    break
        return self.report(losses, accs, epochs)

    def report(self, losses=(), accs=(), epochs=()) -> dict:
        rate = self.seen / self.train_time if self.train_time > 0 else 0.0
        return {
            "state": self.state, "message": self.message,
            "seen": self.seen, "total": self.total,
            "progress": self.seen / self.total if self.total else 0.0,
            "examples_per_s": rate,
            "eta_s": (self.total - self.seen) / rate if rate > 0 else None,
            "batches": len(losses),
            "loss": float(np.mean(losses)) if losses else None,       # mean over this slice
            "accuracy": float(np.mean(accs)) if accs else None,
            "epochs": epochs,
        }

    def stop(self) -> None:
        if self.state == "running":
            self.state = "stopped"
            self._steps.close()

    def _backend(self):
        return backend.use(self.backend) if self.backend else contextlib.nullcontext()

    def results(self) -> dict:
        """Test accuracy, confusion matrix and most confident mistakes of the model now."""
        if self.state == "diverged":
            raise RuntimeError("the run diverged: its model is not usable")
        with self._backend():
            return evaluate_model(self.model, self.data)

    def model_bytes(self) -> bytes:
        return dumps(self.model)


def predict_test_split(model: Sequential, dataset) -> tuple[np.ndarray, np.ndarray]:
    """The model's class (N,) int64 and its probability (N,) float32 for every test digit."""
    proba = model.predict_proba(dataset.x_test)
    return proba.argmax(axis=1), proba.max(axis=1)


def evaluate_model(model: Sequential, dataset, n_mistakes: int = N_MISTAKES,
                   predictions: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Accuracy on the test split, its (10, 10) confusion matrix (row = true label), and
    the ``n_mistakes`` most confident mistakes (784-byte images, labels, predictions).
    ``predictions``: `predict_test_split`' output, if already computed."""
    preds, conf = predictions if predictions is not None else predict_test_split(model, dataset)
    y = dataset.y_test
    confusion = confusion_matrix(preds, y)
    wrong = np.flatnonzero(preds != y)
    worst = wrong[np.argsort(-conf[wrong], kind="stable")][:n_mistakes]
    images = (np.clip(dataset.x_test[worst], 0, 1) * 255 + 0.5).astype(np.uint8)
    return {
        "accuracy": float((preds == y).mean()),
        "n_test": int(len(y)),
        "confusion": confusion.tolist(),
        "mistakes": [{"label": int(y[i]), "predicted": int(preds[i]), "confidence": float(conf[i]),
                      "pixels": images[j]} for j, i in enumerate(worst)],
        "architecture": describe(model),
    }


# ---------------------------------------------------------------- model files

def describe(model: Sequential) -> str:
    """Short architecture name for lists: "MLP 784-256-128-10" or "CNN (…)"."""
    specs = model.architecture()
    kinds = [s["type"] for s in specs]
    count = sum(p.value.size for p in model.parameters())
    if "Conv2D" in kinds:
        return f"CNN, {count:,} parameters"
    dims = [s["n_in"] for s in specs if s["type"] == "Linear"][:1] + \
           [s["n_out"] for s in specs if s["type"] == "Linear"]
    return f"MLP {'-'.join(map(str, dims))}, {count:,} parameters"


def check_model(blob: bytes) -> Sequential:
    """Load model bytes (`modelfile` checks them before allocating anything) and check
    that they turn 28x28 digit images into 10 probabilities (`modelcheck`). Raises
    ModelFileError with one plain sentence otherwise."""
    model = loads(bytes(blob))
    check_on_digits(model, np.zeros((2, 784), dtype=np.float32), np.zeros(2, dtype=np.int64))
    return model
