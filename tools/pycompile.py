"""Pyodide's standard library and its numpy and scipy wheels, with bytecode for source.

Pyodide 0.27.7 ships these as .py files only, so every worker that starts (the pad's,
and each training worker) compiles them again. Measured in Node: the runtime's start
1,860 -> 790 ms (Python's own start-up imports), ``import numpy`` 415 -> 175 ms,
``import scipy.linalg.blas`` (training) 970 -> 390 ms. The build compiles them once with
Pyodide's own Python, run in Node (tools/pycompile.mjs, tools/pycompile_inside.py): each
.py member becomes a sourceless, unchecked-hash .pyc; every other member is copied byte
for byte. The inputs are the verified npm runtime and lock-verified wheels
(`pyodide_packages`). The compiled wheels get a "1pyc" build tag in their names, and the
site serves a pyodide-lock.json whose entries for them give those names and sha256 (which
Pyodide checks when it loads them). The digitnet wheel stays source: it is a
py3-none-any wheel anyone can install.
"""
from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

from .common import CACHE, ROOT, BuildError, run, sha256_file
from .pyodide_packages import PYODIDE_NPM, PYODIDE_VERSION

COMPILED_PACKAGES = ("numpy", "scipy")
STDLIB_ZIP = "python_stdlib.zip"
BUILD_TAG = "1pyc"
PYC_CACHE = CACHE / "pyodide-compiled"
SCRIPTS = (ROOT / "tools" / "pycompile.mjs", ROOT / "tools" / "pycompile_inside.py")


def compiled_name(file_name: str) -> str:
    """numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl ->
    numpy-2.0.2-1pyc-cp312-cp312-pyodide_2024_0_wasm32.whl (a wheel build tag)."""
    name, version, rest = file_name.split("-", 2)
    return f"{name}-{version}-{BUILD_TAG}-{rest}"


def _compile(inputs: dict[str, Path]) -> dict[str, Path]:
    """{output file name: input zip} -> {output file name: compiled zip}, cached by the
    inputs' bytes, the compiler scripts and the Pyodide version."""
    h = hashlib.sha256(PYODIDE_VERSION.encode())
    for f in SCRIPTS:
        h.update(f.read_bytes())
    for name, path in sorted(inputs.items()):
        h.update(f"{name}\0{sha256_file(path)}\0".encode())
    out_dir = PYC_CACHE / h.hexdigest()[:20]
    outputs = {name: out_dir / name for name in inputs}
    if all(p.exists() for p in outputs.values()):
        return outputs
    if shutil.which("node") is None:
        raise BuildError("node is not installed (Debian: apt-get install -y nodejs npm); "
                         "the build runs Pyodide in Node to compile its Python")
    print("  compiling Pyodide's standard library, numpy and scipy to bytecode ...", flush=True)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # A .whl suffix on the input is what tells the compiler a zip is a wheel.
    args = [a for name, src in inputs.items() for a in (src, tmp / name)]
    proc = run(["node", SCRIPTS[0], PYODIDE_NPM, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError("compiling Pyodide's Python to bytecode failed: "
                         + (proc.stderr or proc.stdout).strip()[-2000:])
    for src, result in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        if result["kept"]:
            print(f"  {Path(src).name}: {len(result['kept'])} module(s) do not compile and "
                  f"stay source: {', '.join(result['kept'][:5])}", flush=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return outputs


def compile_runtime(lock: dict, wheels: dict[str, Path]) -> tuple[dict, Path, dict[str, Path]]:
    """(the lock naming the compiled wheels, the compiled standard library zip,
    {package: compiled wheel}) for ``wheels`` ({lock package name: its verified wheel});
    only COMPILED_PACKAGES among them are compiled."""
    names = [n for n in COMPILED_PACKAGES if n in wheels]
    file_names = {n: compiled_name(lock["packages"][n]["file_name"]) for n in names}
    outputs = _compile({STDLIB_ZIP: PYODIDE_NPM / STDLIB_ZIP,
                        **{file_names[n]: wheels[n] for n in names}})
    new_lock = copy.deepcopy(lock)
    for n in names:
        path = outputs[file_names[n]]
        new_lock["packages"][n].update(file_name=path.name, sha256=sha256_file(path))
    return new_lock, outputs[STDLIB_ZIP], {n: outputs[file_names[n]] for n in names}
