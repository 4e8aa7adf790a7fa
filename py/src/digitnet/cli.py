"""Command line: ``python3 -m digitnet train | evaluate | predict | finetune``.

Bad arguments exit with status 2 (argparse usage error); missing or corrupt files, and
training that diverges, print one ``digitnet: error: ...`` line and exit with status 1.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import data
from .model import ModelFileError, load, save
from .recipes import (AUGMENT_SHIFT, MODEL_NAMES, OPTIMIZER_NAMES, RECIPE_NAMES, SettingError,
                      check_setting, recipe_for)
from .train import TrainingDiverged, evaluate, fit_recipe


class CLIError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def setting(field: str):
    """An argparse type checking a training setting against `recipes.LIMITS`."""
    def parse(text: str):
        try:
            return check_setting(field, text)
        except SettingError as e:
            raise argparse.ArgumentTypeError(e.reason) from None
    parse.__name__ = field  # argparse names the type in some messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitnet", description="A numpy neural network "
                                     "that learns handwritten digits.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a network and report its test accuracy")
    train.add_argument("--model", choices=MODEL_NAMES, default="mlp")
    train.add_argument("--recipe", choices=RECIPE_NAMES, default="default",
                       help="tutorial = the tutorial's setup; default = trained well")
    train.add_argument("--epochs", type=setting("epochs"))
    train.add_argument("--batch-size", type=setting("batch_size"))
    train.add_argument("--lr", type=setting("lr"), help="learning rate")
    train.add_argument("--optimizer", choices=OPTIMIZER_NAMES)
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help=f"random shifts of up to {AUGMENT_SHIFT} pixels and the recipe's other "
                       "augmentation (--no-augment: none at all)")
    train.add_argument("--seed", type=setting("seed"), help="random seed (weights, shuffling)")
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

    ft = sub.add_parser("finetune", help="adapt saved weights to your own labelled digits")
    ft.add_argument("--weights", required=True, metavar="FILE")
    ft.add_argument("--examples", required=True, metavar="FILE_OR_DIR",
                    help="an examples .npz (exported by the page) or a directory of <label>_*.png")
    ft.add_argument("--out", required=True, metavar="FILE", help="where to save the adapted model")
    ft.add_argument("--seed", type=setting("seed"), default=0)
    ft.add_argument("--steps", type=setting("steps"), default=None,
                    help="fine-tuning steps (default: as many as the page takes)")
    return parser


def cmd_train(args) -> None:
    dataset = data.load_mnist_dir(args.data) if args.data else data.load_bundle()
    settings = {"model": args.model, "recipe": args.recipe, "epochs": args.epochs,
                "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
                "augment": args.augment, "seed": args.seed}
    try:
        recipe = recipe_for(settings, n_train=len(dataset.x_train))
    except SettingError as e:   # only the batch size depends on the data
        raise CLIError(f"--{e.field.replace('_', '-')}: {e.reason}") from None
    extra = {k: v for k, v in recipe.augmentation().items() if v}
    print(f"Training {args.model} ({args.recipe} recipe) on {len(dataset.x_train):,} images: "
          f"{recipe.optimizer}, lr {recipe.lr:g}, batch {recipe.batch_size}, "
          f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}, shift augmentation {recipe.augment_shift} px"
          + "".join(f", {k} {v:g}" for k, v in extra.items()), flush=True)

    def on_epoch(r):
        print(f"Epoch: {r['epoch']}, Loss: {r['loss']:.4f}, Acc: {100 * r['accuracy']:.2f}",
              flush=True)

    model, history = fit_recipe(recipe, dataset, on_epoch=on_epoch, ahead=True)
    last = history.epochs[-1]
    print(f"Trained on {last['seen']:,} examples in {last['elapsed']:.1f} s: "
          f"{last['seen'] / last['train_time']:,.0f} examples/s of training "
          f"({last['train_time']:.1f} s incl. augmentation; the per-epoch test excluded)")
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
    from .preprocess import DIGIT, EMPTY, prepare

    model = load(args.weights)
    for path in args.images:
        prepared = prepare(read_gray(path))
        if prepared.outcome == EMPTY:
            print(f"{path}: no digit found ({prepared.reason})")
        elif prepared.outcome != DIGIT:
            print(f"{path}: not a digit ({prepared.reason})")
        else:
            probs = model.predict_proba(prepared.image.reshape(1, 784))[0]
            print(f"{path}: {int(probs.argmax())} ({probs.max():.2f})")


def cmd_finetune(args) -> None:
    from .examples import load_examples
    from .finetune import STEPS, Finetune

    model = load(args.weights)
    images, labels = load_examples(args.examples)
    ds = data.load_bundle()
    run = Finetune(model, images, labels, ds.x_train, ds.y_train, seed=args.seed,
                   steps=args.steps or STEPS)
    print(f"Fine-tuning {model.describe()} on {len(labels)} examples "
          f"(digits {' '.join(map(str, sorted(set(labels.tolist()))))}) mixed with bundled digits")
    print(f"test accuracy before: {evaluate(model, ds.x_test, ds.y_test):.4f}", flush=True)
    tuned = run.run()
    print(f"test accuracy after:  {evaluate(tuned, ds.x_test, ds.y_test):.4f} "
          f"({run.done_steps} steps in {run.train_time:.1f} s)")
    save(tuned, args.out)
    print(f"Saved model to {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "evaluate" and (args.images is None) != (args.labels is None):
        parser.error("evaluate: --images and --labels go together")
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "finetune": cmd_finetune}
    from .examples import ExamplesError
    from .finetune import FinetuneError
    try:
        commands[args.command](args)
    except (CLIError, ModelFileError, data.DataFileError, TrainingDiverged, ExamplesError,
            FinetuneError) as e:
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
