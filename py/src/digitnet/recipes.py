"""Named training recipes, the bounds on what a person may change, and their checks.

The one source of truth for the CLI's ``train`` options and the page's training form.

``tutorial`` is the tutorial's setup with correct maths: the 784-256-128-10 LeakyReLU
net, uniform init, plain SGD at lr 1e-3 on the batch-*summed* gradient (the tutorial's
convention; equal to lr 0.256 on the mean gradient at batch 256), batch 256, 5 epochs.
``default`` trains the same architecture well (Adam, random 2-px shifts, cosine-decayed
learning rate, 30 epochs); it is what the site ships pretrained. The MLP's also gives half
the images a random affine map and half the 0s, 1s, 7s and 9s a style MNIST lacks each
epoch (chosen by accuracy on drawn digits and MNIST alike). The CNN has both recipes
too; its default trains 45 epochs with an affine map on a quarter of the images, chosen
on 1,000 digits held out of the training split and on the drawn dev set (99.0% and 97.8%,
against 98.8% and 97.5% for 30 epochs of shifts only; styles cost it MNIST accuracy).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .model import PRESETS, cnn, mlp
from .optim import OPTIMIZERS


@dataclass(frozen=True)
class Recipe:
    model: str = "mlp"
    init: str = "uniform"
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 20
    augment_shift: int = 2
    loss_reduction: str = "mean"
    lr_schedule: str = "constant"
    seed: int = 0
    # Augmentation beyond shifts (digitnet.augment.augment_epoch); 0 = off.
    augment_affine: float = 0.0   # fraction of images given a random affine map per epoch
    augment_elastic: float = 0.0  # elastic distortion strength (alpha) with those maps
    augment_stroke: float = 0.0   # fraction made thicker or thinner
    augment_styles: float = 0.0   # fraction of 0s, 1s, 7s and 9s given another style
    augment_repen: float = 0.0    # fraction redrawn along their skeleton with a uniform pen

    def augmentation(self) -> dict:
        """The augment_epoch settings of this recipe."""
        return {"affine": self.augment_affine, "elastic_alpha": self.augment_elastic,
                "stroke": self.augment_stroke, "styles": self.augment_styles,
                "repen_fraction": self.augment_repen}

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> "Recipe":
        """A copy with every non-None keyword replaced."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


RECIPES = {
    ("mlp", "tutorial"): Recipe(model="mlp", init="uniform", optimizer="sgd", lr=1e-3,
                                batch_size=256, epochs=5, augment_shift=0, loss_reduction="sum"),
    ("mlp", "default"): Recipe(model="mlp", init="uniform", optimizer="adam", lr=2e-3,
                               batch_size=128, epochs=30, augment_shift=2, lr_schedule="cosine",
                               augment_affine=0.5, augment_styles=0.5),
    ("cnn", "tutorial"): Recipe(model="cnn", init="he", optimizer="sgd", lr=1e-3, batch_size=256,
                                epochs=5, augment_shift=0, loss_reduction="sum"),
    ("cnn", "default"): Recipe(model="cnn", init="he", optimizer="adam", lr=1e-3, batch_size=64,
                               epochs=45, augment_shift=2, lr_schedule="cosine",
                               augment_affine=0.25),
}
MODEL_NAMES = tuple(sorted({m for m, _ in RECIPES}))
RECIPE_NAMES = tuple(sorted({r for _, r in RECIPES}))
OPTIMIZER_NAMES = tuple(OPTIMIZERS)
# The weight initialisations each model can be built with.
INITS = {"mlp": ("uniform", "he"), "cnn": ("he",)}
AUGMENT_SHIFT = 2  # pixels, when augmentation is on

# Bounds on the settings a person may choose (the CLI and the page's training form).
# batch_size is also bounded by the training set's size, known only when data is loaded.
LIMITS = {
    "epochs": {"min": 1, "max": 500},
    "batch_size": {"min": 1},
    "lr": {"min_exclusive": 0.0, "max": 10.0},
    "seed": {"min": 0},
    "steps": {"min": 1, "max": 10_000},   # fine-tuning steps (``digitnet finetune --steps``)
}


