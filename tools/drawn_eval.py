"""MNIST test-split and drawn-digit accuracy of model files, side by side.

    python3 tools/drawn_eval.py MODEL.npz [MODEL.npz ...] [--set test] [--pen 0.1] [--styles]

MNIST: the bundled 2,000-digit test split. Drawn: tests/fixtures/drawn/<set>.json replayed
through web/js/pad.js in Chromium (see drawn_set.py); ``--pen`` re-renders with another
pen fraction of the drawing's extent, or "pad" for the drawing as it looks on the pad.
``--styles`` adds per-style and per-placement accuracy.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script and as tools.drawn_eval
from tools.drawn_set import drawn_set  # noqa: E402  (it puts py/src on the path)
from digitnet import data  # noqa: E402
from digitnet.model import load  # noqa: E402


def evaluate(paths: list[str], set_name: str = "test", pen="default") -> list[dict]:
    """Per model file: name, mnist (accuracy on the bundled test split of n_mnist digits),
    drawn (on the drawn set of n_drawn), by_style and by_placement ({name: (correct, total)})."""
    bundle = data.load_bundle()
    drawn = drawn_set(set_name, pen)
    rows = []
    for path in paths:
        model = load(path)
        hit = model.predict(drawn["x"]) == drawn["y"]
        groups = {}
        for key in ("style", "placement"):
            groups[key] = {g: (int(hit[drawn[key] == g].sum()), int((drawn[key] == g).sum()))
                           for g in np.unique(drawn[key])}
        rows.append({"name": str(path), "mnist": float((model.predict(bundle.x_test) == bundle.y_test).mean()),
                     "n_mnist": int(bundle.y_test.size), "drawn": float(hit.mean()), "n_drawn": int(hit.size),
                     "by_style": groups["style"], "by_placement": groups["placement"]})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--set", default="test", choices=("dev", "test"))
    ap.add_argument("--pen", default="default", help='fraction of the extent, "pad" or "default"')
    ap.add_argument("--styles", action="store_true")
    args = ap.parse_args(argv)
    pen = None if args.pen == "pad" else args.pen if args.pen == "default" else float(args.pen)
    rows = evaluate(args.models, args.set, pen)
    width = max(len(Path(r["name"]).as_posix()) for r in rows)
    print(f"{'model':<{width}}  MNIST test (2,000)  drawn {args.set} ({rows[0]['n_drawn']}, pen {args.pen})")
    for r in rows:
        print(f"{r['name']:<{width}}  {100 * r['mnist']:17.2f}%  {100 * r['drawn']:6.2f}%")
    if args.styles:
        for key in ("by_style", "by_placement"):
            names = sorted(rows[0][key])
            print(f"\n{key[3:]:<20}" + "".join(f"{Path(r['name']).stem[:12]:>14}" for r in rows))
            for g in names:
                cells = "".join(f"{100 * r[key][g][0] / r[key][g][1]:>9.0f}% ({r[key][g][1]:>2})" for r in rows)
                print(f"{g:<20}{cells}")


if __name__ == "__main__":
    main()
