"""A training run: config -> data, model, loaders, trainer, run directory; and resume.

This is the layer that wires models, data and the loop together (models and data know nothing
of each other); the CLI and :func:`convzoo.fit` are thin shells over it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.loader import DeviceLoader
from ..errors import CheckpointError, ConvzooError, InputSizeError
from ..io import atomic_write_json, load_checkpoint, save_weights
from ..models import create_model
from .callbacks import Checkpointer, ConsoleLogger, EarlyStopping, HistoryWriter, TensorBoardLogger
from .config import ConfigError, TrainConfig
from .history import History
from .optim import build_optimizer, build_scheduler, xavier_init
from .recipes import DEFAULT_MODEL, recipe_defaults
from .runtime import resolve_device, resolve_precision, tune_backends
from .trainer import Callback, NonFiniteLossError, SingleProcess, Trainer

#: fields a resumed run may change (they do not alter what is computed)
RESUMABLE_CHANGES = {"epochs", "device", "ckpt_every", "tensorboard", "patience", "out"}

T = TypeVar("T")


def resolve_config(overrides: dict[str, Any], recipe: str | None = None) -> TrainConfig:
    """The recipe's values for the chosen model, with the user's explicit ``overrides`` on top.

    ``overrides`` holds only what the user set (CLI flags given, keyword arguments passed).
    """
    recipe = recipe or overrides.get("recipe") or TrainConfig.recipe
    model = overrides.get("model") or DEFAULT_MODEL.get(recipe, TrainConfig.model)
    options = overrides.get("model_options") or {}
    values = recipe_defaults(recipe, model, options)
    # a recipe's model options (the book's VGG is width_ratio=4) yield to the user's
    values["model_options"] = {**values.get("model_options", {}), **options}
    values.update({k: v for k, v in overrides.items() if k != "model_options"})
    values.update(recipe=recipe, model=model)
    cfg = TrainConfig.from_dict({**TrainConfig().to_dict(), **values})
    cfg.validate()
    return cfg


@dataclass
class RunResult:
    run_dir: Path | None
    history: History
    metrics: dict[str, Any]
    model: nn.Module


def make_run_dir(cfg: TrainConfig, *, reuse: bool = False) -> Path:
    """A new run directory. ``reuse``: a convzoo run directory without a checkpoint (an attempt
    that died before its first one, restarted by ``--auto-resume``) is started over."""
    if cfg.out:
        path = Path(cfg.out)
        if path.exists() and any(path.iterdir()):
            if reuse and (path / "config.json").exists():
                pass
            elif (path / Checkpointer.FILENAME).exists():
                raise ConvzooError(
                    f"{path} already holds a run; resume it with --resume {path} "
                    f"or choose another --out"
                )
            raise ConvzooError(f"{path} exists and is not empty; choose another --out")
    else:
        path = default_run_dir(cfg.model)
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_run_dir(name: str) -> Path:
    """``runs/<time>-<name>``, not yet taken (created by :func:`make_run_dir`)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{stamp}-{name}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{stamp}-{name}-{n}"
    return path


def load_data(cfg: TrainConfig) -> tuple[ImageDataset, ImageDataset]:
    from ..data import apply_subset, load_dataset

    train = load_dataset(cfg.dataset, split="train", root=cfg.data_dir)
    test = load_dataset(cfg.dataset, split="test", root=cfg.data_dir)
    if cfg.subset:
        train, test = apply_subset(train, cfg.subset), apply_subset(test, cfg.subset)
    return train, test


def build_model(cfg: TrainConfig, data: ImageDataset) -> nn.Module:
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed, on every rank
    model = create_model(
        cfg.model,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        **cfg.model_options,
    )
    if cfg.init == "xavier":
        xavier_init(model)
    return model


def check_image_size(model: nn.Module, size: int) -> None:
    smallest = getattr(model, "min_input_size", 1)
    if size < smallest:
        raise InputSizeError(
            f"{getattr(model, 'display_name', type(model).__name__)} needs inputs of at least "
            f"{smallest}x{smallest} pixels; --image-size {size} is too small"
        )


