"""What a run is made of, built from its config before the first step: the data (with the
validation split carved out), the model placed by the strategy, the loaders and the precision.

:func:`build_setup` is shared by training (:mod:`convzoo.train.run`) and the lr finder; it
knows the strategy only through its placing and its rank.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import make_loader
from ..data.dataset import ImageDataset, LabelledData
from ..data.folder import FolderIndex
from ..data.images import pixel_profile
from ..data.loader import DeviceLoader
from ..data.sequences import SequenceDataset
from ..data.sources import FILES_PREFIXES
from ..data.split import split_validation
from ..errors import InputSizeError
from ..models import create_model, get_model_entry
from ..parallel import Strategy
from ..runtime import Execution, Precision, choose_execution, tune_backends
from .config import ConfigError, TrainConfig
from .meta import MODULE_CLASS
from .optim import xavier_init

Normalization = tuple[Sequence[float], Sequence[float]]

#: fewest validation images of your own that the kept epoch is chosen on. On sklearn's digits
#: (the fast recipe's 20 one-cycle epochs, 3 seeds, 300 held-out training images judging) the
#: chosen epoch held out 8.6, 2.9, 1.2, 1.0 and 1.1 points worse than the last with 10, 20, 50,
#: 100 and 200 validation images (small splits tie at 1.000 early and the first tie wins);
#: choosing never won up to 200, so below 500 the last epoch is kept (RESULTS.md, "Your own
#: images: defaults"). Named data sets and time series choose on any split, as before.
MIN_VAL_TO_CHOOSE = 500


@dataclass
class Setup:
    """What a run is made of, built from its config before the first step."""

    model: nn.Module
    train_data: LabelledData
    val_data: LabelledData | None  #: carved out of the training split (--val-split)
    test_data: LabelledData | None
    train_loader: DeviceLoader
    val_loader: DeviceLoader | None
    test_loader: DeviceLoader | None
    #: the training images in a fixed order without augmentation (batch-norm refresh)
    plain_train_loader: DeviceLoader
    execution: Execution  #: precision and memory format, and why
    meta: dict[str, Any]  #: what rebuilding and using the trained network needs

    #: fewest validation images the kept epoch is chosen on (:data:`MIN_VAL_TO_CHOOSE` for
    #: your own images); a smaller split is reported, and the last epoch is kept
    min_val: int = 1

    @property
    def precision(self) -> Precision:
        return self.execution.precision

    @property
    def chooses(self) -> bool:
        return self.val_data is not None and len(self.val_data) >= self.min_val


def load_data(cfg: TrainConfig) -> tuple[LabelledData, LabelledData]:
    """Both splits of ``cfg.dataset``, restricted to ``cfg.subset``. Image files of the user's
    own are indexed first and decoded into memory only if their pixels at the training size,
    after the subset, fit (``cfg.in_memory``; the budget is shared by the processes of a
    machine), else streamed."""
    from ..data import apply_subset, load_dataset, place
    from ..data.folder import memory_budget, val_last
    from ..data.sources import index_files

    if not cfg.dataset.startswith(FILES_PREFIXES):
        train = load_dataset(cfg.dataset, split="train", root=cfg.data_dir)
        test = load_dataset(cfg.dataset, split="test", root=cfg.data_dir)
        return apply_subset(train, cfg.subset), apply_subset(test, cfg.subset)
    kw = {"skip_bad_images": cfg.skip_bad_images}
    train = index_files(cfg.dataset, "train", image_size=cfg.image_size, **kw)
    test = index_files(cfg.dataset, "test", channels=train.channels, image_size=train.size, **kw)
    train, test = apply_subset(train, cfg.subset), apply_subset(test, cfg.subset)
    train = val_last(*split_validation(train, cfg.val_split, seed=cfg.seed))
    if cfg.cache:
        from ..data.cache import cached

        return cached(train, cfg.cache)[0], cached(test, cfg.cache)[0]
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's, one copy each
    (train, test), _ = place([train, test], cfg.in_memory, memory_budget() // ranks_here)
    return train, test


def build_model(
    cfg: TrainConfig, data: LabelledData, options: dict[str, Any] | None = None
) -> nn.Module:
    """``cfg.model`` for ``data``, built with ``options`` (default ``cfg.model_options``)."""
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed, on every rank
    model = create_model(
        cfg.model,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        **(cfg.model_options if options is None else options),
    )
    if cfg.init == "xavier":
        xavier_init(model)
    return model


def model_options(cfg: TrainConfig, length: int) -> dict[str, Any]:
    """``cfg.model_options``, with the ``fold`` that keeps a 1-D network computing over at most
    ``--max-length`` steps of series ``length`` steps long (an explicit ``-o fold=F`` wins)."""
    options = dict(cfg.model_options)
    if cfg.max_length is None or length <= cfg.max_length or "fold" in options:
        return options
    if "fold" not in inspect.signature(get_model_entry(cfg.model).builder).parameters:
        raise ConfigError(
            f"--max-length folds the series of resnet1d; {cfg.model} cannot fold them: drop "
            "--max-length or train resnet1d"
        )
    return {**options, "fold": math.ceil(length / cfg.max_length)}


def check_image_size(model: nn.Module, size: int) -> None:
    smallest = getattr(model, "min_input_size", 1)
    if size < smallest:
        name = getattr(model, "display_name", type(model).__name__)
        if getattr(model, "spatial_dims", 2) == 1:
            raise InputSizeError(
                f"{name} needs sequences of at least {smallest} steps; {size} is too short "
                f"(--image-size {smallest} resamples them, or pick a model that downsamples less)"
            )
        raise InputSizeError(
            f"{name} needs inputs of at least {smallest}x{smallest} pixels; --image-size "
            f"{size} is too small"
        )


def check_data_kind(cfg: TrainConfig, model: nn.Module, data: LabelledData) -> None:
    """A 1-D model needs time series and a 2-D model images: one line naming both, not a
    shape error in the first convolution."""
    series = isinstance(data, SequenceDataset)
    dims = getattr(model, "spatial_dims", 2)
    if series and dims != 1:
        raise InputSizeError(
            f"{cfg.dataset} holds time series but {cfg.model} takes images; pick a sequence "
            "model: lenet1d, fcn1d or resnet1d (docs/sequences.md)"
        )
    if not series and dims == 1:
        raise InputSizeError(
            f"{cfg.model} takes time series but {cfg.dataset} holds images; train it on ucr:NAME "
            "or uea:NAME (docs/sequences.md)"
        )
    if not series and cfg.max_length is not None:
        raise ConfigError("--max-length folds time series; an image has none: drop --max-length")
    if series and cfg.tta:
        raise ConfigError("--tta mirrors images; a time series has no mirror image: drop --tta")


def describe_model(
    cfg: TrainConfig,
    data: LabelledData,
    image_size: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    precision: str = "fp32",
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What rebuilding and using the trained network needs (saved with its weights);
    ``options``: the model options it was built with (default ``cfg.model_options``)."""
    return {
        # evaluate as it was tested during training
        "precision": precision,
        "tta": cfg.tta,
        "model": cfg.model,
        "model_options": cfg.model_options if options is None else options,
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "classes": list(data.classes),
        "image_size": image_size,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
        "dataset": cfg.dataset,
        "subset": cfg.subset,
        # a series is padded or cut to the training set's length before any resampling to
        # image_size, z-normalised or not as its data set was (predicting on a file does the same)
        **(
            {"length": data.length, "znorm": data.znorm}
            if isinstance(data, SequenceDataset)
            else {}
        ),
        # what predict compares images with; a streamed set is not decoded twice for it
        **({"pixels": pixel_profile(data.images)} if isinstance(data, ImageDataset) else {}),
    }


