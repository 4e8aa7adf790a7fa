"""Tests for tools/pycompile_inside.py, the compiler the build runs inside Pyodide to swap
the sources in Pyodide's zips for bytecode. It is standard-library Python, so CPython runs
it here: the compiled modules must import without their sources and behave the same,
every other member must be kept byte for byte, a wheel's RECORD must be right, and the
same input must give the same bytes."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import sys
import zipfile

import pytest

from tools.pycompile import compiled_name
from tools.pycompile_inside import compile_archive

SOURCES = {
    "pkg/__init__.py": b"from .core import answer\n",
    "pkg/core.py": b'"""Doc."""\ndef answer():\n    return 6 * 7\n\ndef fail():\n    raise ValueError("boom")\n',
    "pkg/broken.py": b"def (:\n",   # does not compile: must stay source
    "pkg/data.txt": b"not python\n",
    "pkg-1.0.dist-info/METADATA": b"Name: pkg\nVersion: 1.0\n",
    "pkg-1.0.dist-info/RECORD": b"stale\n",
}


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


def read(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


@pytest.fixture
def compiled(tmp_path):
    src = make_zip(tmp_path / "pkg-1.0-py3-none-any.whl", SOURCES)
    out = tmp_path / "out.whl"
    report = compile_archive(str(src), str(out), "/site")
    return report, out


def test_sources_become_bytecode_and_the_rest_is_kept(compiled):
    report, out = compiled
    members = read(out)
    assert report == {"compiled": 2, "kept": ["pkg/broken.py"]}
    assert set(members) == {"pkg/__init__.pyc", "pkg/core.pyc", "pkg/broken.py", "pkg/data.txt",
                            "pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/RECORD"}
    for name in ("pkg/broken.py", "pkg/data.txt", "pkg-1.0.dist-info/METADATA"):
        assert members[name] == SOURCES[name]
    pyc = members["pkg/core.pyc"]
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert pyc[4:8] == (1).to_bytes(4, "little")          # hash-based, source never checked
    assert pyc[8:16] == importlib.util.source_hash(SOURCES["pkg/core.py"])


def test_record_lists_every_member_with_its_hash(compiled):
    _, out = compiled
    members = read(out)
    lines = members["pkg-1.0.dist-info/RECORD"].decode().splitlines()
    assert lines[-1] == "pkg-1.0.dist-info/RECORD,,"
    listed = {}
    for line in lines[:-1]:
        name, digest, size = line.split(",")
        listed[name] = (digest, int(size))
    assert set(listed) == set(members) - {"pkg-1.0.dist-info/RECORD"}
    for name, (digest, size) in listed.items():
        want = base64.urlsafe_b64encode(hashlib.sha256(members[name]).digest()).rstrip(b"=")
        assert digest == "sha256=" + want.decode() and size == len(members[name]), name


def test_compiled_package_imports_without_its_sources(compiled, tmp_path, monkeypatch):
    _, out = compiled
    root = tmp_path / "installed"
    with zipfile.ZipFile(out) as z:
        z.extractall(root)
    assert not (root / "pkg" / "core.py").exists()
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
        monkeypatch.delitem(sys.modules, name)
    import pkg
    import pkg.core
    assert pkg.answer() == 42 and pkg.core.__doc__ == "Doc."
    with pytest.raises(ValueError) as err:
        pkg.core.fail()
    assert err.traceback[-1].frame.code.raw.co_filename == "/site/pkg/core.py"


def test_same_input_same_bytes(compiled, tmp_path):
    _, out = compiled
    again = tmp_path / "again.whl"
    compile_archive(str(tmp_path / "pkg-1.0-py3-none-any.whl"), str(again), "/site")
    assert again.read_bytes() == out.read_bytes()


def test_a_zip_without_record_gets_none(tmp_path):
    src = make_zip(tmp_path / "lib.zip", {"os2.py": b"x = 1\n"})
    compile_archive(str(src), str(tmp_path / "out.zip"), "/lib/python.zip")
    assert set(read(tmp_path / "out.zip")) == {"os2.pyc"}


def test_compiled_wheels_get_a_build_tag():
    assert compiled_name("numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl") == \
        "numpy-2.0.2-1pyc-cp312-cp312-pyodide_2024_0_wasm32.whl"