def describe_model(
    model: nn.Module,
    cfg: TrainConfig,
    data: ImageDataset,
    image_size: int,
    mean: Any,
    std: Any,
    precision: str = "fp32",
) -> dict[str, Any]:
    """What rebuilding and using the trained network needs (saved with its weights)."""
    return {
        # evaluate as it was tested during training
        "precision": precision,
        "tta": cfg.tta,
        "model": cfg.model,
        "model_options": cfg.model_options,
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "classes": list(data.classes),
        "image_size": image_size,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
        "dataset": cfg.dataset,
        "subset": cfg.subset,
    }


def make_strategy(cfg: TrainConfig, device: torch.device) -> SingleProcess:
    if cfg.strategy == "single":
        return SingleProcess()
    from ..parallel import make_strategy as parallel_strategy

    return parallel_strategy(cfg, device)


def on_main(strategy: SingleProcess, fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 alone, its result (or its one-line error) given to every rank:
    for what only rank 0 may touch (creating the run directory, reading a checkpoint that
    other machines may not see) and that every rank must agree on."""
    result: Any = None
    if strategy.is_main:
        try:
            result = fn()
        except ConvzooError as e:
            result = e
    result = strategy.broadcast_object(result)
    if isinstance(result, ConvzooError):
        raise result
    return result


def read_resume_state(
    cfg: TrainConfig, resume: str | Path | None, auto_resume: bool
) -> tuple[Path | None, dict | None]:
    """The run directory to resume and its checkpoint, or ``(None, None)`` for a new run.

    ``auto_resume``: resume ``cfg.out`` when it holds a checkpoint (the same command, re-run by
    ``torchrun --max-restarts`` after a failure, continues where the group stopped).
    """
    if resume is None and auto_resume and (Path(cfg.out) / Checkpointer.FILENAME).exists():
        resume = cfg.out
    if resume is None:
        return None, None
    run_dir = Path(resume)
    state = load_checkpoint(run_dir / Checkpointer.FILENAME)
    for stale in run_dir.glob(".*.tmp"):  # a save interrupted by a crash: never complete
        stale.unlink(missing_ok=True)
    if state.get("format") != "convzoo-checkpoint":
        raise CheckpointError(f"{run_dir / Checkpointer.FILENAME} is not a convzoo checkpoint")
    if auto_resume:  # the command may change only what does not alter the computation
        apply_resume_changes(TrainConfig.from_dict(state["config"]), cfg.to_dict(), run_dir)
    return run_dir, state


def train(
    cfg: TrainConfig,
    *,
    model: nn.Module | None = None,
    data: tuple[ImageDataset, ImageDataset | None] | None = None,
    resume: str | Path | None = None,
    auto_resume: bool = False,
    callbacks: list[Callback] | None = None,
    save: bool = True,
    stdout: Any = None,
    param_groups: Any = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
) -> RunResult:
    """Run (or resume) training as ``cfg`` says; write the run directory when ``save``.

    ``auto_resume`` (needs ``cfg.out``): resume ``cfg.out`` if it holds a checkpoint, else start
    there. Under ``--strategy ddp`` every process of the group calls this; rank 0 alone reads
    the checkpoint and writes files, and the process group is closed at the end.

    ``normalization``: the per-channel (mean, std) that inputs are normalized with when
    ``cfg.normalize`` (a fine-tuned network keeps its source's); default: the training set's.
    """
    if auto_resume and not cfg.out:
        raise ConfigError("--auto-resume needs --out DIR (the run directory to resume or start)")
    strategy = make_strategy(cfg, resolve_device(cfg.device))
    try:
        return _train(
            cfg,
            strategy,
            model=model,
            data=data,
            resume=resume,
            auto_resume=auto_resume,
            callbacks=callbacks,
            save=save,
            stdout=stdout,
            param_groups=param_groups,
            normalization=normalization,
        )
    finally:
        strategy.close()


def _train(
    cfg: TrainConfig,
    strategy: SingleProcess,
    *,
    model: nn.Module | None,
    data: tuple[ImageDataset, ImageDataset | None] | None,
    resume: str | Path | None,
    auto_resume: bool,
    callbacks: list[Callback] | None,
    save: bool,
    stdout: Any,
    param_groups: Any,
    normalization: tuple[Sequence[float], Sequence[float]] | None,
) -> RunResult:
    out = stdout or sys.stdout
    resume, state = on_main(strategy, lambda: read_resume_state(cfg, resume, auto_resume))
    device = getattr(strategy, "device", None) or resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    tune_backends(device)
    main = strategy.is_main

    train_data, test_data = data if data is not None else load_data(cfg)
    model = model if model is not None else build_model(cfg, train_data)
    image_size = cfg.image_size or train_data.image_size[0]
    check_image_size(model, image_size)
    channels_last = (
        cfg.channels_last if cfg.channels_last is not None else precision.dtype is not None
    )
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    mean, std = (normalization or train_data.stats()) if cfg.normalize else (None, None)

    if cfg.augment:
        from ..data import parse_augment

        augment = parse_augment(cfg.augment)
    else:
        augment = None
    loader_args = dict(
        image_size=image_size,
        mean=mean,
        std=std,
        device=device,
        rank=strategy.rank,
        world_size=strategy.world_size,
        channels_last=channels_last,
    )
    train_loader = DeviceLoader(
        train_data,
        cfg.batch_size,
        shuffle=True,
        augment=augment,
        seed=cfg.seed,
        drop_last=cfg.drop_last and len(train_data) >= cfg.batch_size * strategy.world_size,
        **loader_args,
    )
    test_loader = (
        DeviceLoader(test_data, cfg.eval_batch_size, **loader_args)
        if test_data is not None
        else None
    )
    optimizer = build_optimizer(cfg, param_groups if param_groups is not None else model)
    scheduler = build_scheduler(cfg, optimizer, len(train_loader))
    meta = describe_model(model, cfg, train_data, image_size, mean, std, precision.name)

    run_dir: Path | None = None
    cbs: list[Callback] = [ConsoleLogger(out)]
    if save:
        if resume is not None:
            run_dir = Path(resume)
        else:  # rank 0 names the directory (a time stamp without --out); all ranks agree
            run_dir = on_main(strategy, lambda: make_run_dir(cfg, reuse=auto_resume))
        if run_dir is not None:
            cbs.append(HistoryWriter(run_dir, title=f"{cfg.model} on {cfg.dataset}"))
            cbs.append(
                Checkpointer(run_dir, {"config": cfg.to_dict(), "meta": meta}, cfg.ckpt_every)
            )
            if cfg.tensorboard:
                cbs.append(TensorBoardLogger(run_dir / "tensorboard"))
    if cfg.patience:
        cbs.append(EarlyStopping(cfg.patience))
    cbs += callbacks or []

    trainer = Trainer(
        model,
        train_loader,
        test_loader,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=nn.CrossEntropyLoss(reduction="none", label_smoothing=cfg.label_smoothing),
        device=device,
        precision=precision,
        grad_clip=cfg.grad_clip,
        callbacks=cbs,
        strategy=strategy,
        tta=cfg.tta,
    )
    if cfg.compile:
        trainer.net = torch.compile(trainer.net)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
    if main and run_dir is not None and resume is None:
        atomic_write_json(run_dir / "config.json", {**cfg.to_dict(), "environment": environment()})

    if main:
        params = sum(p.numel() for p in model.parameters())
        print(
            f"model {cfg.model} ({params:,} parameters)  data {cfg.dataset} "
            f"({len(train_data):,} train / {len(test_data) if test_data is not None else 0:,} "
            f"test, {image_size}x{image_size})\n"
            f"recipe {cfg.recipe}: {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g}, "
            f"{cfg.optimizer}, {cfg.schedule} schedule, augment '{cfg.augment or 'none'}'  "
            f"device {device} {precision.name}"
            + (f"  world size {strategy.world_size}" if strategy.world_size > 1 else "")
            + (
                f"\nresuming {run_dir} at epoch {trainer.epoch + 1}, step {trainer.step}"
                if state is not None
                else ""
            )
            + world_size_note(state, strategy.world_size, cfg.batch_size),
            file=out,
            flush=True,
        )
    try:
        history = trainer.fit(cfg.epochs)
    except NonFiniteLossError as e:
        where = (
            f" The last good checkpoint is kept in {run_dir}."
            if run_dir is not None and (run_dir / Checkpointer.FILENAME).exists()
            else ""
        )
        raise NonFiniteLossError(e.value, e.epoch, e.step, e.lr, note=where) from None

    test_eval = trainer.evaluate(test_loader, confusion=True) if test_loader is not None else {}
    metrics = final_metrics(history, test_eval, list(test_data.classes) if test_data else [])
    if main and run_dir is not None:
        write_artifacts(run_dir, model, meta, metrics, test_eval, test_data)
        print(
            f"saved run to {run_dir}/ (model.safetensors, checkpoint.pt, history.csv, "
            f"curves.png, confusion.png, metrics.json)",
            file=out,
            flush=True,
        )
    history.run_dir = run_dir
    return RunResult(run_dir, history, metrics, model)


def world_size_note(state: dict | None, world_size: int, batch_size: int) -> str:
    """A resume at an epoch boundary with another world size is allowed (mid-epoch it is
    refused): say that the global batch, hence the steps per epoch, change."""
    saved = int(state["trainer"].get("world_size", 1)) if state is not None else world_size
    if saved == world_size:
        return ""
    return (
        f"\nnote: the checkpoint was written by {saved} process(es), resumed by {world_size}: "
        f"the remaining epochs use a global batch of {batch_size * world_size} "
        f"(was {batch_size * saved}); the lr schedule continues from its step count"
    )


def final_metrics(history: History, test_eval: dict[str, Any], classes: list[str]) -> dict:
    metrics: dict[str, Any] = {"epochs_done": len(history)}
    if history.records:
        metrics.update({k: history.last[k] for k in ("loss", "train_acc", "elapsed_s")})
    if test_eval:
        metrics.update(
            test_acc=test_eval["acc"], test_loss=test_eval["loss"], test_examples=test_eval["count"]
        )
        cm = test_eval.get("confusion")
        if cm is not None:
            per_class = (cm.diag().double() / cm.sum(1).clamp_min(1).double()).tolist()
            metrics["per_class_acc"] = dict(zip(classes, per_class))
            metrics["confusion"] = cm.tolist()
    best = history.best()
    if best is not None:
        metrics["best_test_acc"] = best["test_acc"]
        metrics["best_epoch"] = int(best["epoch"])
    return metrics


def write_artifacts(
    run_dir: Path,
    model: nn.Module,
    meta: dict,
    metrics: dict,
    test_eval: dict,
    test_data: ImageDataset | None,
) -> None:
    from ..viz import plot_confusion

    atomic_write_json(run_dir / "metrics.json", metrics)
    save_weights(run_dir / "model.safetensors", model.state_dict(), meta)
    if test_eval.get("confusion") is not None and test_data is not None:
        plot_confusion(
            test_eval["confusion"],
            test_data.classes,
            run_dir / "confusion.png",
            title=f"{meta['model']} on {meta['dataset']} test set "
            f"(accuracy {test_eval['acc']:.4f})",
        )


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv,
    }


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConvzooError(f"{run_dir} is not a convzoo run directory (no config.json)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ConvzooError(f"{path} is not valid JSON; the run cannot be resumed") from None
    return TrainConfig.from_dict(raw)


def resume_config(run_dir: str | Path, changes: dict[str, Any]) -> TrainConfig:
    """The saved config of ``run_dir`` with the allowed ``changes``; others are refused."""
    return apply_resume_changes(load_run_config(run_dir), changes, run_dir)


def apply_resume_changes(
    cfg: TrainConfig, changes: dict[str, Any], run_dir: str | Path
) -> TrainConfig:
    saved = cfg.to_dict()
    for key, value in changes.items():
        if key in ("recipe",) and value == saved.get(key):
            continue
        if saved.get(key) != value and key not in RESUMABLE_CHANGES:
            raise ConfigError(
                f"cannot resume {run_dir} with {key}={value!r}: the run was started with "
                f"{key}={saved.get(key)!r}; start a new run instead"
            )
    cfg = dataclasses.replace(cfg, **{k: v for k, v in changes.items() if k in RESUMABLE_CHANGES})
    cfg.validate()
    return cfg