def build_setup(
    cfg: TrainConfig,
    strategy: Strategy,
    model: nn.Module | None,
    data: tuple[LabelledData, LabelledData | None] | None,
    normalization: Normalization | None,
) -> Setup:
    """Data, model (on the device, in its memory format), loaders and precision."""
    tune_backends(strategy.device, cfg.deterministic)
    train_data, test_data = data if data is not None else load_data(cfg)
    train_data, val_data = split_validation(train_data, cfg.val_split, seed=cfg.seed)
    series = isinstance(train_data, SequenceDataset)
    image_size = cfg.image_size or (train_data.length if series else train_data.image_size[0])
    options = model_options(cfg, image_size) if series and model is None else None
    model = model if model is not None else build_model(cfg, train_data, options)
    check_data_kind(cfg, model, train_data)
    check_image_size(model, image_size)
    spatial = (image_size,) if series else (image_size, image_size)
    shape = (train_data.in_channels, *spatial)
    # timed on one process; every process of a group must compute the same way
    execution = strategy.broadcast_object(
        choose_execution(model, shape, strategy.device, cfg.precision, cfg.channels_last)
        if strategy.is_main
        else None
    )
    precision, channels_last = execution.precision, execution.channels_last
    strategy.place(model, (train_data.in_channels, *spatial))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    mean, std = (normalization or _stats(train_data, strategy)) if cfg.normalize else (None, None)
    loader_args = dict(
        image_size=image_size,
        mean=mean,
        std=std,
        device=strategy.device,
        rank=strategy.rank,
        world_size=strategy.world_size,
        channels_last=channels_last,
    )

    def eval_loader(data: LabelledData | None) -> DeviceLoader | None:
        return make_loader(data, cfg.eval_batch_size, **loader_args) if data is not None else None

    meta = describe_model(cfg, train_data, image_size, mean, std, precision.name, options)
    if not hasattr(model, "model_name"):  # not rebuilt by name: loaded into (load_model)
        meta[MODULE_CLASS] = f"{type(model).__module__}.{type(model).__qualname__}"
    train_loader, plain = training_loaders(cfg, train_data, strategy.world_size, loader_args)
    own = cfg.dataset.startswith(FILES_PREFIXES)
    return Setup(
        model,
        train_data,
        val_data,
        test_data,
        train_loader,
        eval_loader(val_data),
        eval_loader(test_data),
        plain,
        execution,
        meta,
        MIN_VAL_TO_CHOOSE if own else 1,
    )


