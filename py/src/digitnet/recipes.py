"""Named training recipes: every hyper-parameter of a run, in one place.

``seed`` is the tutorial's setup with correct maths: the 784-256-128-10 LeakyReLU net,
uniform init, plain SGD at lr 1e-3 on the batch-*summed* gradient (the tutorial's
convention; equal to lr 0.256 on the mean gradient at batch 256), batch 256, 5 epochs.
``default`` trains the same architecture well (Adam, random 2-px shifts, cosine-decayed
learning rate, 30 epochs); it is what the site ships pretrained. The MLP's also gives half
the images a random affine map and half the 0s, 1s, 7s and 9s a style MNIST lacks each
epoch (chosen by accuracy on drawn digits and MNIST alike; the CNN gained nothing from it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


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
    ("mlp", "seed"): Recipe(model="mlp", init="uniform", optimizer="sgd", lr=1e-3, batch_size=256,
                            epochs=5, augment_shift=0, loss_reduction="sum"),
    ("mlp", "default"): Recipe(model="mlp", init="uniform", optimizer="adam", lr=2e-3,
                               batch_size=128, epochs=30, augment_shift=2, lr_schedule="cosine",
                               augment_affine=0.5, augment_styles=0.5),
    ("cnn", "seed"): Recipe(model="cnn", optimizer="sgd", lr=1e-3, batch_size=256, epochs=5,
                            augment_shift=0, loss_reduction="sum"),
    ("cnn", "default"): Recipe(model="cnn", optimizer="adam", lr=1e-3, batch_size=64,
                               epochs=30, augment_shift=2, lr_schedule="cosine"),
}


def get_recipe(model: str, name: str) -> Recipe:
    try:
        return RECIPES[(model, name)]
    except KeyError:
        raise ValueError(f"no recipe {name!r} for model {model!r}") from None


def model_and_optimizer(recipe: Recipe):
    """A fresh model and its optimiser, exactly as ``recipe`` describes."""
    from .model import PRESETS, mlp
    from .optim import OPTIMIZERS

    if recipe.model not in PRESETS:
        raise ValueError(f"unknown model {recipe.model!r}; choose from {sorted(PRESETS)}")
    if recipe.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; choose from {sorted(OPTIMIZERS)}")
    model = mlp(seed=recipe.seed, init=recipe.init) if recipe.model == "mlp" else \
        PRESETS[recipe.model](seed=recipe.seed)
    return model, OPTIMIZERS[recipe.optimizer](model.parameters(), lr=recipe.lr)


# Bounds on the settings a person may choose (the CLI and the page's training form).
# batch_size is also bounded by the training set's size, known only when data is loaded.
LIMITS = {
    "epochs": {"min": 1, "max": 500},
    "batch_size": {"min": 1},
    "lr": {"min_exclusive": 0.0, "max": 10.0},
}
OPTIMIZER_NAMES = ("sgd", "adam")


def page_spec() -> dict:
    """The training form's choices as JSON-ready data: models, each recipe's settings,
    optimisers and limits. The build writes it into build-manifest.json, so the page
    keeps no copy of its own."""
    recipes: dict = {}
    for (model, name), r in RECIPES.items():
        recipes.setdefault(model, {})[name] = {
            "epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr,
            "optimizer": r.optimizer, "augment": r.augment_shift > 0,
        }
    return {"models": sorted(recipes), "recipes": recipes, "optimizers": list(OPTIMIZER_NAMES),
            "limits": LIMITS}
