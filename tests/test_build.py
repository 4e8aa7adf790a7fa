"""Checks of the built site in dist/ and of the build's verification and server (tools/).

The dist/ checks need a build (`python3 build.py build`; `python3 build.py test` does it)
and fail if there is none.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"

from tools.common import BuildError
from tools.devserver import make_server
from tools.pycompile import COMPILED_PACKAGES, STDLIB_ZIP, compiled_name
from tools.pyodide_packages import (PYODIDE_CORE_FILES, PYODIDE_NPM, SourceUnavailable,
                                    resolve_package)
from tools.wheel import build_wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dist_files() -> set[str]:
    return {p.relative_to(DIST).as_posix() for p in DIST.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def manifest() -> dict:
    path = DIST / "build-manifest.json"
    if not path.exists():
        pytest.fail("dist/build-manifest.json is missing: run `python3 build.py build`", pytrace=False)
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def lock() -> dict:
    return json.loads((DIST / "pyodide" / "pyodide-lock.json").read_text())


# ---------------------------------------------------------------- the manifest

def test_manifest_lists_every_file_with_its_hash(manifest):
    files = manifest["files"]
    assert set(files) == dist_files() - {"build-manifest.json"}
    for rel, info in files.items():
        path = DIST / rel
        assert path.stat().st_size == info["bytes"], rel
        assert sha256(path) == info["sha256"], rel


def test_manifest_points_at_real_files(manifest):
    assert re.fullmatch(r"[0-9a-f]{16}", manifest["version"])
    assert re.fullmatch(r"wheels/digitnet-[^/]+-py3-none-any\.whl", manifest["wheel"])
    assert (DIST / manifest["wheel"]).is_file()
    assert set(manifest["models"]) >= {"mlp"}
    for rel in manifest["models"].values():
        assert (DIST / rel).is_file() and rel.startswith("models/")
    assert manifest["pyodide"]["packages"] == ["numpy"]
    assert "scipy" in manifest["pyodide"]["training_packages"]
    assert (DIST / ".nojekyll").exists()
    assert (DIST / "vendor" / "chart.umd.js").is_file()


def test_pyodide_runtime_is_the_npm_one(manifest):
    for name in set(PYODIDE_CORE_FILES) - {STDLIB_ZIP, "pyodide-lock.json"}:
        assert sha256(DIST / "pyodide" / name) == sha256(PYODIDE_NPM / name), name


def test_served_lock_is_npms_but_for_the_compiled_wheels(lock):
    npm = json.loads((PYODIDE_NPM / "pyodide-lock.json").read_text())
    lock = json.loads(json.dumps(lock))   # a copy: the fixture is shared
    for name in COMPILED_PACKAGES:
        for entry in (npm, lock):
            del entry["packages"][name]["file_name"], entry["packages"][name]["sha256"]
    assert lock == npm


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def _check_compiled(original: dict[str, bytes], compiled: dict[str, bytes], magic: bytes):
    """Every .py member of ``original`` is a sourceless unchecked-hash .pyc for the page's
    Python in ``compiled``; every other member is the same bytes (RECORD aside)."""
    sources = {n for n in original if n.endswith(".py")}
    assert sources, "nothing to compile"
    others = {n for n in original if n not in sources and not n.endswith("RECORD")}
    assert set(compiled) - {n for n in compiled if n.endswith("RECORD")} == \
        others | {n[:-3] + ".pyc" for n in sources}
    for n in others:
        assert compiled[n] == original[n], n
    for n in sources:
        pyc = compiled[n[:-3] + ".pyc"]
        assert pyc[:4] == magic and pyc[4:8] == (1).to_bytes(4, "little"), n


def test_standard_library_numpy_and_scipy_are_compiled_from_the_verified_files(manifest, lock):
    from tools.pyodide_packages import PACKAGE_CACHE

    # The bytecode is for the Python in pyodide.asm.wasm: its magic number is the one
    # Pyodide's own Python writes (tools/pycompile_inside.py asks importlib for it).
    magic = _members(DIST / "pyodide" / STDLIB_ZIP)["os.pyc"][:4]
    assert magic[2:] == b"\r\n"
    _check_compiled(_members(PYODIDE_NPM / STDLIB_ZIP), _members(DIST / "pyodide" / STDLIB_ZIP), magic)
    npm = json.loads((PYODIDE_NPM / "pyodide-lock.json").read_text())
    for name in COMPILED_PACKAGES:
        source = PACKAGE_CACHE / npm["packages"][name]["file_name"]
        assert sha256(source) == npm["packages"][name]["sha256"]
        served = DIST / "pyodide" / lock["packages"][name]["file_name"]
        assert served.name == compiled_name(source.name) != source.name
        members = _members(served)
        _check_compiled(_members(source), members, magic)
        record = next(v for n, v in members.items() if n.endswith(".dist-info/RECORD")).decode()
        assert len(record.splitlines()) == len(members)


def test_pyodide_packages_match_the_lock(manifest, lock):
    assert lock["info"]["version"] == "0.27.7"
    names = manifest["pyodide"]["packages"] + manifest["pyodide"]["training_packages"]
    for name in names:
        entry = lock["packages"][name]
        path = DIST / "pyodide" / entry["file_name"]
        assert path.is_file(), f"{entry['file_name']} missing from dist/pyodide/"
        assert sha256(path) == entry["sha256"], entry["file_name"]
    # every dependency the page would ask loadPackage for is there too
    for name in names:
        for dep in lock["packages"][name]["depends"]:
            assert dep in names, f"{name} depends on {dep}, which is not in dist"
    npm = json.loads((PYODIDE_NPM / "pyodide-lock.json").read_text())
    assert npm["packages"]["numpy"]["sha256"] == \
        "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"


def test_micropip_is_kept_verified_in_the_cache_but_not_served(manifest, lock):
    from tools.pyodide_packages import PACKAGE_CACHE

    for name in ("micropip", "packaging"):
        entry = lock["packages"][name]
        assert not (DIST / "pyodide" / entry["file_name"]).exists()
        assert f"pyodide/{entry['file_name']}" not in manifest["files"]
        assert sha256(PACKAGE_CACHE / entry["file_name"]) == entry["sha256"]


def test_wheel_ships_the_data(manifest):
    with zipfile.ZipFile(DIST / manifest["wheel"]) as z:
        names = z.namelist()
        assert "digitnet/__init__.py" in names
        assert "digitnet/assets/mnist10k.u8.gz" in names
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "Requires-Dist: numpy" in z.read(metadata).decode()
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


# ---------------------------------------------------------------- service worker + URLs

def test_service_worker_precaches_the_whole_build(manifest):
    if not (ROOT / "web" / "sw.js").exists():
        pytest.skip("web/sw.js has not been written yet")
    sw = (DIST / "sw.js").read_text()
    for placeholder in ("__BUILD_VERSION__", "__PRECACHE__", "__OPTIONAL__"):
        assert placeholder not in sw
    assert manifest["version"] in sw
    assert json.dumps(manifest["precache"]) in sw
    optional = set(manifest["optional"])
    assert set(manifest["precache"]) | optional == dist_files() - {"sw.js", ".nojekyll"}
    assert not set(manifest["precache"]) & optional
    # the lazily cached extras are exactly the training packages
    lock = json.loads((DIST / "pyodide" / "pyodide-lock.json").read_text())
    assert optional == {f"pyodide/{lock['packages'][n]['file_name']}"
                        for n in manifest["pyodide"]["training_packages"]}


ABSOLUTE = re.compile(r"""(?:src|href|action)\s*=\s*["']/|url\(\s*["']?/|https?://|"""
                      r"""(?:from|import)\s*\(?\s*["']/""")
