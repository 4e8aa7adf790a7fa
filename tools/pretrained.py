"""The pretrained models dist/ ships, trained here in CPython and cached by what made them."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .common import ASSETS, CACHE, PY_SRC, ROOT, BuildError, sha256_file

MODEL_CACHE = CACHE / "models"

# dist/models/<name>.npz: name -> `python -m digitnet` args (the build appends `--out FILE`).
PRETRAINED_MODELS = {
    "mlp": ("train", "--model", "mlp", "--recipe", "default"),
    "cnn": ("train", "--model", "cnn", "--recipe", "default"),
}
# The pad's model on a first visit (the worker loads it at start): the most accurate one
# that keeps stroke->probabilities p95 <= 60 ms and a cold load <= 4 s (measured with
# tools/measure_pad_models.py).
DEFAULT_PAD_MODEL = "cnn"


def model_cache_key(argv) -> str:
    """sha256 over the digitnet sources, the data bundle and the command line."""
    h = hashlib.sha256()
    pkg = PY_SRC / "digitnet"
    for f in sorted(pkg.rglob("*.py")):
        if "__pycache__" not in f.parts:
            h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes() + b"\0")
    for f in sorted(ASSETS.glob("*.gz")):
        h.update(f.name.encode() + b"\0" + sha256_file(f).encode())
    h.update(json.dumps(list(argv)).encode())
    return h.hexdigest()[:20]


def build_model(name: str, argv, cache_dir: Path = MODEL_CACHE) -> Path:
    """Train (or reuse) the pretrained model `name` with `python -m digitnet *argv --out F`."""
    out_dir = Path(cache_dir) / model_cache_key(argv)
    final = out_dir / f"{name}.npz"
    if final.exists():
        return final
    out_dir.mkdir(parents=True, exist_ok=True)
    part = out_dir / f"{name}.part.npz"
    cmd = [sys.executable, "-m", "digitnet", *argv, "--out", str(part)]
    print(f"  training {name}: python -m digitnet {' '.join(argv)}", flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PY_SRC), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    log = []
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            log.append(line)
            print("    " + line.rstrip(), flush=True)
    (out_dir / f"{name}.log").write_text("".join(log))
    if proc.returncode != 0 or not part.exists():
        raise BuildError(f"training the pretrained model {name!r} failed (exit {proc.returncode}): "
                         f"{' '.join(cmd)}")
    part.replace(final)
    print(f"  trained {name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return final
