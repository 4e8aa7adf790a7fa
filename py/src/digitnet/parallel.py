"""Synchronous data-parallel training: one run shared by N replicas of the same network.

Every batch is split into N contiguous shares; replica k computes the *summed* loss
gradient of share k (`Replica.compute`); the N gradients are added in rank order and
every replica takes the same optimiser step with that sum (`Replica.apply`), so all
replicas keep identical weights (the scheme of PyTorch's DistributedDataParallel). Every
replica derives the batch order and the augmentation from the seed with the same random
stream `train.training_steps` uses, so an N-replica run is the 1-replica run up to the
float rounding of the sums, and the 1-replica run is the CLI's.

numpy only. Non-goals: moving the gradients between replicas (web workers, processes or a
loop in one process do that), choosing N.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np

from . import backend
from .data import one_hot
from .epochs import EpochPlan, epoch_plans
from .model import Sequential, dumps
from .recipes import model_and_optimizer, recipe_for
from .train import cosine_lr


def flat_gradients(model: Sequential) -> np.ndarray:
    """Make every ``Param.grad`` of ``model`` a view into one new (P,) array and return it
    (P = the parameter count), so a gradient leaves and enters without gathering."""
    params = model.parameters()
    flat = np.zeros(sum(p.value.size for p in params), dtype=model.dtype)
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.value.size].reshape(p.value.shape)
        offset += p.value.size
    return flat


def share_gradient(model: Sequential, x: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
    """Zero the gradients, then accumulate the gradient of the *summed* cross-entropy of
    the share x (n, 784) with one-hot targets (n, 10) into ``Param.grad``.
    Returns (the summed loss, how many of the n the model got right)."""
    model.zero_grad()
    if len(x) == 0:
        for p in model.parameters():
            p.grad.fill(0)  # zero_grad only marks it; the flat buffer must hold zeros
        return 0.0, 0
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is the caller's to see
        mean_loss, logits = model.loss_and_gradients(x, targets, "sum")
    correct = int((logits.argmax(axis=1) == targets.argmax(axis=1)).sum())
    return mean_loss * len(x), correct


def share_bounds(batch: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of replica ``rank``'s share of a batch of ``batch`` examples."""
    return batch * rank // world, batch * (rank + 1) // world