NAMESPACES = re.compile(r"http://www\.w3\.org/[\w/.-]*")


def test_no_absolute_urls_in_our_files():
    authored = [p for p in DIST.rglob("*")
                if p.suffix in (".html", ".js", ".mjs", ".css", ".webmanifest")
                and p.relative_to(DIST).parts[0] not in ("vendor", "pyodide")]
    assert authored
    bad = []
    for path in authored:
        text = NAMESPACES.sub("", path.read_text(errors="replace"))
        for m in ABSOLUTE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            bad.append(f"{path.relative_to(DIST)}:{line}: {m.group(0)}")
    assert not bad, "absolute URLs:\n" + "\n".join(bad)


def test_benchmark_only_tensorflow_js_is_never_shipped():
    """TF.js is a pinned devDependency for the benchmark's comparison page, not part of the site:
    no file of dist/ is named after it, is one of its files, or refers to it."""
    package = json.loads((ROOT / "package.json").read_text())
    dev = package.get("devDependencies", {})
    assert {"@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm"} <= set(dev)
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in dev.values()), f"not pinned exactly: {dev}"
    assert not set(dev) & set(package.get("dependencies", {}))
    tfjs_dists = [ROOT / "node_modules" / "@tensorflow" / n / "dist" for n in ("tfjs", "tfjs-backend-wasm")]
    theirs = {sha256(p) for d in tfjs_dists for p in d.glob("*")
              if p.suffix in (".js", ".wasm") and p.stat().st_size}
    assert len(theirs) > 5, "TF.js is not installed in node_modules (npm ci)"
    files = sorted(DIST.rglob("*"))
    assert any(p.suffix == ".wasm" for p in files)  # the scan sees the build's binaries
    for path in files:
        rel = path.relative_to(DIST).as_posix()
        assert not re.search(r"tfjs|tensorflow", rel, re.IGNORECASE), rel
        if path.is_file():
            assert sha256(path) not in theirs, f"{rel} is a TF.js file"
            if path.suffix in (".html", ".js", ".mjs", ".json", ".webmanifest"):
                assert "@tensorflow" not in path.read_text(errors="replace"), f"{rel} refers to TF.js"


# ---------------------------------------------------------------- verification

NUMPY = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
NUMPY_SHA = "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"


