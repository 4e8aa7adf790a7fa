"""Per-layer forward/backward milliseconds of the CNN training step on one batch.

Run with one BLAS thread, e.g.
``OPENBLAS_NUM_THREADS=1 PYTHONPATH=py/src python3 tools/profile_cnn.py --batch 256``.
Prints each layer's median forward and backward time over ``--repeats`` batches (run in
slices of ``--slice`` examples, as training does), and the whole step (forward, loss,
backward, SGD update).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from digitnet.losses import softmax_cross_entropy
from digitnet.model import SLICE, cnn
from digitnet.optim import SGD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--slice", type=int, default=0,
                        help="examples per forward/backward slice (0: digitnet.model.SLICE)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 784), dtype=np.float32)
    t = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch)]
    model = cnn(seed=0)
    body = model._body()   # the order training runs them in
    first = next(i for i, layer in enumerate(body) if layer.params())
    optimizer = SGD(model.parameters(), lr=1e-3)
    step = args.slice or SLICE
    fwd = [[] for _ in body]
    bwd = [[] for _ in body]
    steps = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.zero_grad()
        for i in range(len(body)):
            fwd[i].append(0.0)
            bwd[i].append(0.0)
        for s in range(0, args.batch, step):
            h = x[s:s + step]
            for i, layer in enumerate(body):
                t0 = time.perf_counter()
                h = layer.forward(h, True)
                fwd[i][-1] += time.perf_counter() - t0
            _, d = softmax_cross_entropy(h, t[s:s + step], "sum")
            for i in reversed(range(len(body))):
                t0 = time.perf_counter()
                if i == first:
                    body[i].backward_params(d)
                    bwd[i][-1] += time.perf_counter() - t0
                    break
                d = body[i].backward(d)
                bwd[i][-1] += time.perf_counter() - t0
        optimizer.step()
        steps.append(time.perf_counter() - start)
    ms = lambda v: 1e3 * statistics.median(v) if v else 0.0  # noqa: E731
    total_f = total_b = 0.0
    for i, layer in enumerate(body):
        f, b = ms(fwd[i]), ms(bwd[i])
        total_f, total_b = total_f + f, total_b + b
        print(f"{i:2d} {type(layer).__name__:10s} fwd {f:7.2f} ms  bwd {b:7.2f} ms")
    step = ms(steps)
    print(f"layers fwd {total_f:.1f} + bwd {total_b:.1f} ms; step {step:.1f} ms "
          f"= {args.batch / step * 1e3:,.0f} examples/s")


if __name__ == "__main__":
    main()