class Replica:
    """Replica ``rank`` of ``world`` of one training run (settings: `recipes.recipe_for`).

    Drive it batch by batch: ``compute()`` (None when the run is over), send the gradient
    to the other replicas, then ``apply(grads, losses, corrects)`` with every replica's
    values in rank order. States: "running", "done", "stopped", "diverged" (the loss
    stopped being finite; the model keeps its last finite-loss weights). At each epoch's
    end every replica counts the digits it gets right in its share of ``dataset``'s test
    split; rank 0 adds the counts up (``validated``) and makes the reports.
    """

    def __init__(self, dataset, settings: dict, rank: int = 0, world: int = 1,
                 backend_name: str | None = None):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not one of {world} replicas")
        self.recipe = r = recipe_for(settings, n_train=len(dataset.x_train))
        self.data, self.rank, self.world, self.backend = dataset, rank, world, backend_name
        self.model, self.optimizer = model_and_optimizer(r)
        self.grad = flat_gradients(self.model)
        self._good = [p.value.copy() for p in self.model.parameters()]
        self._targets = one_hot(dataset.y_train, 10, dtype=self.model.dtype)
        self._plan = self._batches()
        self._batch: tuple[int, int, np.ndarray] | None = None  # (epoch, batch, indices)
        self._epoch_plan: EpochPlan | None = None               # this epoch's images
        self._started: float | None = None                      # perf_counter of compute()
        self.n_batches = -(-len(dataset.x_train) // r.batch_size)
        self.total = r.epochs * len(dataset.x_train)
        self.state, self.message = "running", ""
        self.seen, self.train_time = 0, 0.0
        self.compute_time = self.apply_time = 0.0  # seconds in compute() and apply()
        self.epochs: list[dict] = []
        self._epoch_stats = [0.0, 0.0, 0, 0.0]  # loss sum, accuracy sum, batches, time
        self._slice: tuple[list, list, list] = ([], [], [])  # this report's losses, accs, times
        self._reported = 0                                     # epochs already reported

    def _backend(self):
        return backend.use(self.backend) if self.backend else contextlib.nullcontext()

    def _batches(self):
        """(epoch, batch, indices) of every batch, from `epochs.epoch_plans` as
        `train.training_steps` reads them (the same images, in the same order)."""
        r, x, y = self.recipe, self.data.x_train, self.data.y_train
        base_lr = self.optimizer.lr
        plans = epoch_plans(x, y, r.seed, r.epochs, r.batch_size, r.augmentation(), r.augment_shift)
        for epoch, self._epoch_plan in enumerate(plans):
            if r.lr_schedule == "cosine":
                self.optimizer.lr = cosine_lr(base_lr, epoch, r.epochs)
            for b, idx in enumerate(self._epoch_plan.batches):
                yield epoch, b, idx

    def compute(self) -> dict | None:
        """The next batch: this replica's share's summed gradient, in ``self.grad``
        ((P,) float32, also returned as "grad"), with "loss" (summed over the share) and
        "correct"; None when the run is over (every replica ends at the same batch)."""
        if self.state != "running":
            return None
        self._started = time.perf_counter()
        with self._backend():
            self._batch = next(self._plan, None)
            if self._batch is None:
                self.state = "done"
                return None
            start, stop = share_bounds(len(self._batch[2]), self.rank, self.world)
            idx = self._batch[2][start:stop]
            plan = self._epoch_plan
            loss, correct = share_gradient(self.model, plan.images[plan.rows(idx)], self._targets[idx])
        self.compute_time += time.perf_counter() - self._started
        return {"grad": self.grad, "loss": loss, "correct": correct}

    def apply(self, grads: list, losses: list, corrects: list) -> dict:
        """Add every replica's gradient in rank order (None = this replica's own
        ``self.grad``; others: (P,) float32 buffers), divide by the batch size for a mean
        loss, and take the optimiser step; the batch record (kind "batch"), or, after an
        epoch's last batch, the epoch record (kind "epoch").
        The epoch record has "val_correct": this replica's right answers in its share of
        the test split (one replica: also "val_accuracy"; more: see ``validated``).
        A non-finite loss ends the run instead: state "diverged", the last finite-loss
        weights restored, and the record {"kind": "diverged", "message"}."""
        epoch, b, idx = self._batch
        n = len(idx)
        t0 = time.perf_counter()
        vectors = [self.grad if g is None else np.frombuffer(g, dtype=self.grad.dtype) for g in grads]
        if len(vectors) > 1:  # the sum, in rank order, into this replica's own buffer
            np.add(vectors[0], vectors[1], out=self.grad)
            for g in vectors[2:]:
                self.grad += g
        loss = float(sum(losses)) / n
        params = self.model.parameters()
        if not np.isfinite(loss):
            for p, v in zip(params, self._good):
                p.value[...] = v
            self.state = "diverged"
            self.message = (f"training diverged at epoch {epoch + 1}, batch {b + 1}: the loss "
                            f"became {loss} (the learning rate is probably too high); the "
                            "model keeps its last weights that gave a finite loss")
            return {"kind": "diverged", "message": self.message}
        for p, v in zip(params, self._good):
            np.copyto(v, p.value)
        if self.recipe.loss_reduction == "mean":
            self.grad /= np.float32(n)
        with self._backend():
            self.optimizer.step()
        self.apply_time += time.perf_counter() - t0
        acc = sum(corrects) / n
        elapsed = time.perf_counter() - self._started
        self.seen += n
        self.train_time += elapsed
        for stat, value in zip(self._slice, (loss, acc, elapsed)):
            stat.append(value)
        s = self._epoch_stats
        s[0], s[1], s[2], s[3] = s[0] + loss, s[1] + acc, s[2] + 1, s[3] + elapsed
        if b < self.n_batches - 1:
            return {"kind": "batch", "epoch": epoch, "batch": b, "loss": loss, "accuracy": acc}
        examples = len(self.data.x_train)
        record = {"kind": "epoch", "epoch": epoch, "loss": s[0] / s[2], "accuracy": s[1] / s[2],
                  "seen": self.seen, "train_time": self.train_time,
                  "examples_per_s": examples / s[3] if s[3] > 0 else 0.0}
        self._epoch_stats = [0.0, 0.0, 0, 0.0]
        x_val, y_val = self.data.x_test, self.data.y_test
        start, stop = share_bounds(len(y_val), self.rank, self.world)
        with self._backend():
            predicted = self.model.predict(x_val[start:stop]) if stop > start else y_val[:0]
        record["val_correct"] = int((predicted == y_val[start:stop]).sum())
        if self.world == 1:
            record["val_accuracy"] = record["val_correct"] / len(y_val)
        self.epochs.append(record)
        if epoch == self.recipe.epochs - 1:
            self.state = "done"
        return record

    def validated(self, counts: list) -> None:
        """Rank 0 of several: every replica's "val_correct" for the epoch just ended, in
        rank order -> that epoch record's "val_accuracy" on the whole test split."""
        self.epochs[-1]["val_accuracy"] = sum(int(c) for c in counts) / len(self.data.y_test)

    def stop(self) -> None:
        """End the run before its next batch (every replica must stop at the same one)."""
        if self.state == "running":
            self.state = "stopped"

    def report(self) -> dict:
        """What happened since the last report, as `session.TrainingSession.report` says
        (plus "epochs": the epoch records completed meanwhile)."""
        losses, accs, _ = self._slice
        new_epochs, self._reported = self.epochs[self._reported:], len(self.epochs)
        rate = self.seen / self.train_time if self.train_time > 0 else 0.0
        out = {
            "state": self.state, "message": self.message, "seen": self.seen,
            "total": self.total, "progress": self.seen / self.total if self.total else 0.0,
            "examples_per_s": rate, "eta_s": (self.total - self.seen) / rate if rate > 0 else None,
            "batches": len(losses),
            "loss": float(np.mean(losses)) if losses else None,
            "accuracy": float(np.mean(accs)) if accs else None,
            "epochs": [{k: v for k, v in e.items() if k != "kind"}
                       for e in new_epochs],
            "workers": self.world, "compute_s": self.compute_time, "apply_s": self.apply_time,
        }
        self._slice = ([], [], [])
        return out

    def model_bytes(self) -> bytes:
        if self.state == "diverged":
            raise RuntimeError("the run diverged: its model is not usable")
        return dumps(self.model)
