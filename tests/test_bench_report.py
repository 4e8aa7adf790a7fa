"""The benchmark's report and its check on hand-made results (no browser, no measuring):
the line naming the runtimes shows the page's Pyodide, and a failed probe is not hidden."""
import json
from pathlib import Path

from tools.bench import check
from tools.bench_report import markdown, runtimes_line

ROOT = Path(__file__).resolve().parents[1]
PROBED = {"version": "0.27.7", "python": "3.12.7", "numpy": "2.0.2"}  # self.PyRuntime.versions()
META = {"python": "3.11.7", "numpy": "2.4.6", "chromium": "156.0.8078.108", "pyodide": PROBED}
FAILED = {"error": "Worker.evaluate: ReferenceError: pyodide is not defined"}


def test_the_runtimes_line_names_the_pages_pyodide():
    assert runtimes_line(META) == (
        "- CPython 3.11.7, numpy 2.4.6 (its BLAS may use every core); Chromium 156.0.8078.108; "
        "Pyodide 0.27.7 (Python 3.12.7, numpy 2.0.2, single-threaded WebAssembly).")


def test_a_failed_version_probe_is_named_and_fails_the_check():
    line = runtimes_line({**META, "pyodide": FAILED})
    assert "Pyodide: version unknown" in line and FAILED["error"] in line
    assert any(p.startswith("meta.pyodide.version missing") and FAILED["error"] in p
               for p in check({"meta": {**META, "pyodide": FAILED}}))
    assert any("meta.pyodide.version" in p for p in check({"meta": {k: v for k, v in META.items()
                                                                    if k != "pyodide"}}))
    assert not any("pyodide" in p for p in check({"meta": META}))


def test_the_report_page_carries_the_line():
    """The whole report of the committed results, with the probe's answer put in."""
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    results["meta"]["pyodide"] = PROBED
    assert runtimes_line(results["meta"]) in markdown(results).splitlines()
    results["meta"]["pyodide"] = FAILED
    assert "Pyodide ?" not in markdown(results)
