"""``fit``: the one mini-batch training loop, shared by the CLI and the browser.

It reports progress through callbacks (never prints), can be cancelled between batches,
and stops with `TrainingDiverged` when the loss stops being finite, leaving the model
with the last weights that still gave a finite loss.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .data import one_hot
from .epochs import epoch_plans, plans_ahead
from .metrics import accuracy
from .model import Sequential


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model holds its last good weights."""


@dataclass
class History:
    """Per-epoch records (dicts as passed to ``on_epoch``) and whether training was stopped."""
    epochs: list[dict] = field(default_factory=list)
    stopped: bool = False


def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy in [0, 1] of ``model`` on (N, 784) images and (N,) labels."""
    return accuracy(model.predict(x), y)


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Half a cosine from ``base_lr`` (epoch 0) towards 0; a Python float, so float32
    updates stay float32."""
    return float(base_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def training_steps(model: Sequential, x: np.ndarray, y: np.ndarray, optimizer, *, epochs: int,
                   batch_size: int, augment_shift: int = 0, seed: int = 0,
                   lr_schedule: str = "constant", loss_reduction: str = "mean",
                   augment: dict | None = None, x_val: np.ndarray | None = None,
                   y_val: np.ndarray | None = None, ahead: bool = False) -> Iterator[dict]:
    """Train batch by batch, yielding a record after every batch and every epoch.

    x: (N, 784) float32, y: (N,) int labels. This generator is the loop itself: ``fit``
    drives it with callbacks, and the browser drives it a few batches at a time so its
    worker can answer other messages in between. Stopping early = not asking for more.

    ``optimizer`` walks ``model.parameters()``; ``lr_schedule="cosine"`` lowers its
    learning rate each epoch along half a cosine, from the initial value towards 0.
    ``augment_shift`` > 0 shifts each image by up to that many pixels, drawn afresh
    every epoch; ``augment`` (keywords of ``augment.augment_epoch``) transforms the
    images afresh every epoch before that shift (`epochs.epoch_plans`; with ``ahead``, made
    one epoch ahead in a second process where that helps: `epochs.plans_ahead`, the
    same images). Records (dicts):
    batch: kind="batch", epoch, batch, batches, loss, accuracy (batch, in [0, 1]), seen,
    total, elapsed (wall seconds), train_time (seconds spent in batches);
    epoch: kind="epoch", epoch, loss (mean batch loss), accuracy (mean batch accuracy),
    val_accuracy (if x_val given), seen, elapsed, train_time.
    Raises TrainingDiverged (after restoring the last finite-loss weights) if the loss
    stops being finite.
    """
    if epochs < 1 or int(epochs) != epochs:
        raise ValueError("epochs must be a positive integer")
    if not 1 <= batch_size <= len(x):
        raise ValueError(f"batch size must be between 1 and the number of examples ({len(x)})")
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {lr_schedule!r}")
    x = np.asarray(x, dtype=model.dtype)
    targets_all = one_hot(y, 10, dtype=model.dtype)
    plans = (plans_ahead if ahead else epoch_plans)(x, y, seed, epochs, batch_size, augment,
                                                     augment_shift)
    params = model.parameters()
    good = [p.value.copy() for p in params]  # last weights that gave a finite loss
    n_batches = -(-len(x) // batch_size)
    base_lr, seen, train_time, start = optimizer.lr, 0, 0.0, time.perf_counter()
    t0 = time.perf_counter()
    for epoch, plan in enumerate(plans):
        if lr_schedule == "cosine":
            optimizer.lr = cosine_lr(base_lr, epoch, epochs)
        losses, accs = [], []
        for b, idx in enumerate(plan.batches):
            xb, tb = plan.images[plan.rows(idx)], targets_all[idx]
            model.zero_grad()
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is handled below
                loss, logits = model.loss_and_gradients(xb, tb, loss_reduction)
            if not np.isfinite(loss):
                for p, v in zip(params, good):
                    p.value[...] = v
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}, batch {b + 1}: the loss became "
                    f"{loss} (the learning rate is probably too high); the model keeps its "
                    "last weights that gave a finite loss")
            for p, v in zip(params, good):
                np.copyto(v, p.value)
            optimizer.step()
            acc = float((logits.argmax(axis=1) == y[idx]).mean())
            seen += len(idx)
            losses.append(loss)
            accs.append(acc)
            now = time.perf_counter()
            train_time, t0 = train_time + (now - t0), now
            yield {"kind": "batch", "epoch": epoch, "batch": b, "batches": n_batches,
                   "loss": loss, "accuracy": acc, "seen": seen, "total": epochs * len(x),
                   "elapsed": now - start, "train_time": train_time}
            t0 = time.perf_counter()  # time spent by the consumer is not training time
        record = {"kind": "epoch", "epoch": epoch, "loss": float(np.mean(losses)),
                  "accuracy": float(np.mean(accs)), "seen": seen, "train_time": train_time}
        if x_val is not None:
            record["val_accuracy"] = evaluate(model, x_val, y_val)
        record["elapsed"] = time.perf_counter() - start
        yield record
        t0 = time.perf_counter()  # the next plan is made in training time


def fit(model: Sequential, x: np.ndarray, y: np.ndarray, optimizer, *,
        on_batch: Callable[[dict], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None, **settings) -> History:
    """Run ``training_steps`` to the end (see it for x, y and ``settings``).

    ``on_batch``/``on_epoch`` receive its records; ``should_stop()`` is polled before
    every batch, and when it returns True fit returns with ``History.stopped`` set.
    """
    history = History()
    if should_stop is not None and should_stop():
        history.stopped = True
        return history
    for record in training_steps(model, x, y, optimizer, **settings):
        if record["kind"] == "epoch":
            history.epochs.append(record)
            if on_epoch is not None:
                on_epoch(record)
            continue
        if on_batch is not None:
            on_batch(record)
        if should_stop is not None and should_stop():
            history.stopped = True
            break
    return history


def fit_recipe(recipe, dataset, ahead: bool = False, **callbacks) -> tuple[Sequential, History]:
    """Build a fresh model for ``recipe`` (see `recipes`) and ``fit`` it on ``dataset``.

    ``callbacks`` are passed to ``fit`` (on_batch, on_epoch, should_stop); the test split
    serves as ``x_val`` so every epoch reports held-out accuracy. ``ahead``: see
    ``training_steps``.
    """
    from .recipes import model_and_optimizer

    model, optimizer = model_and_optimizer(recipe)
    history = fit(model, dataset.x_train, dataset.y_train, optimizer, epochs=recipe.epochs,
                  batch_size=recipe.batch_size, augment_shift=recipe.augment_shift,
                  seed=recipe.seed, loss_reduction=recipe.loss_reduction,
                  lr_schedule=recipe.lr_schedule, augment=recipe.augmentation(),
                  x_val=dataset.x_test, y_val=dataset.y_test, ahead=ahead, **callbacks)
    return model, history
