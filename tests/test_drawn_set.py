"""The drawn-digit fixture sets: reproducible from their script, big enough, disjoint."""
import importlib.util
import json
from pathlib import Path

import pytest

DRAWN = Path(__file__).resolve().parent / "fixtures" / "drawn"


@pytest.fixture(scope="module")
def maker():
    spec = importlib.util.spec_from_file_location("make_strokes", DRAWN / "make_strokes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["dev", "test"])
def test_committed_set_is_what_the_seeded_script_makes(maker, name):
    stored = json.loads((DRAWN / f"{name}.json").read_text())
    assert stored["seed"] == maker.SETS[name]
    made = json.loads(json.dumps(maker.make_set(stored["seed"])))  # same rounding as stored
    assert made == stored["digits"]


@pytest.mark.parametrize("name", ["dev", "test"])
def test_set_has_every_class_style_and_placement_with_points_on_the_pad(maker, name):
    digits = json.loads((DRAWN / f"{name}.json").read_text())["digits"]
    assert len(digits) >= 300
    assert {d["label"] for d in digits} == set(range(10))
    assert {(d["label"], d["style"]) for d in digits} == \
        {(label, style) for label, styles in maker.TEMPLATES.items() for style in styles}
    assert {d["placement"] for d in digits} == {p for p, _ in maker.PLACEMENTS}
    for d in digits:
        assert d["strokes"] and all(len(s) >= 2 for s in d["strokes"])
        assert all(0 <= x <= 1 and 0 <= y <= 1 for s in d["strokes"] for x, y in s)


def test_dev_and_test_sets_share_no_drawing():
    sets = [json.loads((DRAWN / f"{n}.json").read_text())["digits"] for n in ("dev", "test")]
    keys = [{json.dumps(d["strokes"]) for d in s} for s in sets]
    assert not keys[0] & keys[1]
