"""Runs inside Pyodide (started by tools/pycompile.mjs): zips with bytecode for source.

``compile_archive(src, dst, prefix)`` writes the zip ``src`` (a wheel, or the standard
library's zip) to ``dst`` with each ``.py`` member replaced by a sourceless ``.pyc``
compiled by this interpreter (Pyodide's own Python, so the bytecode is the one the page
runs), in unchecked-hash form: the header records the source's hash, and no source is
looked at when it is imported. Every other member is copied byte for byte; a wheel's
RECORD is rewritten to list the new members.
Deterministic: the same wheel gives the same bytes. Standard library only.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import marshal
import zipfile

UNCHECKED_HASH = (1).to_bytes(4, "little")   # pyc flags: hash-based, source not checked


def pyc_bytes(source: bytes, path: str) -> bytes:
    """The .pyc file for a module's ``source`` (raises SyntaxError if it does not compile)."""
    code = compile(source, path, "exec", dont_inherit=True)
    return (importlib.util.MAGIC_NUMBER + UNCHECKED_HASH + importlib.util.source_hash(source)
            + marshal.dumps(code))


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def compile_archive(src: str, dst: str, prefix: str) -> dict:
    """Write ``dst``; returns {"compiled": n, "kept": [.py members that did not compile]}.
    ``prefix``: where the archive's members are imported from (tracebacks name them so)."""
    compiled, kept, members = 0, [], []
    with zipfile.ZipFile(src) as archive:
        infos = archive.infolist()
        record = next((i.filename for i in infos if i.filename.endswith(".dist-info/RECORD")), None)
        for info in infos:
            if info.filename == record:
                continue
            data = archive.read(info)
            name = info.filename
            if name.endswith(".py"):
                try:
                    data, name = pyc_bytes(data, f"{prefix}/{name}"), name[:-3] + ".pyc"
                    compiled += 1
                except (SyntaxError, ValueError):
                    kept.append(name)
            members.append((info, name, data))
    if record is not None:
        lines = [_record_line(name, data) for info, name, data in members if not info.is_dir()]
        members.append((zipfile.ZipInfo(record, date_time=members[0][0].date_time), record,
                        ("\n".join(lines + [f"{record},,"]) + "\n").encode()))
    with zipfile.ZipFile(dst, "w") as out:
        for info, name, data in members:
            new = zipfile.ZipInfo(name, date_time=info.date_time)
            new.external_attr = info.external_attr or (0o644 << 16)
            new.compress_type = zipfile.ZIP_STORED if info.is_dir() else zipfile.ZIP_DEFLATED
            out.writestr(new, data)
    return {"compiled": compiled, "kept": kept}