class SettingError(ValueError):
    """A training setting out of bounds: ``field`` names it, ``reason`` says what is allowed."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def get_recipe(model: str, name: str) -> Recipe:
    try:
        return RECIPES[(model, name)]
    except KeyError:
        raise ValueError(f"no recipe {name!r} for model {model!r}") from None


def _whole(field: str, value, n_train: int | None = None) -> int:
    """An int within LIMITS[field] (and at most ``n_train`` for batch_size)."""
    lo, hi = LIMITS[field]["min"], LIMITS[field].get("max")
    if field == "batch_size" and n_train is not None:
        hi = n_train
    span = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
    if field == "batch_size" and n_train is not None:
        span += " (the training set's size)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not number.is_integer() or not lo <= number <= (hi or math.inf):
        raise SettingError(field, f"must be a whole number {span}, not {value!r}")
    return int(number)


def check_setting(field: str, value, n_train: int | None = None):
    """A person's value for ``field`` (a string from the CLI or a JSON value from the
    page) -> the checked int/float/str/bool; raises SettingError naming the field."""
    if field in ("epochs", "batch_size", "seed", "steps"):
        return _whole(field, value, n_train)
    if field == "lr":
        lim = LIMITS["lr"]
        try:
            lr = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            lr = math.nan
        if not (math.isfinite(lr) and lim["min_exclusive"] < lr <= lim["max"]):
            raise SettingError("lr", f"must be a number greater than {lim['min_exclusive']:g} "
                                     f"and at most {lim['max']:g}, not {value!r}")
        return lr
    choices = {"model": MODEL_NAMES, "recipe": RECIPE_NAMES, "optimizer": OPTIMIZER_NAMES}
    if field in choices:
        if value not in choices[field]:
            raise SettingError(field, f"must be one of {', '.join(choices[field])}, not {value!r}")
        return value
    if field == "augment":
        if not isinstance(value, bool):
            raise SettingError("augment", f"must be true or false, not {value!r}")
        return value
    raise SettingError(field, "is not a training setting (expected one of "
                              f"{', '.join(SETTINGS)})")


SETTINGS = ("model", "recipe", "epochs", "batch_size", "lr", "optimizer", "augment", "seed")


def recipe_for(settings: dict, n_train: int | None = None) -> Recipe:
    """Training settings {model, recipe, epochs, batch_size, lr, optimizer, augment, seed}
    -> a checked Recipe. Absent or None values keep the recipe's; ``model`` defaults to
    "mlp", ``recipe`` to "default". Raises SettingError naming the first bad field."""
    values = {}
    for field, value in settings.items():
        if value is not None:
            values[field] = check_setting(field, value, n_train)
    base = get_recipe(values.pop("model", "mlp"), values.pop("recipe", "default"))
    augment = values.pop("augment", None)
    if augment is not None:
        values["augment_shift"] = AUGMENT_SHIFT if augment else 0
        if not augment:  # no augmentation of any kind
            values.update(augment_affine=0.0, augment_elastic=0.0, augment_stroke=0.0,
                          augment_styles=0.0, augment_repen=0.0)
    recipe = base.with_overrides(**values)
    if n_train is not None and recipe.batch_size > n_train:   # the recipe's own batch size
        _whole("batch_size", recipe.batch_size, n_train)
    return recipe


def model_and_optimizer(recipe: Recipe):
    """A fresh model and its optimiser, exactly as ``recipe`` describes."""
    if recipe.model not in PRESETS:
        raise ValueError(f"unknown model {recipe.model!r}; choose from {sorted(PRESETS)}")
    if recipe.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; choose from {sorted(OPTIMIZERS)}")
    if recipe.init not in INITS[recipe.model]:
        raise ValueError(f"the {recipe.model} model is built with init "
                         f"{' or '.join(INITS[recipe.model])}, not {recipe.init!r}")
    model = mlp(seed=recipe.seed, init=recipe.init) if recipe.model == "mlp" else \
        cnn(seed=recipe.seed)
    return model, OPTIMIZERS[recipe.optimizer](model.parameters(), lr=recipe.lr)


def page_spec() -> dict:
    """The training form's choices as JSON-ready data: models, each recipe's settings,
    optimisers and limits. The build writes it into build-manifest.json, so the page
    keeps no copy of its own."""
    recipes: dict = {}
    for (model, name), r in RECIPES.items():
        recipes.setdefault(model, {})[name] = {
            "epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr,
            "optimizer": r.optimizer, "augment": r.augment_shift > 0 or any(r.augmentation().values()),
        }
    return {"models": list(MODEL_NAMES), "recipes": recipes,
            "optimizers": list(OPTIMIZER_NAMES), "limits": LIMITS}
