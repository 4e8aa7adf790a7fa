"""Fine-tune a trained model on a person's own examples ("teach it your handwriting").

Each step is one Adam step on a batch mixing examples (with random shifts) and bundled
training digits, so the model learns the person's style without forgetting MNIST. The
run advances in time slices (``step(budget_s)``) so the browser's worker can answer other
messages in between; stopping = not stepping any more. The source model is never changed:
a copy is tuned. Seeded: the same inputs and seed give the same model.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np

from . import backend
from .data import one_hot, random_shift
from .examples import check_examples
from .losses import softmax_cross_entropy
from .model import Sequential, dumps, loads
from .optim import Adam

STEPS = 150
LR = 5e-4
BATCH_EXAMPLES = 32
BATCH_BUNDLED = 256  # bundled digits per step: fewer let a very unusual style erode MNIST (measured)
SHIFT = 2


class FinetuneError(ValueError):
    """The examples cannot teach anything (none, or a single digit) or the run diverged."""


def check_labels(labels) -> None:
    """Refuse example sets that cannot be learnt from: none at all, or only one digit."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise FinetuneError("There are no examples to adapt to: correct a few drawings first.")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise FinetuneError(f"All examples are {int(classes[0])}s: adapting needs examples of at "
                            "least two different digits, or the model would learn to answer "
                            "only that one.")


class Finetune:
    """Tunes a copy of ``model`` on examples mixed with bundled digits.

    images: uint8 (N, 28, 28) or (N, 784), ink = 255; labels: (N,) 0-9.
    x_train (M, 784) float32 in [0, 1], y_train (M,): the bundled training digits.
    States: "running", "done", "stopped".
    """

    def __init__(self, model: Sequential, images, labels, x_train, y_train, *, steps: int = STEPS,
                 lr: float = LR, batch_examples: int = BATCH_EXAMPLES,
                 batch_bundled: int = BATCH_BUNDLED, shift: int = SHIFT, seed: int = 0):
        check_labels(np.asarray(labels))
        images, labels = check_examples(images, labels)
        labels = labels.astype(np.int64)
        if steps < 1:
            raise ValueError("steps must be at least 1")
        self.model = loads(dumps(model))
        self.x_examples = (np.asarray(images, np.float32).reshape(len(labels), 784) / 255.0
                           ).astype(self.model.dtype)
        self.y_examples = labels
        self.x_train, self.y_train = np.asarray(x_train, self.model.dtype), np.asarray(y_train)
        self.optimizer = Adam(self.model.parameters(), lr=lr)
        self.rng = np.random.default_rng(seed)
        self.steps, self.shift = int(steps), int(shift)
        self.batch_examples, self.batch_bundled = int(batch_examples), int(batch_bundled)
        self.done_steps, self.train_time, self.state = 0, 0.0, "running"
        self.losses: list[float] = []

    def _batch(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.y_examples)
        ie = self.rng.choice(n, self.batch_examples, replace=n < self.batch_examples)
        xe = self.x_examples[ie]
        if self.shift:
            xe = random_shift(xe, self.shift, self.rng)
        ib = self.rng.integers(0, len(self.y_train), self.batch_bundled)
        x = np.concatenate([xe, self.x_train[ib]])
        y = np.concatenate([self.y_examples[ie], self.y_train[ib]])
        return x, y

    def _one_step(self) -> float:
        x, y = self._batch()
        self.model.zero_grad()
        logits = self.model.logits(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, one_hot(y, 10, self.model.dtype))
        if not np.isfinite(loss):
            raise FinetuneError("Fine-tuning diverged (the loss stopped being finite); the "
                                "source model is unchanged.")
        self.model.backward(dlogits, input_grad=False)
        self.optimizer.step()
        return loss

    def step(self, budget_s: float = 0.12) -> dict:
        """Run steps for about ``budget_s`` seconds (at least one); return ``report()``."""
        deadline = time.perf_counter() + budget_s
        while self.state == "running":
            t0 = time.perf_counter()
            self.losses.append(self._one_step())
            self.done_steps += 1
            self.train_time += time.perf_counter() - t0
            if self.done_steps >= self.steps:
                self.state = "done"
            if time.perf_counter() >= deadline:
                break
        return self.report()

    def stop(self) -> None:
        if self.state == "running":
            self.state = "stopped"

    def report(self) -> dict:
        """state, step, steps, progress in [0, 1], loss (mean of the last 10 steps), train_time."""
        recent = self.losses[-10:]
        return {"state": self.state, "step": self.done_steps, "steps": self.steps,
                "progress": self.done_steps / self.steps, "train_time": self.train_time,
                "loss": float(np.mean(recent)) if recent else None}

    def run(self, on_progress=None, should_stop=None, budget_s: float = 0.5) -> Sequential:
        """Step to the end (or until ``should_stop()``), calling ``on_progress(report)``."""
        while self.state == "running":
            if should_stop is not None and should_stop():
                self.stop()
                break
            report = self.step(budget_s)
            if on_progress is not None:
                on_progress(report)
        return self.model


def finetune(model: Sequential, images, labels, x_train, y_train, **settings) -> Sequential:
    """A tuned copy of ``model`` (see `Finetune` for the arguments)."""
    return Finetune(model, images, labels, x_train, y_train, **settings).run()


# ---------------------------------------------------------------- the page's "adapt"

class AdaptSession:
    """The page's "Adapt to my handwriting": a `Finetune` of the pad's model on the
    person's examples, stepped in slices with the training backend, then both models'
    accuracy on the bundled test split. Same interface as `session.TrainingSession`
    (state, step, stop, results, model_bytes), so the worker runs either the same way."""

    def __init__(self, model: Sequential, dataset, images, labels,
                 backend_name: str | None = None, seed: int = 0):
        self.source, self.data, self.backend = model, dataset, backend_name
        self.run = Finetune(model, images, labels, dataset.x_train, dataset.y_train, seed=seed)
        self.n_examples = len(labels)

    @property
    def state(self) -> str:
        return self.run.state

    def _backend(self):
        return backend.use(self.backend) if self.backend else contextlib.nullcontext()

    def step(self, budget_s: float = 0.12) -> dict:
        with self._backend():
            return self.run.step(budget_s)

    def stop(self) -> None:
        self.run.stop()

    def results(self) -> dict:
        """{accuracy, source_accuracy, n_test, n_examples, architecture}."""
        from .session import describe

        x, y = self.data.x_test, self.data.y_test
        with self._backend():
            acc = float((self.run.model.predict(x) == y).mean())
            source = float((self.source.predict(x) == y).mean())
        return {"accuracy": acc, "source_accuracy": source, "n_test": int(len(y)),
                "n_examples": self.n_examples, "architecture": describe(self.run.model)}

    def model_bytes(self) -> bytes:
        return dumps(self.run.model)
