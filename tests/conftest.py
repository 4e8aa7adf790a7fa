"""Shared test setup: import paths, the markers, and the tutorial MLP trained once per session.

Markers, applied by where a test lives (so test files need no decorators):
    browser  tests/e2e/: the built page in Chromium (needs dist/ and chromium)
    bench    test_bench_smoke.py: `build.py bench --quick` (needs dist/, about a minute)
    build    test_build.py and tests marked @pytest.mark.build: checks of the built dist/
    unit     everything else: CPython only, seconds (`pytest -m unit -n 2`: pytest-xdist)
"""
import os
import sys
from pathlib import Path

import pytest

# One BLAS thread (set before numpy loads; the environment can override it). The tests check
# results, not speed, and on a small or shared machine OpenBLAS's threads mostly wait for
# each other: the unit tests ran ~8x faster on one thread on the 2-core development machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "py" / "src"))
sys.path.insert(0, str(ROOT))  # tools/ (the build's modules)

MARKERS = {
    "unit": "CPython only, no built site needed; fast",
    "build": "checks the built site in dist/ (run `python3 build.py build` first)",
    "browser": "drives the built page in Chromium with Playwright",
    "bench": "runs the benchmark's quick mode against the built site",
}


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def kind_of(path: Path) -> str:
    if "e2e" in path.parts:
        return "browser"
    if path.name == "test_bench_smoke.py":
        return "bench"
    if path.name == "test_build.py":
        return "build"
    return "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(name) for name in MARKERS):
            continue  # marked in the file
        item.add_marker(getattr(pytest.mark, kind_of(Path(str(item.path)))))


@pytest.fixture(scope="session")
def tutorial_mlp():
    """(model, history) of the tutorial recipe's MLP trained on the bundle, once per session.

    Shared by every test that needs that trained network; do not change the model."""
    from digitnet import data
    from digitnet.recipes import get_recipe
    from digitnet.train import fit_recipe

    return fit_recipe(get_recipe("mlp", "tutorial"), data.load_bundle())
