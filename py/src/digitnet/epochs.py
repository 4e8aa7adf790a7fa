"""Every training epoch's images and batch order, drawn from one seeded random stream.

Per epoch, in this order of draws: the augmented images (``augment.augment_epoch``), each
shifted (``data.grouped_shift``: image i is row ``where[i]``), then the shuffled batches.
`train.training_steps` and the data-parallel replicas read the same plans, so they train
on the same images in the same order.

``plans_ahead`` makes the same plans with the epochs after the first made one epoch ahead
in a second process (CPython on a machine with more than one core), so augmenting
overlaps training. Non-goals: the model, the optimiser, what a batch does.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .augment import augment_epoch, outline, thin
from .data import batches, grouped_shift


@dataclass
class EpochPlan:
    """One epoch: ``images`` (N, 784) float32, ``where`` (N,) the row of image i in
    ``images`` (None: row i), ``batches`` the index arrays into range(N) in training order."""
    images: np.ndarray
    where: np.ndarray | None
    batches: list[np.ndarray]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The rows of ``images`` holding images ``idx``."""
        return idx if self.where is None else self.where[idx]


def epoch_plans(x: np.ndarray, y: np.ndarray, seed: int, epochs: int, batch_size: int,
                augment: dict | None = None, shift: int = 0) -> Iterator[EpochPlan]:
    """The plan of each of ``epochs`` epochs for images x (N, 784) and labels y (N,);
    ``augment``: keywords of ``augment_epoch`` (None or empty: no augmentation)."""
    rng = np.random.default_rng(seed)
    augment = _with_precomputed(x, augment)
    for _ in range(epochs):
        xe = augment_epoch(x, y, rng, **augment) if augment else x
        xe, where = grouped_shift(xe, shift, rng) if shift else (xe, None)
        yield EpochPlan(xe, where, list(batches(len(x), batch_size, rng)))


def _with_precomputed(x: np.ndarray, augment: dict | None) -> dict | None:
    """What augmenting reads every epoch, computed once: skeletons or ink outlines."""
    if not augment or not any(augment.values()):
        return None
    if augment.get("repen_fraction"):
        return {**augment, "skeletons": thin(x.reshape(len(x), 28, 28) > 0.5)}
    if augment.get("styles"):
        return {**augment, "outlines": outline(x.reshape(len(x), 28, 28))}
    return augment


def can_plan_ahead() -> bool:
    """A second process helps: CPython (not the browser's Pyodide) with 2+ cores."""
    return sys.platform != "emscripten" and (os.cpu_count() or 1) > 1


def plans_ahead(x: np.ndarray, y: np.ndarray, seed: int, epochs: int, batch_size: int,
                augment: dict | None = None, shift: int = 0) -> Iterator[EpochPlan]:
    """``epoch_plans``, identical, with epochs 2.. made one epoch ahead in a second process
    (the first is made here while it starts). A plan's images stay valid until the plan
    after the next one is taken. Without augmentation, or where a second process cannot
    help (``can_plan_ahead``), this is ``epoch_plans``; if the second process fails, the
    rest are made here (with a RuntimeWarning). Starting it follows `multiprocessing`'s
    rules for "spawn": a script that trains this way runs under ``if __name__ ==
    "__main__":``."""
    args = (x, y, seed, epochs, batch_size, augment, shift)
    if epochs < 2 or not (augment and any(augment.values()) or shift) or not can_plan_ahead():
        yield from epoch_plans(*args)
        return
    import multiprocessing  # not in the browser's Pyodide: imported only when used here
    from multiprocessing import shared_memory

    ctx = multiprocessing.get_context("spawn")  # no fork: BLAS threads and fork do not mix
    slot = shared_memory.SharedMemory(create=True, size=x.nbytes)
    free = ctx.Semaphore(1)
    receive, send = ctx.Pipe(duplex=False)
    maker = ctx.Process(target=_make_plans, args=(send, slot.name, free, args), daemon=True)
    maker.start()
    send.close()
    own = [np.empty_like(x), np.empty_like(x)]  # plans alternate between two buffers
    try:
        here = epoch_plans(*args)
        yield next(here)
        here.close()
        shared = np.ndarray(x.shape, x.dtype, buffer=slot.buf)
        for epoch in range(1, epochs):
            try:
                message = receive.recv()
            except EOFError:
                message = ("error", "it stopped")
            if message[0] == "error":  # the same plans, made here from now on
                warnings.warn(f"the second process making the training images failed "
                              f"({message[1]}); making them in this one", RuntimeWarning)
                del shared
                rest = epoch_plans(*args)
                for _ in range(epoch):
                    next(rest)
                yield from rest
                return
            _, where, order = message
            images = own[epoch % 2]
            np.copyto(images, shared)
            free.release()  # the maker may write the next epoch
            yield EpochPlan(images, where, order)
    finally:
        shared = None  # the shared block cannot close while a view of it is alive
        maker.terminate()
        maker.join()
        receive.close()
        slot.close()
        slot.unlink()


def _make_plans(send, slot_name: str, free, args) -> None:
    """The second process: every plan after the first, its images through shared memory."""
    from multiprocessing import shared_memory

    slot = shared_memory.SharedMemory(name=slot_name)
    try:
        x = args[0]
        shared = np.ndarray(x.shape, x.dtype, buffer=slot.buf)
        plans = epoch_plans(*args)
        next(plans)  # the first is made by the trainer; its draws are replayed here
        for plan in plans:
            free.acquire()
            np.copyto(shared, plan.images)
            send.send(("plan", plan.where, plan.batches))
        del shared
    except Exception as err:  # the trainer raises it
        send.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        slot.close()
