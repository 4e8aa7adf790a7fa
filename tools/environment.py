"""Setting up a machine for the build and the tests, in one place.

    npm_ci()                  node_modules/ from the committed package-lock.json
    ensure_venv()             .venv/ with the pinned requirements-dev.txt
    ensure_system_packages()  Debian's chromium (the browser tests' browser) and npm

`build.py build` calls npm_ci; `build.py test` and `build.py bench` (and so .ci/run,
which runs `build.py test`) call all three. Each step does nothing when already done.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .common import NODE_MODULES, ROOT, BuildError, run, sha256_bytes

VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements-dev.txt"
CHROMIUM = Path(os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium"))


def npm_ci() -> None:
    """Install the pinned npm packages from the committed lock file (skipped when current)."""
    stamp = NODE_MODULES / ".package-lock.json"
    lock = ROOT / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    if shutil.which("npm") is None:
        raise BuildError("npm is not installed (Debian: apt-get install -y nodejs npm)")
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


def ensure_venv() -> Path:
    """.venv with the pinned requirements-dev.txt installed (re-installed when it changes)."""
    py = VENV / "bin" / "python"
    stamp = VENV / ".digitnet-requirements"
    want = sha256_bytes(b"".join(p.read_bytes() for p in sorted(ROOT.glob("requirements-*.txt"))))
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return py
    if not py.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        if run([sys.executable, "-m", "venv", VENV]).returncode != 0:
            # Debian without python3-venv has no ensurepip: make it bare, install with our pip.
            shutil.rmtree(VENV, ignore_errors=True)
            run([sys.executable, "-m", "venv", "--without-pip", VENV], check=True)
    has_pip = run([py, "-m", "pip", "--version"], capture_output=True).returncode == 0
    pip = [py, "-m", "pip"] if has_pip else [sys.executable, "-m", "pip", "--python", py]
    run([*pip, "install", "--disable-pip-version-check", "-q", "-r", REQUIREMENTS], check=True)
    stamp.write_text(want)
    return py


def ensure_system_packages() -> None:
    """Debian's chromium (never a downloaded browser) and npm, installed only when missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append("chromium")
    if shutil.which("npm") is None:
        missing += ["nodejs", "npm"]
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BuildError(f"missing {', '.join(missing)}; install them (Debian: "
                         f"sudo apt-get install -y {' '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update"], check=True, env=env)
    run(["apt-get", "install", "-y", *missing], check=True, env=env)


def ensure_test_environment() -> Path:
    """Everything `build.py test` needs; returns .venv's Python."""
    py = ensure_venv()
    ensure_system_packages()
    return py
