"""A fine-tuning run: load the source, adapt it, freeze, then an ordinary training run.

Everything is set up here and handed to :func:`convzoo.train.run.train` (parameter groups and a
freezing callback), so checkpoints, exact resume and the run directory work as for any run.
``finetune.json`` in the run directory records what :func:`resume_finetune` needs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn

from ..data import ImageDataset
from ..data.sources import absolute_name
from ..errors import CheckpointError, FinetuneError
from ..io import atomic_write_json
from ..train.callbacks import Checkpointer
from ..train.config import TrainConfig
from ..train.fit import DataArg, in_memory_data, split_data, user_overrides
from ..train.optim import xavier_init
from ..train.run import RunResult, resolve_config, train
from ..train.rundir import default_run_dir, resume_config
from ..train.setup import build_model, load_data
from ..train.trainer import Callback, NonFiniteLossError, Trainer
from .adapt import adapt_input_channels, adapt_normalization
from .config import RECORD, FinetuneConfig
from .freeze import FreezeStages, frozen_stages, param_groups, require_zoo
from .sources import Pretrained, load_source


class WriteRecord(Callback):
    """Writes the fine-tuning record into the run directory once it exists."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path, self.record = path, record

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.is_main and not self.path.exists():
            atomic_write_json(self.path, self.record)


def _prepare_data(
    cfg: TrainConfig, data: tuple[ImageDataset, ImageDataset | None] | None
) -> tuple[ImageDataset, ImageDataset | None]:
    return load_data(cfg) if data is None else in_memory_data(data, cfg)


def _config(
    src: Pretrained,
    overrides: dict[str, Any],
    data: tuple[ImageDataset, ImageDataset | None] | None,
    recipe: str,
    save: bool,
) -> TrainConfig:
    """The run's config: the user's values, then the source's (architecture, input size,
    normalization), then the recipe's."""
    model = src.model
    options = {
        k: v for k, v in model.model_kwargs.items() if k not in ("num_classes", "in_channels")
    }
    values = {"model": model.model_name, "model_options": options, "image_size": src.image_size}
    # inputs are prepared as the source saw them: its mean/std, or pixels in [0, 1]
    values["normalize"] = src.mean is not None
    cfg = resolve_config({**values, **overrides}, overrides.get("recipe", recipe))
    if data is not None and "dataset" not in overrides:
        cfg = dataclasses.replace(cfg, dataset=absolute_name(data[0].name))
    if save and cfg.out is None:
        cfg = dataclasses.replace(cfg, out=str(default_run_dir(f"{cfg.model}-finetune")))
    return cfg


def _new_head(model: nn.Module, src: Pretrained, data: ImageDataset, ft: FinetuneConfig, seed: int):
    """A new Xavier-initialised classifier unless the data has exactly the source's classes."""
    same_classes = src.classes is not None and src.classes == list(data.classes)
    if not ft.reset_head and same_classes:
        return f"head kept (same classes), lr x{ft.head_lr_mult:g}"
    require_zoo(model, "reset_classifier", "a new classifier")
    torch.manual_seed(seed)  # the same new head for the same seed
    xavier_init(model.reset_classifier(data.num_classes))
    return (
        f"new head {model.classifier_path} ({data.num_classes} classes, Xavier init, "
        f"lr x{ft.head_lr_mult:g})"
    )


def _freeze_note(model: nn.Module, frozen: list, unfreeze_at: int | None) -> list[str]:
    if not frozen:
        return []
    until = f" until epoch {unfreeze_at}" if unfreeze_at else ""
    return [f"frozen stages {', '.join(n for n, _ in frozen)} of {len(model.stages)}{until}"]


def _fmt(values: Sequence[float] | None) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values or ()) + ")"


