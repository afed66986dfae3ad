"""``convzoo.fit``: the same training as ``convzoo train``, from Python."""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any

from torch import nn

from ..data.dataset import LabelledData
from .config import ConfigError, TrainConfig
from .history import History
from .run import resolve_config, train
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
    **config: Any,
) -> History:
    """Train ``model`` on ``data`` and return the per-epoch :class:`History`.

    ``model``: a zoo name or a module (a zoo model keeps its name for the saved weights).
    ``data``: a data set name (train and test splits are loaded), an :class:`ImageDataset`
    or :class:`SequenceDataset` (with ``test_data``) or a ``(train, test)`` pair. Values not
    given come from ``recipe`` (``fast``, ``d2l`` or ``speedrun``); any :class:`TrainConfig`
    field can be passed as a keyword. With ``out`` the run directory (checkpoints, curves,
    weights) is written there; without it nothing is written. ``history.run_dir`` tells where.
    """
    overrides = user_overrides(epochs=epochs, lr=lr, batch_size=batch_size, out=out, config=config)
    module = model if isinstance(model, nn.Module) else None
    if module is None:
        overrides["model"] = model
    elif hasattr(module, "model_name"):
        overrides["model"] = module.model_name
        options = {
            k: v for k, v in module.model_kwargs.items() if k not in ("num_classes", "in_channels")
        }
        overrides.setdefault("model_options", options)
    else:
        raise TypeError("fit() needs a zoo model (convzoo.create_model) or a model name")
    pair, name = split_data(data, test_data)
    if pair is None:
        overrides["dataset"] = name
    else:
        overrides.setdefault("dataset", name)
    cfg = resolve_config(overrides, recipe)
    result = train(
        cfg,
        model=module,
        data=in_memory_data(pair, cfg) if pair is not None else None,
        callbacks=callbacks,
        save=out is not None,
        stdout=None if verbose else io.StringIO(),
    )
    return result.history
