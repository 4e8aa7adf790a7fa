"""Command line: ``python3 -m digitnet train | evaluate | predict``.

Bad arguments exit with status 2 (argparse usage error); missing or corrupt files, and
training that diverges, print one ``digitnet: error: ...`` line and exit with status 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import data
from .model import ModelFileError, load, save
from .recipes import RECIPES, get_recipe
from .train import TrainingDiverged, evaluate, fit_recipe


class CLIError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def int_at_least(minimum: int):
    """An argparse type: an integer no smaller than ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
        return value
    return parse


def learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0 and at most 10")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitnet", description="A numpy neural network "
                                     "that learns handwritten digits.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a network and report its test accuracy")
    train.add_argument("--model", choices=sorted({m for m, _ in RECIPES}), default="mlp")
    train.add_argument("--recipe", choices=sorted({r for _, r in RECIPES}), default="default",
                       help="seed = the tutorial's setup; default = trained well")
    train.add_argument("--epochs", type=int_at_least(1))
    train.add_argument("--batch-size", type=int_at_least(1))
    train.add_argument("--lr", type=learning_rate, help="learning rate")
    train.add_argument("--optimizer", choices=["sgd", "adam"])
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="random shifts of up to 2 pixels (--no-augment: no augmentation at all)")
    train.add_argument("--seed", type=int_at_least(0))
    train.add_argument("--data", metavar="DIR", help="train on the four MNIST IDX files in DIR "
                       "instead of the bundled subset")
    train.add_argument("--out", metavar="FILE", help="where to save the model (.npz)")

    ev = sub.add_parser("evaluate", help="accuracy of saved weights on test images")
    ev.add_argument("--weights", required=True, metavar="FILE")
    ev.add_argument("--images", metavar="IDX", help="IDX images (default: the bundled test split)")
    ev.add_argument("--labels", metavar="IDX")

    pr = sub.add_parser("predict", help="classify image files (PNG, JPEG, ...)")
    pr.add_argument("--weights", required=True, metavar="FILE")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    return parser


def cmd_train(args) -> None:
    recipe = get_recipe(args.model, args.recipe).with_overrides(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        seed=args.seed, augment_shift=None if args.augment is None else (2 if args.augment else 0))
    if args.augment is False:  # --no-augment: no augmentation of any kind
        recipe = recipe.with_overrides(augment_affine=0.0, augment_elastic=0.0, augment_stroke=0.0,
                                       augment_styles=0.0, augment_repen=0.0)
    extra = {k: v for k, v in recipe.augmentation().items() if v}
    dataset = data.load_mnist_dir(args.data) if args.data else data.load_bundle()
    if recipe.batch_size > len(dataset.x_train):
        raise CLIError(f"--batch-size {recipe.batch_size} is larger than the training set "
                       f"({len(dataset.x_train)} images)")
    print(f"Training {args.model} ({args.recipe} recipe) on {len(dataset.x_train):,} images: "
          f"{recipe.optimizer}, lr {recipe.lr:g}, batch {recipe.batch_size}, "
          f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}, shift augmentation {recipe.augment_shift} px"
          + "".join(f", {k} {v:g}" for k, v in extra.items()), flush=True)

    def on_epoch(r):
        print(f"Epoch: {r['epoch']}, Loss: {r['loss']:.4f}, Acc: {100 * r['accuracy']:.2f}",
              flush=True)

    model, history = fit_recipe(recipe, dataset, on_epoch=on_epoch)
    last = history.epochs[-1]
    print(f"Trained on {last['seen']:,} examples in {last['elapsed']:.1f} s "
          f"({last['seen'] / last['train_time']:,.0f} examples/s while training)")
    if args.out:
        save(model, args.out)
        print(f"Saved model to {args.out}")
    print(f"Test accuracy: {last['val_accuracy']:.4f}")


def cmd_evaluate(args) -> None:
    model = load(args.weights)
    if args.images:
        x, y = data.load_idx_pair(args.images, args.labels)
        source = args.images
    else:
        ds = data.load_bundle()
        x, y, source = ds.x_test, ds.y_test, "the bundled test split"
    print(f"{model.describe()}; {len(y):,} images from {source}")
    print(f"accuracy: {evaluate(model, x, y):.4f}")


def read_gray(path: str) -> np.ndarray:
    """An image file -> (H, W) uint8 grayscale, via Pillow (the CLI's optional dependency)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise CLIError("predict needs Pillow to read images: pip install pillow") from None
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                # Transparent pixels become white paper, not black ink.
                canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(canvas, im.convert("RGBA"))
            return np.asarray(im.convert("L"))
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CLIError(f"{path}: not a readable image ({e})") from None


def cmd_predict(args) -> None:
    from .preprocess import to_mnist

    model = load(args.weights)
    for path in args.images:
        digit = to_mnist(read_gray(path))
        if digit is None:
            print(f"{path}: no digit found (blank image)")
            continue
        probs = model.predict_proba(digit.reshape(1, 784))[0]
        print(f"{path}: {int(probs.argmax())} ({probs.max():.2f})")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "evaluate" and (args.images is None) != (args.labels is None):
        parser.error("evaluate: --images and --labels go together")
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}
    try:
        commands[args.command](args)
    except (CLIError, ModelFileError, data.DataFileError, TrainingDiverged) as e:
        print(f"digitnet: error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"digitnet: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