def _adapt(
    src: Pretrained,
    ft: FinetuneConfig,
    cfg: TrainConfig,
    train_data: ImageDataset,
    frozen: list[tuple[str, nn.Module]],
) -> tuple[list[str], FreezeStages, tuple[Sequence[float] | None, Sequence[float] | None]]:
    """Fit the source network to the new data (input channels, a new head, the frozen stages)
    and say what was done; the input normalization (the source's, adapted) to train with."""
    model = src.model
    notes = [f"from {src.description}"]
    if not src.report.clean:
        notes.append(f"weights: {src.report}")
    how = adapt_input_channels(model, train_data.in_channels)
    notes += [how] if how else []
    mean, std = (
        adapt_normalization(src.mean, src.std, train_data.in_channels)
        if cfg.normalize
        else (None, None)
    )
    notes.append(_new_head(model, src, train_data, ft, cfg.seed))
    freezer = FreezeStages([m for _, m in frozen], ft.unfreeze_at)
    freezer.apply(0)
    notes += _freeze_note(model, frozen, ft.unfreeze_at)
    if mean is not None:
        notes.append(
            f"input {cfg.image_size} px, normalized with the source's mean "
            f"{_fmt(mean)} std {_fmt(std)}"
        )
    return notes, freezer, (mean, std)


def run_finetune(
    ft: FinetuneConfig,
    overrides: dict[str, Any],
    *,
    data: tuple[ImageDataset, ImageDataset | None] | None = None,
    recipe: str = "finetune",
    callbacks: list[Callback] | None = None,
    save: bool = True,
    stdout: TextIO | None = None,
) -> RunResult:
    """Fine-tune ``ft.source`` with the :class:`TrainConfig` values in ``overrides`` (only
    those the user set; the rest come from the source and then from ``recipe``)."""
    stream = stdout or sys.stdout
    ft.validate()
    src = load_source(ft.source, ft.weights, strict=ft.strict)
    model = src.model
    frozen = frozen_stages(model, ft.freeze, ft.freeze_until)  # before loading any data
    cfg = _config(src, overrides, data, recipe, save)
    train_data, test_data = _prepare_data(cfg, data)

    notes, freezer, (mean, std) = _adapt(src, ft, cfg, train_data, frozen)
    print("fine-tuning " + "; ".join(notes), file=stream, flush=True)

    record = {
        "finetune": ft.to_dict(),
        "source": src.description,
        "normalization": {"mean": mean, "std": std},
        "frozen_stages": [n for n, _ in frozen],
        "weights_report": src.report.to_dict(),
    }
    cbs: list[Callback] = [freezer]
    if save:
        cbs.append(WriteRecord(Path(cfg.out) / RECORD, record))
    try:
        return train(
            cfg,
            model=model,
            data=(train_data, test_data),
            param_groups=param_groups(model, cfg.lr, ft.head_lr_mult),
            normalization=(mean, std) if mean is not None else None,
            callbacks=cbs + (callbacks or []),
            save=save,
            stdout=stream,
        )
    except NonFiniteLossError as e:
        if (e.epoch, e.step) != (1, 1):
            raise
        # no learning rate makes the very first loss NaN: the source's weights do (a damaged
        # file can hold huge finite values that pass load_model's NaN check)
        note = f" The first step already: the weights of {ft.weights or ft.source} may be damaged."
        raise NonFiniteLossError(e.value, e.epoch, e.step, e.lr, note=note) from None


def read_record(run_dir: Path) -> tuple[FinetuneConfig, dict[str, Any]]:
    """The fine-tuning settings and input normalization a run directory recorded."""
    path = run_dir / RECORD
    if not path.is_file():
        raise FinetuneError(
            f"{run_dir} is not a fine-tuning run (no {RECORD}); resume it with "
            f"convzoo train --resume {run_dir}"
        )
    if not (run_dir / Checkpointer.FILENAME).is_file():
        raise CheckpointError(f"{run_dir} has no {Checkpointer.FILENAME} to resume from")
    try:
        record = json.loads(path.read_text())
        ft, norm = FinetuneConfig.from_dict(record["finetune"]), record["normalization"]
        ft.validate()  # a hand-edited record may hold anything
        if not isinstance(norm, dict):
            raise TypeError("normalization")
        return ft, norm
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
        RecursionError,
        KeyError,
        TypeError,
        AttributeError,
        FinetuneError,
    ):
        raise FinetuneError(f"{path} is damaged; the run cannot be resumed") from None


