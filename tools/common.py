"""What every build step shares: the repository's paths, the build's error, sha256 helpers."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY_DIR = ROOT / "py"
PY_SRC = PY_DIR / "src"
ASSETS = PY_SRC / "digitnet" / "assets"
NODE_MODULES = ROOT / "node_modules"
WEB = ROOT / "web"
DIST = ROOT / "dist"
CACHE = ROOT / ".cache"


class BuildError(RuntimeError):
    """A build step cannot produce a correct result; the message says what and why."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with every argument turned into a string (Paths welcome)."""
    return subprocess.run([str(c) for c in cmd], **kw)