class FakeSource:
    def __init__(self, data: bytes | None, name="fake source"):
        self.data, self.name, self.calls = data, name, 0

    def fetch(self, file_name):
        self.calls += 1
        if self.data is None:
            raise SourceUnavailable("offline")
        return self.data


def test_resolve_rejects_a_corrupted_cached_file(tmp_path):
    (tmp_path / NUMPY).write_bytes(b"not numpy")
    bad = hashlib.sha256(b"not numpy").hexdigest()
    source = FakeSource(b"")
    with pytest.raises(BuildError) as e:
        resolve_package(NUMPY, NUMPY_SHA, cache_dir=tmp_path, sources=[source])
    message = str(e.value)
    assert NUMPY in message and NUMPY_SHA in message and bad in message
    assert source.calls == 0


def test_resolve_rejects_wrong_bytes_from_a_source_and_caches_nothing(tmp_path):
    wrong = FakeSource(b"tampered", name="mirror")
    later = FakeSource(b"also wrong")
    with pytest.raises(BuildError, match="mirror") as e:
        resolve_package(NUMPY, NUMPY_SHA, cache_dir=tmp_path, sources=[wrong, later])
    assert NUMPY_SHA in str(e.value) and hashlib.sha256(b"tampered").hexdigest() in str(e.value)
    assert later.calls == 0
    assert list(tmp_path.iterdir()) == []


def test_resolve_names_what_is_missing(tmp_path):
    with pytest.raises(BuildError) as e:
        resolve_package(NUMPY, NUMPY_SHA, cache_dir=tmp_path,
                        sources=[FakeSource(None, "A"), FakeSource(None, "B")])
    message = str(e.value)
    assert NUMPY in message and "A: offline" in message and "B: offline" in message


def test_resolve_falls_through_to_a_source_with_the_right_bytes(tmp_path):
    data = b"payload"
    good = hashlib.sha256(data).hexdigest()
    src = FakeSource(data)
    path = resolve_package("x.whl", good, cache_dir=tmp_path,
                           sources=[FakeSource(None), src])
    assert path.read_bytes() == data and path.parent == tmp_path
    # cached now: no source asked again
    assert resolve_package("x.whl", good, cache_dir=tmp_path, sources=[src]) == path
    assert src.calls == 1


def test_wheel_build_is_reproducible(tmp_path, manifest):
    first = build_wheel(cache_dir=tmp_path / "a")
    second = build_wheel(cache_dir=tmp_path / "b")
    assert first.name == second.name == Path(manifest["wheel"]).name
    assert sha256(first) == sha256(second)


# ---------------------------------------------------------------- serving

@pytest.fixture
def served(tmp_path):
    for name, data in {"a.wasm": b"\0asm", "b.gz": b"\x1f\x8b\x08\0", "c.mjs": b"export {}",
                       "d.webmanifest": b"{}", "e.whl": b"PK", "index.html": b"<title>t</title>"}.items():
        (tmp_path / name).write_bytes(data)
    server = make_server(tmp_path, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name, mime", [
    ("a.wasm", "application/wasm"),
    ("b.gz", "application/octet-stream"),
    ("c.mjs", "text/javascript"),
    ("d.webmanifest", "application/manifest+json"),
    ("e.whl", "application/octet-stream"),
    ("index.html", "text/html"),
])
def test_server_mime_types(served, tmp_path, name, mime):
    with urllib.request.urlopen(served + name) as r:
        assert r.headers.get_content_type() == mime
        assert r.headers.get("Content-Encoding") is None  # a .gz stays bytes
        assert r.read() == (tmp_path / name).read_bytes()


def test_server_serves_the_real_runtime_as_wasm(manifest):
    server = make_server(DIST, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/pyodide/pyodide.asm.wasm"
        with urllib.request.urlopen(url) as r:
            assert r.headers.get_content_type() == "application/wasm"
            assert int(r.headers["Content-Length"]) == manifest["files"]["pyodide/pyodide.asm.wasm"]["bytes"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name, encoded", [("a.wasm", True), ("c.mjs", True), ("index.html", True),
                                           ("b.gz", False), ("e.whl", False)])
def test_server_gzips_text_and_wasm_for_browsers_that_accept_it(served, tmp_path, name, encoded):
    request = urllib.request.Request(served + name, headers={"Accept-Encoding": "gzip, deflate"})
    with urllib.request.urlopen(request) as r:
        body = r.read()
        assert (r.headers.get("Content-Encoding") == "gzip") is encoded
        assert int(r.headers["Content-Length"]) == len(body)
    assert (gzip.decompress(body) if encoded else body) == (tmp_path / name).read_bytes()


def test_build_never_replaces_a_folder_that_is_not_a_build(tmp_path):
    import build

    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "todo.txt").write_text("mine")
    with pytest.raises(BuildError, match="holds no build"):
        build.build(verbose=False, out=keep)
    with pytest.raises(BuildError, match="is not a folder"):
        build.build(verbose=False, web=tmp_path / "missing", out=tmp_path / "site")
    assert (keep / "todo.txt").read_text() == "mine" and not (tmp_path / "site").exists()
