"""Training: :func:`fit`, the :class:`Trainer` loop, callbacks, recipes and run directories."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from torch import nn

from ..data.dataset import ImageDataset
from .callbacks import Checkpointer, ConsoleLogger, EarlyStopping, HistoryWriter
from .config import TrainConfig
from .finetuning import FinetuneConfig, finetune
from .history import History
from .recipes import BOOK_SETTINGS, RECIPES
from .run import RunResult, resolve_config, train
from .trainer import Callback, NonFiniteLossError, SingleProcess, Trainer


def fit(
    model: nn.Module | str,
    data: ImageDataset | tuple[ImageDataset, ImageDataset | None] | str,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    test_data: ImageDataset | None = None,
    recipe: str = "fast",
    out: str | Path | None = None,
    callbacks: list[Callback] | None = None,
    verbose: bool = True,
    **config: Any,
) -> History:
    """Train ``model`` on ``data`` and return the per-epoch :class:`History`.

    ``model``: a zoo name or a module (a zoo model keeps its name for the saved weights).
    ``data``: a data set name (train and test splits are loaded), an :class:`ImageDataset`
    (with ``test_data``) or a ``(train, test)`` pair. Values not given come from ``recipe``
    (``fast``, ``d2l`` or ``speedrun``); any :class:`TrainConfig` field can be passed as a
    keyword. With ``out`` the run directory (checkpoints, curves, weights) is written there;
    without it nothing is written. ``history.run_dir`` tells where.
    """
    overrides: dict[str, Any] = {
        k: v for k, v in dict(epochs=epochs, lr=lr, batch_size=batch_size).items() if v is not None
    }
    overrides.update(config)
    module = model if isinstance(model, nn.Module) else None
    if module is None:
        overrides["model"] = model
    elif hasattr(module, "model_name"):
        overrides["model"] = module.model_name
    else:
        raise TypeError("fit() needs a zoo model (convzoo.create_model) or a model name")
    if isinstance(data, str):
        overrides["dataset"] = data
        pair = None
    elif isinstance(data, ImageDataset):
        pair = (data, test_data)
        overrides.setdefault("dataset", data.name)
    else:
        pair = (data[0], data[1])
        overrides.setdefault("dataset", data[0].name)
    if module is not None:
        overrides.setdefault(
            "model_options",
            {
                k: v
                for k, v in module.model_kwargs.items()
                if k not in ("num_classes", "in_channels")
            },
        )
    if out is not None:
        overrides["out"] = str(out)
    cfg = resolve_config(overrides, recipe)
    result = train(
        cfg,
        model=module,
        data=pair,
        callbacks=callbacks,
        save=out is not None,
        stdout=None if verbose else io.StringIO(),
    )
    return result.history


__all__ = [
    "BOOK_SETTINGS",
    "RECIPES",
    "Callback",
    "Checkpointer",
    "ConsoleLogger",
    "EarlyStopping",
    "FinetuneConfig",
    "History",
    "HistoryWriter",
    "NonFiniteLossError",
    "RunResult",
    "SingleProcess",
    "TrainConfig",
    "Trainer",
    "finetune",
    "fit",
    "resolve_config",
    "train",
]
