"""The digitnet wheel the site serves: `pip wheel` of a clean copy of py/, reproducible bytes."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from .common import CACHE, PY_DIR, ROOT, BuildError, run

WHEEL_CACHE = CACHE / "wheels"
# Fixed wheel timestamps (1980-01-01, the earliest a zip can store): same source, same bytes.
SOURCE_DATE_EPOCH = "315532800"
BUNDLE_MEMBER = "digitnet/assets/mnist10k.u8.gz"


def _py_tree_files() -> list[Path]:
    """The files of py/ a wheel is built from (sources, metadata, generated assets)."""
    skip_dirs = {"build", "dist", "__pycache__", ".pytest_cache"}
    out = []
    for dirpath, dirnames, filenames in os.walk(PY_DIR):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in skip_dirs and not d.endswith(".egg-info") and not d.startswith("."))
        for f in sorted(filenames):
            if not f.endswith((".pyc", ".pyo")) and not f.startswith("."):
                out.append(Path(dirpath) / f)
    return out


def _pinned_setuptools() -> str:
    for line in (ROOT / "requirements-build.txt").read_text().splitlines():
        if line.strip().lower().startswith("setuptools=="):
            return line.split("==", 1)[1].strip()
    raise BuildError("requirements-build.txt does not pin setuptools")


def _installed_setuptools() -> str | None:
    try:
        from importlib.metadata import version
        return version("setuptools")
    except Exception:
        return None


def build_wheel(cache_dir: Path = WHEEL_CACHE) -> Path:
    """pip wheel of a clean copy of py/ (cached by the content of py/)."""
    if not (PY_DIR / "pyproject.toml").exists():
        raise BuildError("py/pyproject.toml is missing")
    files = _py_tree_files()
    # The wheel's bytes depend on the build backend's version too: always build with the
    # pinned setuptools (this interpreter's if it is that one, else an isolated build env
    # constrained to it).
    setuptools = _pinned_setuptools()
    h = hashlib.sha256(f"{SOURCE_DATE_EPOCH} setuptools=={setuptools}".encode())
    for f in files:
        h.update(str(f.relative_to(PY_DIR)).encode() + b"\0" + f.read_bytes() + b"\0")
    out_dir = Path(cache_dir) / h.hexdigest()[:20]
    found = sorted(out_dir.glob("digitnet-*.whl"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="digitnet-wheel-") as tmp:
        src = Path(tmp) / "py"
        for f in files:  # a clean copy: no stale build/ or egg-info can leak into the wheel
            dst = src / f.relative_to(PY_DIR)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
        wheelhouse = Path(tmp) / "wheelhouse"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
               "-w", wheelhouse, src]
        env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH, PYTHONHASHSEED="0")
        if _installed_setuptools() == setuptools:
            cmd.insert(5, "--no-build-isolation")
        else:  # pip honours PIP_CONSTRAINT when it installs the isolated build requirements
            env["PIP_CONSTRAINT"] = str(ROOT / "requirements-build.txt")
        proc = run(cmd, capture_output=True, text=True, env=env)
        wheels = sorted(wheelhouse.glob("digitnet-*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise BuildError("building the digitnet wheel failed:\n" + proc.stdout + proc.stderr)
        with zipfile.ZipFile(wheels[0]) as z:
            if BUNDLE_MEMBER not in z.namelist():
                raise BuildError(f"{wheels[0].name} lacks {BUNDLE_MEMBER} "
                                 "(package-data in py/pyproject.toml?)")
        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / wheels[0].name
        shutil.copyfile(wheels[0], final.with_name(final.name + ".part"))
        final.with_name(final.name + ".part").replace(final)
    return final
