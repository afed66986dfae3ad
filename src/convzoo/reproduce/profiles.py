"""The cells of ``convzoo reproduce`` and their budgets, as data, in one place.

A *cell* is one ordinary training run: a model, a recipe (``d2l``: the book's ``train_ch6``;
``fast``: our modern one), a seed and a budget. A *profile* says which cells the table is made
of and how much training each gets:

- ``book``: the book's experiment exactly (its resize, batch size, lr and 10 epochs per model,
  the whole training set) for every network, and the modern recipe at the same input size.
  Meant for a GPU (``benchmarks/gpu_reproduce.sh``).
- ``cpu``: the whole table within 45 minutes on a 2-core CPU. LeNet and LeNet-BN at the book's
  settings, 3 seeds each; the large networks on a reduced budget (smaller images, fewer
  epochs, part of the training set; the test set is always the whole one). A reduced cell is
  not the book's experiment: its d2l cell is compared with its modern cell at the same budget,
  never with the book's figure.
- ``smoke``: seconds, for CI: two LeNets on 300 images for one epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConvzooError, UnknownNameError
from ..models import get_model_entry
from ..train.config import TrainConfig
from ..train.recipes import BOOK_SETTINGS, RECIPES, recipe_defaults


@dataclass(frozen=True)
class Budget:
    """How much training a cell gets; ``None`` keeps the recipe's value (the book's)."""

    image_size: int | None = None  #: input side in pixels (the book resizes to 224 or 96)
    epochs: int | None = None
    shots: int | None = None  #: training images per class (Fashion-MNIST has 6,000)

    @property
    def reduced(self) -> bool:
        """Whether this is less than the book's experiment."""
        return any(v is not None for v in (self.image_size, self.epochs, self.shots))

    def describe(self, model: str, recipe: str = "d2l") -> str:
        """``"the book's: 224 px, 10 epochs, 60,000 images"`` or what is reduced, with the
        epochs and training images of ``recipe``: ``best`` trains 30 epochs, and a recipe
        with a validation split trains on 54,000 of the 60,000 images (the progress lines
        and the report said the book's 10 epochs and 60,000 for every recipe)."""
        values = {**vars(TrainConfig()), **recipe_defaults(recipe, model)}
        size = self.image_size or book_image_size(model)
        epochs = self.epochs or values["epochs"]
        n = self.shots * 10 if self.shots else 60_000
        split = float(values["val_split"])
        held = round(n * split) if split < 1 else int(split)
        images = f"{n - held:,} images" + (f" (+{held:,} for validation)" if held else "")
        what = f"{size} px, {epochs} epoch{'s' if epochs > 1 else ''}, {images}"
        if self.reduced:
            return f"reduced: {what}"
        return f"the book's: {what}" if recipe == "d2l" else f"the book's input size: {what}"

    def overrides(self) -> dict[str, object]:
        """The :class:`~convzoo.train.TrainConfig` values this budget sets."""
        out: dict[str, object] = {}
        if self.image_size is not None:
            out["image_size"] = self.image_size
        if self.epochs is not None:
            out["epochs"] = self.epochs
        if self.shots is not None:
            out["subset"] = f"shots={self.shots}"
        return out


def book_image_size(model: str) -> int:
    return int(
        BOOK_SETTINGS.get(model, {}).get("image_size") or get_model_entry(model).default_image_size
    )


@dataclass(frozen=True)
class Cell:
    """One training run of the table."""

    model: str
    recipe: str
    seed: int
    budget: Budget = Budget()
    est_s: float = 60.0  #: expected seconds on the profile's machine (for the time left)

    @property
    def name(self) -> str:
        """The run directory's name: ``lenet-d2l-s0``."""
        return f"{self.model}-{self.recipe}-s{self.seed}"

    def overrides(self) -> dict[str, object]:
        """Every :class:`~convzoo.train.TrainConfig` value the cell sets (the rest: the
        recipe's). Both recipes train the same network: the book's options (VGG's channels
        / 4) go to the modern one too."""
        options = dict(BOOK_SETTINGS.get(self.model, {}).get("model_options", {}))
        out: dict[str, object] = dict(recipe=self.recipe, model=self.model, seed=self.seed)
        if options:
            out["model_options"] = options
        out.update(self.budget.overrides())
        return out

    def args(self) -> list[str]:
        """The ``convzoo train`` flags of :meth:`overrides`, in that order."""
        args: list[str] = []
        for key, value in self.overrides().items():
            if key == "model_options":
                for k, v in value.items():  # type: ignore[union-attr]
                    args += ["-o", f"{k}={v}"]
            else:
                args += ["--" + key.replace("_", "-"), str(value)]
        return args