def _stats(data: LabelledData, strategy: Strategy) -> Normalization:
    """The training set's pixel statistics; streamed files are read a share per rank."""
    if not isinstance(data, FolderIndex):
        return data.stats()

    def reduce(sums: torch.Tensor) -> None:
        sums.copy_(strategy.all_reduce_(sums.to(strategy.device)).cpu())

    return data.stats(strategy.rank, strategy.world_size, reduce)


def training_loaders(
    cfg: TrainConfig, data: LabelledData, world_size: int, loader_args: dict[str, Any]
) -> tuple[DeviceLoader, DeviceLoader]:
    """The shuffled, augmented training loader (this rank's share), and the plain one the
    batch-norm refresh reads: the whole set in one process, as every other process does."""
    series = isinstance(data, SequenceDataset)
    train = make_loader(
        data,
        cfg.batch_size,
        shuffle=True,
        augment=_augment(cfg.augment, series),
        seed=cfg.seed,
        drop_last=cfg.drop_last and len(data) >= cfg.batch_size * world_size,
        **loader_args,
    )
    plain = make_loader(
        data,
        cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
        **{**loader_args, "rank": 0, "world_size": 1},
    )
    return train, plain


def _augment(spec: str, series: bool = False) -> Any:
    if not spec:
        return None
    from ..data import parse_augment, parse_augment1d

    return parse_augment1d(spec) if series else parse_augment(spec)
