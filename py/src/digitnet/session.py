"""Glue between the browser's compute worker and digitnet, kept here so CPython tests it.

The worker (web/worker.js) calls these functions through Pyodide; everything returned to
JavaScript is JSON text, bytes or plain numbers. Aim: a training session the worker can
advance a time slice at a time (so it answers other messages in between), the results a
page shows after training, model files checked before they replace anything, and a BLAS
matrix product for Pyodide, whose numpy has none. numpy only (scipy is optional).
Non-goals: any DOM or JavaScript knowledge; persistence (the page stores model bytes).
"""
from __future__ import annotations

import json
import math
import time

import numpy as np

from . import layers
from .metrics import confusion_matrix
from .model import ModelFileError, Sequential, dumps, loads
from .recipes import RECIPES, Recipe, get_recipe, model_and_optimizer
from .train import TrainingDiverged, training_steps

MAX_LR = 10.0
N_MISTAKES = 12


# ---------------------------------------------------------------- BLAS matrix product

def blas_matmul():
    """A float32 ``a @ b`` through scipy's BLAS ``sgemm``, or None without scipy.

    No input copies for C- or F-contiguous operands (a transposed view such as ``x.T``
    is F-contiguous: it is passed with BLAS's transpose flag instead of being copied);
    the result is C-contiguous. Anything but two 2-D float32 arrays goes to numpy.
    """
    try:
        from scipy.linalg.blas import sgemm
    except ImportError:
        return None

    def operand(m: np.ndarray):
        """(array sgemm reads as Fortran-ordered, trans flag) such that op(array) = m.T."""
        if m.flags.f_contiguous:     # m.T is C-contiguous: give m, ask BLAS to transpose
            return m, 1
        if not m.flags.c_contiguous:
            m = np.ascontiguousarray(m)
        return m.T, 0                 # m.T of a C-contiguous m is F-contiguous: no copy

    def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if (a.ndim != 2 or b.ndim != 2 or a.dtype != np.float32 or b.dtype != np.float32
                or 0 in a.shape or 0 in b.shape):
            return np.matmul(a, b)
        # (a @ b).T = b.T @ a.T, computed Fortran-ordered: its transpose is C-ordered a @ b.
        x, trans_x = operand(b)
        y, trans_y = operand(a)
        return sgemm(1.0, x, y, trans_a=trans_x, trans_b=trans_y).T

    return matmul


class MatmulSwitch:
    """Installs a matrix product for the duration of a ``with`` block, then restores numpy's.

    Training chunks use the BLAS product; classification between chunks keeps numpy's
    (as fast for one row, and unchanged by whether scipy loaded).
    """

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        if self.fn is not None:
            layers.set_matmul(self.fn)
        return self

    def __exit__(self, *exc):
        if self.fn is not None:
            layers.set_matmul()
        return False


# ---------------------------------------------------------------- settings

def recipe_for(settings: dict) -> Recipe:
    """The page's settings dict -> a validated Recipe; raises ValueError naming the field.

    settings: model ("mlp"|"cnn"), recipe (a name in `recipes.RECIPES` for that model),
    epochs, batch_size, lr, optimizer ("sgd"|"adam"), augment (bool). Missing keys keep
    the recipe's value.
    """
    model = settings.get("model", "mlp")
    name = settings.get("recipe", "default")
    names = sorted(n for (m, n) in RECIPES if m == model)
    if name not in names:
        raise ValueError(f"recipe: unknown recipe {name!r} for {model!r}; choose from {names}")
    base = get_recipe(model, name)
    changes = {}
    if settings.get("epochs") is not None:
        epochs = settings["epochs"]
        if isinstance(epochs, bool) or not float(epochs).is_integer() or int(epochs) < 1:
            raise ValueError("epochs: must be a positive whole number")
        changes["epochs"] = int(epochs)
    if settings.get("batch_size") is not None:
        bs = settings["batch_size"]
        if isinstance(bs, bool) or not float(bs).is_integer() or not 1 <= int(bs) <= 8000:
            raise ValueError("batch_size: must be a whole number from 1 to 8000")
        changes["batch_size"] = int(bs)
    if settings.get("lr") is not None:
        lr = float(settings["lr"])
        if not math.isfinite(lr) or lr <= 0 or lr > MAX_LR:
            raise ValueError(f"lr: must be greater than 0 and at most {MAX_LR:g}")
        changes["lr"] = lr
    if settings.get("optimizer") is not None:
        if settings["optimizer"] not in ("sgd", "adam"):
            raise ValueError("optimizer: must be 'sgd' or 'adam'")
        changes["optimizer"] = settings["optimizer"]
    if settings.get("augment") is not None:
        changes["augment_shift"] = 2 if settings["augment"] else 0
    if settings.get("seed") is not None:
        changes["seed"] = int(settings["seed"])
    return base.with_overrides(**changes)


