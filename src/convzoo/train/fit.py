"""``convzoo.fit``: the same training as ``convzoo train``, from Python."""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import LabelledData
from ..data.sequences import SequenceDataset
from ..errors import ConvzooError, InputSizeError
from .config import ConfigError, TrainConfig
from .history import History
from .meta import ModelMeta
from .run import resolve_config, train
from .setup import load_data
from .trainer import Callback

DataArg = LabelledData | tuple[LabelledData, LabelledData | None] | str


def user_overrides(
    *,
    epochs: int | None,
    lr: float | None,
    batch_size: int | None,
    out: str | Path | None,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The :class:`TrainConfig` values a Python caller set (``None``: the recipe's); a keyword
    that is no field (a typo such as ``epoch=1``) is an error, never silently dropped."""
    check_keywords(config)
    given = dict(epochs=epochs, lr=lr, batch_size=batch_size)
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    overrides.update(config)
    if out is not None:
        overrides["out"] = str(out)
    return overrides


def check_keywords(config: dict[str, Any]) -> None:
    fields = TrainConfig.field_names()
    for key in config:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean {close[0]}=? " if close else ""
            raise ConfigError(
                f"unknown keyword {key}=; {hint}any TrainConfig field may be given "
                f"(convzoo train --help lists them)"
            )


def in_memory_data(
    pair: tuple[LabelledData, LabelledData | None], cfg: TrainConfig
) -> tuple[LabelledData, LabelledData | None]:
    """Data sets handed over in memory, restricted to ``cfg.subset`` as a loaded set would be
    (the subset is saved with the weights, and evaluate applies it again)."""
    from ..data import apply_subset

    if cfg.skip_bad_images:
        raise ConfigError(
            "skip_bad_images= applies to folder: data sets loaded by name (fit(model, "
            "'folder:PATH', skip_bad_images=True)); data handed over in memory is already read"
        )
    train_data, test_data = pair
    if test_data is not None:
        test_data = apply_subset(test_data, cfg.subset)
    return apply_subset(train_data, cfg.subset), test_data


def split_data(
    data: DataArg, test_data: LabelledData | None
) -> tuple[tuple[LabelledData, LabelledData | None] | None, str | None]:
    """``data`` as a (train, test) pair, or ``(None, name)`` for a data set to load by name."""
    if isinstance(data, str):
        return None, data
    if isinstance(data, LabelledData):  # images or time series
        return (data, test_data), data.name
    return (data[0], data[1]), data[0].name


def add_model(overrides: dict[str, Any], model: nn.Module | str) -> None:
    """Name the model in ``overrides``: a zoo name, a zoo model's name and options, or a
    Python network's class name (a label only: nothing is built by it)."""
    if isinstance(model, str):
        overrides["model"] = model
    elif not hasattr(model, "model_name"):
        overrides.setdefault("model", type(model).__name__)
    else:
        overrides["model"] = model.model_name
        options = {
            k: v for k, v in model.model_kwargs.items() if k not in ("num_classes", "in_channels")
        }
        overrides.setdefault("model_options", options)


def fit(
    model: nn.Module | str,
    data: DataArg,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    test_data: LabelledData | None = None,
    recipe: str = "fast",
    out: str | Path | None = None,
    callbacks: list[Callback] | None = None,
    verbose: bool = True,
    live: bool | None = None,
    **config: Any,
) -> History:
    """Train ``model`` on ``data`` and return the per-epoch :class:`History`.

    ``model``: a zoo name, a zoo model (it keeps its name for the saved weights) or any
    ``nn.Module`` that maps N x C x H x W images to N x num_classes logits (trained at the
    data's image size; reload its run with ``convzoo.load_model(run, model=...)``). A module
    is trained in place and gets ``model.meta`` (:class:`ModelMeta`: classes, input size,
    normalization), so ``convzoo.predict(model, images)`` works on it right away.
    ``data``: a data set name (train and test splits are loaded), an :class:`ImageDataset`
    or :class:`SequenceDataset` (with ``test_data``) or a ``(train, test)`` pair. Values not
    given come from ``recipe`` (``fast``, ``d2l`` or ``speedrun``); any :class:`TrainConfig`
    field can be passed as a keyword. With ``out`` the run directory (checkpoints, curves,
    weights) is written there; without it nothing is written. ``history.run_dir`` tells where.
    In a Jupyter kernel the loss and accuracy curves are redrawn in place after each epoch, as
    the book's ``Animator`` does (``live=False``: not; ``True``: also in an IPython front end
    not recognised as a kernel).

    With a validation split (``val_split``; the ``fast`` recipe's default) the module ends
    holding the weights of the best validation epoch (``history.chosen_epoch``, and
    ``model.meta.epoch``; ``best.safetensors`` in ``out``) and ``history.last_state`` keeps
    the last epoch's where they differ (``model.safetensors``).
    """
    overrides = user_overrides(epochs=epochs, lr=lr, batch_size=batch_size, out=out, config=config)
    module = model if isinstance(model, nn.Module) else None
    python_net = module is not None and not hasattr(module, "model_name")
    add_model(overrides, model)
    pair, name = split_data(data, test_data)
    if pair is None:
        overrides["dataset"] = name
    else:
        overrides.setdefault("dataset", name)
    cfg = resolve_config(overrides, recipe, net=module if python_net else None)
    given = in_memory_data(pair, cfg) if pair is not None else None
    if module is not None:
        given = given or load_data(cfg)
        if python_net or not isinstance(given[0], SequenceDataset):  # zoo 1-D models check
            check_logits(module, given[0], cfg.image_size)
    result = train(
        cfg,
        model=module,
        data=given,
        callbacks=callbacks,
        save=out is not None,
        stdout=None if verbose else io.StringIO(),
        live=live,
    )
    if module is not None:  # it holds the weights chosen on validation data, if any were
        chosen = result.metrics.get("best_epoch")  # None: no validation split, the last epoch
        module.meta = ModelMeta.from_dict({**result.meta, "epoch": chosen})
    return result.history


def check_logits(net: nn.Module, data: LabelledData, image_size: int | None) -> None:
    """One forward pass on two of the training images before anything is set up, so that a
    network that does not map them to one logit per class fails in one line naming the
    shapes, not deep inside the first training step."""
    label = getattr(net, "model_name", type(net).__name__)
    if isinstance(data, SequenceDataset):
        raise InputSizeError(
            f"fit trains a network defined in Python ({label}) on images; {data.name} holds "
            f"time series: use a zoo sequence model (lenet1d, fcn1d, resnet1d)"
        )
    x = data.images[:2].float().div(255.0)
    size = image_size or data.image_size[0]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    param = next(net.parameters(), None)
    x = x.to(param.device if param is not None else "cpu")
    shape = "x".join(map(str, x.shape))
    was_training = net.training
    net.eval()  # batch statistics of two images would be noise; eval gives the same shapes
    try:
        with torch.no_grad():
            out = net(x)
    except ConvzooError:  # a zoo model's own input check: already one clear line
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputSizeError(
            f"{label} fails on a {shape} batch of {data.name} images: {first}"
        ) from None
    finally:
        net.train(was_training)
    expected = (len(x), data.num_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = "x".join(map(str, out.shape)) if isinstance(out, torch.Tensor) else type(out)
        raise InputSizeError(
            f"{label} maps a {shape} batch of {data.name} images to {got}; fit needs "
            f"N x {data.num_classes} logits, one per class of {data.name}"
        )
