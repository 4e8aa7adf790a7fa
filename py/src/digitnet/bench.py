"""Speed measurements that run the same way in CPython and in Pyodide.

``python3 -m digitnet.bench`` prints, as JSON, the float32 matmul rate at the MLP's
shapes (the limit for training), and the training throughput of recipes measured over
whole epochs of the bundled data (augmentation and bookkeeping included). Each figure is
the median of several repetitions, with min and max.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np

from . import data
from .recipes import get_recipe
from .train import fit_recipe

# Forward + backward matmuls of one batch of the 784-256-128-10 MLP, per example:
# forward n_in*n_out each, backward twice that (dx and dW), 2 FLOPs per multiply-add.
MLP_FLOPS_PER_EXAMPLE = 2 * 3 * (784 * 256 + 256 * 128 + 128 * 10)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def matmul_gflops(batch: int = 256, repeats: int = 5, matmul=np.matmul) -> dict:
    """GFLOP/s of the MLP's training matmuls at ``batch`` rows, float32."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    w1 = rng.random((784, 256), dtype=np.float32)
    w2 = rng.random((256, 128), dtype=np.float32)
    # Six matmuls below, each 2 * batch * n_in * n_out FLOPs; the 128->10 layer (~1%) is left out.
    flops = 3 * 2 * batch * (784 * 256 + 256 * 128)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        h = matmul(x, w1)                # forward layer 1   (N, 256)
        g = matmul(h, w2)                # forward layer 2   (N, 128)
        matmul(g, w2.T)                  # backward dx 2
        matmul(h.T, g)                   # backward dW 2
        matmul(h, w1.T)                  # backward dx 1
        matmul(x.T, h)                   # backward dW 1
        rates.append(flops / (time.perf_counter() - start) / 1e9)
    return summary(rates)


def subset(ds: data.Dataset, limit: int | None, n_test: int | None = 200) -> data.Dataset:
    """About ``limit`` training digits (every k-th: the bundle is grouped by class, so a
    strided subset keeps every class) and the first ``n_test`` test digits (None: all).
    No limit: ``ds`` itself."""
    if not limit:
        return ds
    step = max(1, len(ds.x_train) // int(limit))
    return data.Dataset(ds.x_train[::step], ds.y_train[::step], ds.x_test[:n_test], ds.y_test[:n_test])


def training_throughput(model: str = "mlp", recipe: str = "default", epochs: int = 2,
                        repeats: int = 3, limit: int | None = None,
                        dataset: data.Dataset | None = None, **overrides) -> dict:
    """Examples per second of ``fit`` for a recipe on the bundled training split (or
    ``dataset``), cut to about ``limit`` examples if given."""
    ds = subset(dataset if dataset is not None else data.load_bundle(), limit)
    r = get_recipe(model, recipe).with_overrides(epochs=epochs, **overrides)
    rates = []
    for _ in range(repeats):
        _, history = fit_recipe(r, ds)
        last = history.epochs[-1]
        rates.append(last["seen"] / last["train_time"])  # validation passes excluded
    return {**summary(rates), "batch_size": r.batch_size, "epochs": epochs,
            "examples": len(ds.x_train)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m digitnet.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cnn", action="store_true", help="also measure the CNN (slower)")
    args = parser.parse_args(argv)
    results = {
        "python": sys.version.split()[0], "numpy": np.__version__, "machine": platform.machine(),
        "matmul_gflops_f32_batch256": matmul_gflops(repeats=5 * args.repeats),
        "mlp_default_examples_per_s": training_throughput("mlp", "default", repeats=args.repeats),
        "mlp_tutorial_examples_per_s": training_throughput("mlp", "tutorial", repeats=args.repeats),
    }
    if args.cnn:
        results["cnn_default_examples_per_s"] = training_throughput("cnn", "default", epochs=1,
                                                                    repeats=args.repeats)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