# ---------------------------------------------------------------- training session

class TrainingSession:
    """One training run, advanced by ``step(budget_s)`` a time slice at a time.

    Wraps `train.training_steps` (the same loop as the CLI). Stopping = not stepping any
    more; the model then holds the weights of the last finished batch. States: "running",
    "done", "stopped", "diverged" (the loss stopped being finite: the run is over and its
    model must not be used).
    """

    def __init__(self, dataset, settings: dict, matmul=None):
        self.recipe = recipe_for(settings)
        self.data = dataset
        if self.recipe.batch_size > len(dataset.x_train):
            raise ValueError(f"batch_size: must be at most {len(dataset.x_train)}")
        self.model, self.optimizer = model_and_optimizer(self.recipe)
        self.matmul = MatmulSwitch(matmul)
        r = self.recipe
        self._steps = training_steps(
            self.model, dataset.x_train, dataset.y_train, self.optimizer, epochs=r.epochs,
            batch_size=r.batch_size, augment_shift=r.augment_shift, seed=r.seed,
            lr_schedule=r.lr_schedule, loss_reduction=r.loss_reduction,
            x_val=dataset.x_test, y_val=dataset.y_test)
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
        with self.matmul:
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

    def step_json(self, budget_s: float = 0.12) -> str:
        return json.dumps(self.step(budget_s))

    def results(self) -> dict:
        """Test accuracy, confusion matrix and most confident mistakes of the model now."""
        if self.state == "diverged":
            raise RuntimeError("the run diverged: its model is not usable")
        return evaluate_model(self.model, self.data, self.matmul.fn)

    def model_bytes(self) -> bytes:
        return dumps(self.model)


def evaluate_model(model: Sequential, dataset, matmul=None, n_mistakes: int = N_MISTAKES) -> dict:
    """Accuracy on the test split, its (10, 10) confusion matrix (row = true label), and
    the ``n_mistakes`` most confident mistakes (784-byte images, labels, predictions)."""
    with MatmulSwitch(matmul):
        proba = model.predict_proba(dataset.x_test)
    preds = proba.argmax(axis=1)
    conf = proba.max(axis=1)
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
                      "pixels": images[j].tolist()} for j, i in enumerate(worst)],
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
    """Load model bytes and check they classify MNIST digits: (N, 784) in, 10 probabilities
    out. Raises ModelFileError with a readable message otherwise."""
    model = loads(bytes(blob))
    try:
        with np.errstate(all="ignore"):
            out = model.predict_proba(np.zeros((2, 784), dtype=model.dtype))
    except (ValueError, TypeError, IndexError) as e:
        raise ModelFileError(f"the model does not accept 28x28 digit images ({e})") from None
    if out.shape != (2, 10):
        raise ModelFileError(f"the model outputs {out.shape[1:]} values per image, not 10 "
                             "digit probabilities")
    if not np.isfinite(out).all():
        raise ModelFileError("the model outputs non-finite probabilities")
    return model