def resume_finetune(
    run_dir: str | Path,
    changes: dict[str, Any] | None = None,
    *,
    data: tuple[ImageDataset, ImageDataset | None] | None = None,
    callbacks: list[Callback] | None = None,
    stdout: TextIO | None = None,
) -> RunResult:
    """Continue a fine-tuning run from its last checkpoint, exactly as if never stopped."""
    run_dir = Path(run_dir)
    ft, norm = read_record(run_dir)
    cfg = resume_config(run_dir, changes or {})
    train_data, test_data = _prepare_data(cfg, data)
    model = build_model(cfg, train_data)  # the fine-tuned architecture; weights: checkpoint
    frozen = frozen_stages(model, ft.freeze, ft.freeze_until)
    freezer = FreezeStages([m for _, m in frozen], ft.unfreeze_at)
    return train(
        cfg,
        model=model,
        data=(train_data, test_data),
        resume=run_dir,
        param_groups=param_groups(model, cfg.lr, ft.head_lr_mult),
        normalization=(norm["mean"], norm["std"]) if norm.get("mean") is not None else None,
        callbacks=[freezer, *(callbacks or [])],
        stdout=stdout,
    )


def finetune(
    source: str | Path | None,
    data: DataArg | None = None,
    *,
    weights: str | None = None,
    test_data: ImageDataset | None = None,
    freeze: int = FinetuneConfig.freeze,
    freeze_until: str | None = None,
    unfreeze_at: int | None = None,
    head_lr_mult: float = FinetuneConfig.head_lr_mult,
    reset_head: bool = False,
    strict: bool = False,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    recipe: str = "finetune",
    out: str | Path | None = None,
    resume: str | Path | None = None,
    callbacks: list[Callback] | None = None,
    verbose: bool = True,
    **config: Any,
) -> RunResult:
    """Fine-tune a trained network on ``data``; returns the run's history, metrics and model.

    ``source``: one of our run directories (or its ``model.safetensors``), or
    ``"torchvision:resnet18"`` with ``weights`` (a state-dict file, or ``"DEFAULT"`` to download
    torchvision's). ``data``: a data set name, an :class:`ImageDataset` (with ``test_data``) or a
    ``(train, test)`` pair; ``subset="classes=5-9,shots=20"`` restricts it. The defaults are the
    chapter's recipe (``recipe="finetune"``: small learning rate, few epochs; the new head at
    ``head_lr_mult`` times the rate); any :class:`TrainConfig` field can be passed as a keyword.
    With ``out`` the run directory is written there, without it nothing is written;
    ``resume=RUN_DIR`` continues an interrupted fine-tuning run (``source`` may then be None).
    """
    overrides = user_overrides(epochs=epochs, lr=lr, batch_size=batch_size, out=out, config=config)
    pair, name = split_data(data, test_data) if data is not None else (None, None)
    if pair is None and name is not None:
        overrides["dataset"] = name
    stream = None if verbose else io.StringIO()
    if resume is not None:
        if source is not None:
            raise FinetuneError("give a source to start from or a run to resume, not both")
        return resume_finetune(resume, overrides, data=pair, callbacks=callbacks, stdout=stream)
    ft = FinetuneConfig(
        source=str(source) if source is not None else "",
        weights=weights,
        freeze=freeze,
        freeze_until=freeze_until,
        unfreeze_at=unfreeze_at,
        head_lr_mult=head_lr_mult,
        reset_head=reset_head,
        strict=strict,
    )
    return run_finetune(
        ft,
        overrides,
        data=pair,
        recipe=recipe,
        callbacks=callbacks,
        save=out is not None,
        stdout=stream,
    )
