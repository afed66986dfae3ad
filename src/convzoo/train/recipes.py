"""Recipes: the values of :class:`TrainConfig` a user did not set, per model.

- ``d2l``: the book's ``train_ch6`` exactly (Xavier init, plain SGD, mean cross-entropy, no
  augmentation, no normalization, fp32) with the book's lr / batch size / resize / 10 epochs
  per model (the book's printed table: ``docs/training.md``), so that table can be reproduced.
- ``fast`` (default): modern settings chosen by measurement on Fashion-MNIST; each choice has
  its figure in ``benchmarks/RESULTS.md`` ("fast recipe ablation"). Its values for networks
  with batch norm are :class:`~convzoo.train.config.TrainConfig`'s defaults; it states only
  what differs for the others.
- ``speedrun``: time to accuracy with ``speednet`` (see ``benchmarks/RESULTS.md``).
- ``best``: ``fast`` trained longer, with flip test-time augmentation, chosen on held-out
  training images; for sequence models, ``fast`` five times longer, chosen on held-out series.
- ``finetune``: the chapter's fine-tuning, the default of ``convzoo finetune``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import UnknownNameError
from ..models import BatchNorm, create_model, get_model_entry

#: the book's per-model settings (lr, batch size, resize; 10 epochs each), as its notebooks
#: print them (d2l-en 0.17.5 / d2l-zh 2.0, chapters 7.1-7.7)
BOOK_SETTINGS: dict[str, dict[str, Any]] = {
    "lenet": dict(lr=0.9, batch_size=256, image_size=28),
    "lenet_bn": dict(lr=1.0, batch_size=256, image_size=28),
    "alexnet": dict(lr=0.01, batch_size=128, image_size=224),
    "vgg11": dict(lr=0.05, batch_size=128, image_size=224, model_options={"width_ratio": 4}),
    "nin": dict(lr=0.1, batch_size=128, image_size=224),
    "googlenet": dict(lr=0.1, batch_size=128, image_size=96),
    "resnet18": dict(lr=0.05, batch_size=256, image_size=96),
    "densenet": dict(lr=0.1, batch_size=256, image_size=96),
}


def input_size(model: str, net: nn.Module | None = None) -> int | None:
    """The size a recipe trains ``model`` at: its default image side in pixels; ``None`` for a
    sequence model (the data set's own length; its registered length is only what ``convzoo
    models`` shows) and for ``net``, a network defined in Python (the data's image size)."""
    if net is not None:
        return None
    entry = get_model_entry(model)
    return None if entry.spatial_dims == 1 else entry.default_image_size


def d2l(
    model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> dict[str, Any]:
    """``train_ch6``: Xavier init, SGD without momentum or weight decay, no tricks."""
    book = BOOK_SETTINGS.get(model, {}) if net is None else {}
    return dict(
        epochs=10,
        lr=book.get("lr", 0.1),
        batch_size=book.get("batch_size", 256),
        image_size=book.get("image_size", input_size(model, net)),
        model_options=dict(book.get("model_options", {})),
        optimizer="sgd",
        momentum=0.0,
        weight_decay=0.0,
        schedule="constant",
        warmup=0.0,
        label_smoothing=0.0,
        init="xavier",
        augment="",
        normalize=False,
        drop_last=False,
        tta=False,
        precision="fp32",
        channels_last=False,
        # the book trains on all 60,000 images and only reports test accuracy per epoch;
        # nothing is chosen, so no validation split is needed
        val_split=0.0,
    )


#: what the fast recipe changes of TrainConfig's defaults by kind of network
#: (benchmarks/RESULTS.md, "fast recipe ablation"). With batch norm, the defaults: Nesterov SGD
#: at a peak lr of 0.2 per 256 examples, and raw [0, 1] inputs (normalizing them measured 0.2
#: points worse at 10 epochs on two seeds: the first batch norm already does it). Without batch
#: norm (LeNet's sigmoids, AlexNet, VGG, NiN, GoogLeNet): SGD at that lr diverges or stalls
#: (the sigmoid LeNet stays at 10% for 5 epochs at lr 0.05) and AdamW does not; normalized
#: inputs are worth 3.7 points to LeNet.
FAST_BY_KIND: dict[str, dict[str, Any]] = {
    # the test set is scored once, at the end: nothing chooses on it, and the validation split
    # draws the curves (testing every epoch cost the main job 8% of its time)
    "batchnorm": dict(test_every=0),
    "plain": dict(optimizer="adamw", lr=2e-3, weight_decay=0.05, normalize=True, test_every=0),
}

#: the fast recipe's peak lr where speednet's 0.2 measured worse on validation data: ResNet-18
#: at the cpu profile's budget (32 px, 3 epochs) gains 5.8 points of validation accuracy at 0.05
#: over 2 seeds (RESULTS.md, "fast recipe: ResNet-18's learning rate")
FAST_LR_BY_MODEL: dict[str, float] = {"resnet18": 0.05}


def has_batchnorm(
    model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> bool:
    """Whether the network normalizes batches: ``net`` itself when given (a network defined
    in Python), else the zoo's ``model`` built on the meta device (no memory)."""
    if net is None:
        with torch.device("meta"):
            net = create_model(model, **(options or {}))
    return any(isinstance(m, (_BatchNorm, BatchNorm)) for m in net.modules())


#: the fast recipe for sequence models (lenet1d, fcn1d, resnet1d): AdamW at 1e-3 as Ismail Fawaz
#: et al. 2019, with a one-cycle schedule in place of their 1,500 epochs; bf16 where native (a
#: resnet1d step 1.6-2.5x faster, held-out accuracy inside fp32's seed spread). It keeps the LAST
#: epoch of the whole training split: on splits of 36-67 series, 5-fold cross-validation scored
#: that 0.901 against 0.889 for the epoch a 20% validation split picks. Scaling each series by
#: 0.8-1.2 is the one augmentation that helped (0.890 against 0.878 held out over six sets); 200
#: epochs hold out 1.7 points more for five times the time, so they are ``--recipe best``
#: (RESULTS.md, "Time series recipe"). ``--val-split 0.2`` brings the choice back (on val_loss).
FAST_SEQUENCES: dict[str, Any] = dict(
    precision="auto",
    optimizer="adamw",
    lr=1e-3,
    weight_decay=1e-2,
    batch_size=16,
    epochs=40,
    schedule="onecycle",
    warmup=0.1,
    label_smoothing=0.0,
    augment="scale:0.8-1.2",
    normalize=False,
    drop_last=False,
    val_split=0.0,
    monitor="val_loss",
)


#: the main job (``convzoo train``): speednet at width 24 for 7 epochs with flip TTA, chosen on
#: validation accuracy for time to accuracy on AVX2 fp32 and AVX-512 bf16 alike: 0.9358 over 3
#: seeds against 0.9350 for width 32 and 5 epochs, in 0.8x of its training time (8 epochs:
#: 0.9370 in 0.91x; RESULTS.md, "The main job's network and epochs")
FAST_BY_MODEL: dict[str, dict[str, Any]] = {
    "speednet": dict(epochs=7, model_options={"width": 24}, tta=True),
}


def fast(
    model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> dict[str, Any]:
    """:func:`modern`, with what was measured for one network on top
    (:data:`FAST_BY_MODEL`)."""
    cfg = modern(model, options, net)
    if net is None:
        cfg.update(FAST_BY_MODEL.get(model, {}))
    return cfg


def modern(
    model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> dict[str, Any]:
    """Nesterov SGD with a one-cycle schedule, label smoothing, weight decay, flips, the
    fastest precision and memory format measured on the machine; networks without batch norm
    get AdamW and normalized inputs instead. Sequence models get :data:`FAST_SEQUENCES`;
    ``net`` (a network defined in Python, which takes images) is read itself. The base of
    every recipe but ``d2l``."""
    if net is None and get_model_entry(model).spatial_dims == 1:
        return dict(FAST_SEQUENCES, image_size=None)
    kind = "batchnorm" if has_batchnorm(model, options, net) else "plain"
    cfg = dict(FAST_BY_KIND[kind], image_size=input_size(model, net))
    if net is None and model in FAST_LR_BY_MODEL:
        cfg["lr"] = FAST_LR_BY_MODEL[model]
    return cfg


def speedrun(
    model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> dict[str, Any]:
    """Time to accuracy: the fast recipe's network for 5 epochs, with flip test-time
    augmentation. A fixed number of epochs and the last weights: nothing is chosen, so every
    training image trains."""
    cfg = modern(model, options, net)
    # a time series has no mirror image to test on
    two_d = net is not None or get_model_entry(model).spatial_dims == 2
    # tested every epoch: the time to each accuracy is the run's result
    cfg.update(epochs=5, tta=two_d, val_split=0.0, test_every=1)
    if net is None and "model_options" in FAST_BY_MODEL.get(model, {}):
        # speednet at width 24 for 5 epochs: 0.9350 on validation (2 seeds, flip TTA), as
        # width 32's 3 seeds, in 0.6x of its time
        cfg["model_options"] = FAST_BY_MODEL[model]["model_options"]
    return cfg


#: the best recipe's epochs for sequence models, five times the fast recipe's 40: by 5-fold
#: cross-validation of the training splits they held out 0.890 against 0.873 over five
#: univariate sets (two seeds; loss 0.445 against 0.492; ArrowHead and ACSF1 up,
#: ItalyPowerDemand down) and 0.913 against 0.902 over the four small ones (four seeds).
#: For five times the time: ACSF1 and OSULeaf then take longer than 2 minutes on the 2-core
#: CPU (RESULTS.md "Time series recipe"), which is why ``fast`` keeps 40.
BEST_SEQUENCE_EPOCHS = 200
#: resnet1d in the best recipe: half the width (3.2x fewer FLOPs) and series of over 400 steps
#: folded into channels (ACSF1's 1,460 steps computed as 365 runs of 4, OSULeaf's 427 as 214 of
#: 2). Rule: the shortest --max-length that holds out within one series of the full network on
#: both long sets (5-fold cross-validation, 2 seeds): ACSF1 0.785 against 0.775 (loss 0.880
#: against 0.954), OSULeaf 0.973 (the full one: 0.975 at 40 epochs); 200 folds OSULeaf by 3 and
#: holds out 0.953. Estimated on 2 free cores: ACSF1 80 s, OSULeaf 105 s in bf16, 95 and 150 s
#: in fp32 (RESULTS.md "Time series: --recipe best in 2 minutes"; before: 245 and 216 s).
BEST_RESNET1D: dict[str, Any] = dict(model_options={"width": 32}, max_length=400)


def best(
    model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> dict[str, Any]:
    """The modern recipe's longest reach (``convzoo reproduce``'s best row): ``fast`` for 30
    epochs with flip test-time augmentation. Decided on 6,000 held-out training images
    (``benchmarks/best_recipe.py``, ``benchmarks/RESULTS.md`` "best recipe"): speednet's
    validation accuracy 0.9435 after 30 epochs; random 2-pixel shifts and random erasing on top
    of the flips, the Fashion-MNIST literature's regularisers for hundreds of epochs, measured
    0.9385 at 30 and are not in it. Sequence models: :data:`FAST_SEQUENCES` for
    :data:`BEST_SEQUENCE_EPOCHS` epochs (no flips: a time series has no mirror image)."""
    cfg = modern(model, options, net)
    if net is None and get_model_entry(model).spatial_dims == 1:
        # the curves' test points every 10 epochs, 20 in all: tested at every epoch, ArrowHead's
        # 200 take 63 s instead of 39 (its 175 test series and the batch-norm refresh before)
        cfg.update(epochs=BEST_SEQUENCE_EPOCHS, test_every=10)
        return {**cfg, **BEST_RESNET1D} if model == SEQUENCE_MODEL else cfg
    cfg.update(epochs=30, tta=True)
    return cfg


def finetune(
    model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> dict[str, Any]:
    """``convzoo finetune``'s defaults, the chapter's recipe: a small learning rate (0.01, the
    new head 10x that, ``--head-lr-mult``) for few epochs at the book's fine-tuning batch size,
    cosine decay without warm-up (the features are already trained), no dropped batch
    (few-shot sets are small). 0.01 beat 0.003 and 0.03 in the few-shot demonstration's
    tuning runs (``benchmarks/RESULTS.md``)."""
    cfg = modern(model, options, net)
    cfg.update(
        test_every=1,  # no validation split: the test points are the only curve
        epochs=5,
        lr=0.01,
        batch_size=128,
        schedule="cosine",
        warmup=0.0,
        augment="",
        drop_last=False,
        val_split=0.0,  # few-shot sets are tiny: every image trains; nothing is chosen
    )
    return cfg


def own_images_defaults(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """What the recipe's values become on your own images (folder:, csv:) where the user did not
    set them: no mirror flips, in training (``augment``) or at test time (``tta``). A mirrored
    digit or letter is another class or none. On validation data of folders (3 seeds,
    ``benchmarks/own_images_defaults.py``): sklearn's digits 0.985 without the fast recipe's
    flip, 0.971 with it; 6,000 Fashion-MNIST images 0.883 without, 0.881 with (no gain at that
    budget); no photo set could be had offline to measure what flips give there."""
    out: dict[str, Any] = {}
    if "augment" not in overrides:
        ops = [op for op in values["augment"].split(",") if op.strip()]
        out["augment"] = ",".join(op for op in ops if op.split(":")[0] not in ("hflip", "vflip"))
    if "tta" not in overrides:
        out["tta"] = False
    return out


RECIPES: dict[str, Callable[..., dict[str, Any]]] = {
    "d2l": d2l,
    "fast": fast,
    "speedrun": speedrun,
    "best": best,
    "finetune": finetune,
}

#: the model a recipe trains when none is named, where it is not TrainConfig's (speednet)
DEFAULT_MODEL = {"d2l": "lenet"}
#: the same on a time-series data set (ucr:NAME, uea:NAME): resnet1d, the d2l recipe's LeNet
DEFAULT_SEQUENCE_MODEL = {"d2l": "lenet1d"}
SEQUENCE_MODEL = "resnet1d"


def default_model(recipe: str, dataset: str) -> str | None:
    """The model ``recipe`` trains on ``dataset`` when the user names none (``None``:
    TrainConfig's)."""
    from ..data.sequences import is_sequence_name

    if is_sequence_name(dataset):
        return DEFAULT_SEQUENCE_MODEL.get(recipe, SEQUENCE_MODEL)
    return DEFAULT_MODEL.get(recipe)


def recipe_defaults(
    recipe: str, model: str, options: dict[str, Any] | None = None, net: nn.Module | None = None
) -> dict[str, Any]:
    """The recipe's values for ``model`` (built with ``options``), or for ``net``, a network
    defined in Python that ``model`` only names: its kind is read from the module itself, its
    input size is the data's, and the book's per-model settings do not apply."""
    if recipe not in RECIPES:
        raise UnknownNameError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    if net is None:
        get_model_entry(model)  # unknown model: one clear error listing the known ones
    return RECIPES[recipe](model, options, net)