@dataclass(frozen=True)
class Profile:
    name: str
    about: str
    models: tuple[str, ...]
    recipes: tuple[str, ...] = ("d2l", "fast")
    seeds: int = 1  #: seeds per cell unless ``seeds_by_model`` says otherwise
    seeds_by_model: dict[str, int] = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)  #: per model; absent: the book's
    #: measured seconds per cell (model, recipe) on the machine the profile is meant for
    est_s: dict[tuple[str, str], float] = field(default_factory=dict)
    #: cells trained at once: on a GPU small cells leave it idle most of the time; on the
    #: 2-core CPU two one-thread cells beat one two-thread cell (see runner.run_subprocess)
    jobs: int = 1

    def cells(
        self,
        models: list[str] | None = None,
        recipes: list[str] | None = None,
        seeds: int | None = None,
    ) -> list[Cell]:
        """The cells in the order they run: model by model, seed by seed, recipe by recipe
        (so a table with one model done has both its columns)."""
        models = models or list(self.models)
        recipes = recipes or list(self.recipes)
        for name in models:
            get_model_entry(name)  # unknown: one line listing the known ones
        for recipe in recipes:
            if recipe not in RECIPES:
                raise UnknownNameError(
                    f"unknown recipe {recipe!r}; choose from: {', '.join(RECIPES)}"
                )
        if seeds is not None and seeds < 1:
            raise ConvzooError(f"--seeds must be >= 1, got {seeds}")
        return [
            Cell(m, r, s, self.budgets.get(m, Budget()), self.est_s.get((m, r), 60.0))
            for m in models
            for s in range(seeds or self.seeds_by_model.get(m, self.seeds))
            for r in recipes
        ]


BOOK_MODELS = tuple(BOOK_SETTINGS)

#: the cpu profile's reduced budgets: the large networks at the smallest input their layers
#: take (AlexNet 65 px, NiN 67 px; 32 for the others), 3 epochs on part of the training set,
#: so that the whole table fits in well under 45 minutes of 2 CPU cores (about 23-37 min).
#: GoogLeNet (the book's, no batch norm: 22 layers deep) gets 6: after 3 its training loss was
#: still 2.20 (d2l) and 1.94 (fast) against chance's 2.30, both recipes barely started
CPU_BUDGETS = {
    "alexnet": Budget(image_size=68, epochs=3, shots=1000),
    "vgg11": Budget(image_size=32, epochs=3, shots=1500),
    "nin": Budget(image_size=68, epochs=3, shots=1500),
    "googlenet": Budget(image_size=32, epochs=6, shots=1500),
    "resnet18": Budget(image_size=32, epochs=3, shots=1500),
    "densenet": Budget(image_size=32, epochs=3, shots=2000),
}
#: expected seconds per cpu cell, from one-thread training-step rates measured on 2 busy
#: CPU cores (fp32 for d2l, bf16 for fast; evaluation on 10,000 test images each epoch
#: counted as a third of a training example each), plus 8 s of process start
CPU_EST_S = {
    ("lenet", "d2l"): 110, ("lenet", "fast"): 90,
    ("lenet_bn", "d2l"): 110, ("lenet_bn", "fast"): 90,
    ("alexnet", "d2l"): 340, ("alexnet", "fast"): 150,
    ("vgg11", "d2l"): 250, ("vgg11", "fast"): 130,
    ("nin", "d2l"): 230, ("nin", "fast"): 110,
    ("googlenet", "d2l"): 540, ("googlenet", "fast"): 330,
    ("resnet18", "d2l"): 240, ("resnet18", "fast"): 310,
    ("densenet", "d2l"): 190, ("densenet", "fast"): 105,
}  # fmt: skip
#: expected seconds per book cell on one H200 (batch rates of benchmarks/RESULTS.md: launch
#: bound at 96 px, 17-22k images/s at 224 px), 10 epochs with evaluation, plus process start
BOOK_EST_S = {
    ("lenet", "d2l"): 20, ("lenet", "fast"): 20,
    ("lenet_bn", "d2l"): 25, ("lenet_bn", "fast"): 25,
    ("alexnet", "d2l"): 50, ("alexnet", "fast"): 45,
    ("vgg11", "d2l"): 55, ("vgg11", "fast"): 45,
    ("nin", "d2l"): 60, ("nin", "fast"): 50,
    ("googlenet", "d2l"): 60, ("googlenet", "fast"): 60,
    ("resnet18", "d2l"): 45, ("resnet18", "fast"): 45,
    ("densenet", "d2l"): 55, ("densenet", "fast"): 55,
}  # fmt: skip

PROFILES: dict[str, Profile] = {
    "book": Profile(
        "book",
        "the book's experiment for every network (its resize, batch, lr, 10 epochs, all 60,000 "
        "images) and the modern recipe at the same input size; meant for a GPU",
        BOOK_MODELS,
        est_s=BOOK_EST_S,
        jobs=3,
    ),
    "cpu": Profile(
        "cpu",
        "the whole table in about 45 minutes on 2 CPU cores: LeNet and LeNet-BN at the book's "
        "settings with 3 seeds, the large networks on a reduced budget",
        BOOK_MODELS,
        seeds_by_model={"lenet": 3, "lenet_bn": 3},
        budgets=CPU_BUDGETS,
        est_s=CPU_EST_S,
        jobs=2,
    ),
    "smoke": Profile(
        "smoke",
        "seconds, for CI: both LeNets on 300 training images for one epoch",
        ("lenet", "lenet_bn"),
        budgets={m: Budget(epochs=1, shots=30) for m in ("lenet", "lenet_bn")},
        est_s={(m, r): 5.0 for m in ("lenet", "lenet_bn") for r in ("d2l", "fast")},
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown profile {name!r}; choose from: {', '.join(PROFILES)}"
        ) from None
