"""What both sides of the benchmark share: the run sizes, FLOPs per example, paired runs."""
from __future__ import annotations

import math
import time

import numpy as np
from digitnet.bench import summary

# Repetitions: (full, quick).
REPS = {
    # matmul_gflops repeats per burst (each = the six matmuls of a batch): ~1 s bursts
    "matmul_cpython": (60, 10),
    "matmul_numpy": (5, 2),
    "matmul_sgemm": (20, 5),
    "train": (3, 1),            # training_throughput repeats
    "cold": (3, 1),             # cold loads, each in a fresh context
    "warm": (5, 1),             # warm reloads
    "drawings": (60, 6),        # drawings for the latency
}
# Training runs: (limit of training examples, epochs); None = all 8,000.
TRAIN_SIZES = {
    "mlp": {"full": (None, 1), "quick": (1024, 1)},
    "cnn": {"full": (2000, 1), "quick": (256, 1)},
}
MEMORY_RUN = {"full": (None, 10), "quick": (256, 10)}  # (limit, epochs)
PANEL_EPOCHS = (10, 1)  # the training panel's run of the tutorial MLP on all 8,000 digits
KINDS = ("wasm", "js", "python", "data", "model", "other")  # bytes on the wire, by kind of file


def layer_macs(model: str) -> list[int]:
    """Multiply-adds of each product layer for one example, in order, from the layer shapes:
    Linear W (n_in, n_out): n_in * n_out; Conv2D W (F, C, k, k) with an (F, H, W) output:
    H * W * F * C * k * k (im2col). Output sizes come from a forward pass of one blank digit."""
    from digitnet.model import cnn, mlp

    net = {"mlp": mlp, "cnn": cnn}[model]()
    x = np.zeros((1, 784), np.float32)
    macs = []
    for layer in net.layers:
        out = layer.forward(x)
        w = getattr(layer, "W", None)
        if w is not None:
            shape = w.value.shape
            if len(shape) == 2:       # Linear
                macs.append(shape[0] * shape[1])
            else:                     # Conv2D: one (C*k*k)-long dot product per output value
                macs.append(out[0].size * int(np.prod(shape[1:])))
        x = out
    return macs


def flops_per_example(model: str) -> int:
    """FLOPs of one training example: each product layer forward once and backward twice
    (dW, dx), 2 FLOPs per multiply-add, minus the first layer's dx, which `fit` does not
    compute (the input's gradient is not needed): the work training actually does."""
    macs = layer_macs(model)
    return 2 * 3 * sum(macs) - 2 * macs[0]


def paired_runs(matmul_burst, train_once, model: str, reps: int) -> dict:
    """`reps` pairs of (a matmul burst, one training run) measured back to back, so each
    training rate is compared with the limit measured under the same machine load.

    matmul_burst() -> digitnet.bench.matmul_gflops summary; train_once() ->
    digitnet.bench.training_throughput result (1 repeat)."""
    flops = flops_per_example(model)
    bursts, rates, ratios = [], [], []
    for _ in range(reps):
        g = matmul_burst()["median"]
        r = train_once()
        bursts.append(g)
        rates.append(r["median"])
        ratios.append(r["median"] * flops / (g * 1e9))
    return {"examples_per_s": summary(rates), "matmul_bursts_gflops": bursts,
            "ratio_to_limit": summary(ratios), "examples": r["examples"], "epochs": r["epochs"],
            "batch_size": r["batch_size"], "flops_per_example": flops}


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in (0, 100])."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)
