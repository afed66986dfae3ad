"""A training run: config -> data, model, loaders, trainer, run directory; and resume.

This is the layer that wires models, data, a strategy and the loop together (models and data
know nothing of each other or of training); the CLI and :func:`convzoo.fit` are thin shells
over :func:`train`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import torch
from torch import nn

from ..data.dataset import LabelledData
from ..data.sources import FILES_PREFIXES, absolute_name
from ..errors import ConvzooError, StorageError
from ..io import save_weights
from ..parallel import Strategy, make_strategy
from ..runtime import resolve_device
from .callbacks import (
    Checkpointer,
    ConsoleLogger,
    EarlyStopping,
    HistoryWriter,
    KeepBest,
    RefreshBatchNorm,
    TensorBoardLogger,
    live_curves,
)
from .config import ConfigError, TrainConfig
from .history import MONITORS, History
from .interrupt import StopOnSignal, stop_on_signals
from .optim import build_optimizer, build_scheduler
from .recipes import default_model, own_images_defaults, recipe_defaults
from .rundir import (
    ARTIFACTS,
    final_metrics,
    load_trainer_state,
    make_run_dir,
    read_resume_state,
    result_line,
    resume_command,
    with_saved_settings,
    world_size_note,
    write_artifacts,
    write_config,
)
from .setup import Normalization, Setup, build_setup
from .trainer import Callback, NonFiniteLossError, Trainer

T = TypeVar("T")


def resolve_config(
    overrides: dict[str, Any], recipe: str | None = None, net: nn.Module | None = None
) -> TrainConfig:
    """The recipe's values for the chosen model, with the user's explicit ``overrides`` on top.

    ``overrides`` holds only what the user set (CLI flags given, keyword arguments passed);
    ``net``: a network defined in Python that ``overrides["model"]`` only names.
    """
    recipe = recipe or overrides.get("recipe") or TrainConfig.recipe
    dataset = overrides.get("dataset") or TrainConfig.dataset
    model = overrides.get("model") or default_model(recipe, dataset) or TrainConfig.model
    options = overrides.get("model_options") or {}
    values = recipe_defaults(recipe, model, options, net)
    # a recipe's model options (the book's VGG is width_ratio=4) yield to the user's
    values["model_options"] = {**values.get("model_options", {}), **options}
    values.update({k: v for k, v in overrides.items() if k != "model_options"})
    values.update(recipe=recipe, model=model)
    values["dataset"] = absolute_name(values.get("dataset", TrainConfig.dataset))
    if values["dataset"].startswith(FILES_PREFIXES):
        values.update(own_images_defaults({**TrainConfig().to_dict(), **values}, overrides))
    cfg = TrainConfig.from_dict({**TrainConfig().to_dict(), **values})
    cfg.validate()
    return cfg


@dataclass
class RunResult:
    run_dir: Path | None
    history: History
    metrics: dict[str, Any]
    model: nn.Module
    meta: dict[str, Any] = field(default_factory=dict)  #: as saved with the weights


def on_main(strategy: Strategy, fn: Callable[[], T]) -> T:
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


@contextlib.contextmanager
def open_strategy(cfg: TrainConfig) -> Iterator[Strategy]:
    """The strategy ``cfg.strategy`` names, closed (its process group too) however the run
    ends."""
    strategy = make_strategy(
        cfg.strategy,
        resolve_device(cfg.device),
        devices=cfg.devices,
        sync_bn=cfg.sync_bn,
        split_at=cfg.split_at,
        microbatches=cfg.microbatches,
        schedule=cfg.pipeline_schedule,
    )
    try:
        yield strategy
    finally:
        strategy.close()


def make_trainer(
    cfg: TrainConfig,
    setup: Setup,
    strategy: Strategy,
    callbacks: list[Callback],
    param_groups: list[dict] | None,
    live: bool | None = None,
) -> Trainer:
    model = setup.model
    optimizer = build_optimizer(
        param_groups if param_groups is not None else model,
        cfg.optimizer,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )
    scheduler = build_scheduler(
        optimizer,
        cfg.schedule,
        total_steps=cfg.epochs * len(setup.train_loader),
        warmup=cfg.warmup,
        mode=MONITORS[cfg.monitor],
    )
    trainer = Trainer(
        model,
        setup.train_loader,
        setup.test_loader,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=nn.CrossEntropyLoss(reduction="none", label_smoothing=cfg.label_smoothing),
        device=strategy.device,
        precision=setup.precision,
        grad_clip=cfg.grad_clip,
        callbacks=[*callbacks, *live_curves(live, callbacks)],
        strategy=strategy,
        tta=cfg.tta,
        val_loader=setup.val_loader,
        monitor=cfg.monitor,
        test_every=cfg.test_every,
    )
    if cfg.compile:
        trainer.net = torch.compile(trainer.net)
    return trainer


def run_callbacks(
    cfg: TrainConfig, setup: Setup, run_dir: Path | None, stream: TextIO
) -> list[Callback]:
    """The callbacks every run has: printing, batch-norm refresh, keeping the best weights,
    and with a run directory its files (the best weights before the checkpoint)."""
    meta = setup.meta
    cbs: list[Callback] = [ConsoleLogger(stream), RefreshBatchNorm(setup.plain_train_loader)]
    if setup.chooses:
        cbs.append(KeepBest(run_dir, meta, cfg.monitor))
    if run_dir is not None:
        cbs.append(HistoryWriter(run_dir, title=f"{cfg.model} on {cfg.dataset}"))
        cbs.append(Checkpointer(run_dir, {"config": cfg.to_dict(), "meta": meta}, cfg.ckpt_every))
        if cfg.tensorboard:
            cbs.append(TensorBoardLogger(run_dir / "tensorboard"))
    if cfg.patience:
        cbs.append(EarlyStopping(cfg.patience, cfg.monitor))
    return cbs


#: the run header's word on mirror flips, which your own images get only when asked
MIRROR_NOTE = " (your own images: no mirror flips unless --augment asks, e.g. hflip,crop:4)"


def mirrors(cfg: TrainConfig) -> bool:
    return cfg.tta or any(op.split(":")[0] in ("hflip", "vflip") for op in cfg.augment.split(","))


def header(
    cfg: TrainConfig,
    setup: Setup,
    trainer: Trainer,
    resumed: dict | None,
    run_dir: Path | None,
    start_over: bool = False,
) -> str:
    """The lines a run starts with: model and data, recipe and device, what is resumed."""
    params = sum(p.numel() for p in setup.model.parameters())
    size = setup.meta["image_size"]
    shape = f"{size} steps" if "length" in setup.meta else f"{size}x{size}"
    fold = setup.meta["model_options"].get("fold", 1)
    shape += f", computed as {-(-size // fold)} runs of {fold} folded" if fold > 1 else ""
    n_test = len(setup.test_data) if setup.test_data is not None else 0
    n_val = f" / {len(setup.val_data):,} val" if setup.val_data is not None else ""
    world = trainer.strategy.world_size
    options = ", ".join(f"{k}={v}" for k, v in cfg.model_options.items())
    note = getattr(setup.train_data, "note", "")
    lines = [
        f"model {cfg.model} ({options + '; ' if options else ''}{params:,} parameters)  data "
        f"{cfg.dataset} ({len(setup.train_data):,} train{n_val} / {n_test:,} test, {shape})"
        + (f", {note}" if note else ""),
        f"recipe {cfg.recipe}: {cfg.epochs} epoch{'s' * (cfg.epochs != 1)}, "
        f"batch {cfg.batch_size}, lr {cfg.lr:g}, "
        f"{cfg.optimizer}, {cfg.schedule} schedule, augment '{cfg.augment or 'none'}'"
        + (", flip TTA" if cfg.tta else "")
        + (MIRROR_NOTE if cfg.dataset.startswith(FILES_PREFIXES) and not mirrors(cfg) else "")
        + f"  device {trainer.device}, strategy {cfg.strategy}"
        + (f"  world size {world}" if world > 1 else ""),
        f"settings {setup.execution.label}: {setup.execution.reason}",
    ]
    if trainer.strategy.describe():
        lines.append(trainer.strategy.describe())
    if setup.val_data is not None and not setup.chooses:
        lines.append(
            f"warning: {len(setup.val_data)} validation images are too few to choose an epoch "
            f"on (fewer than {setup.min_val}); the last epoch's weights are kept"
        )
    if resumed is not None:
        ckpt = Path(run_dir or ".") / Checkpointer.FILENAME  # the file read: name it
        lines.append(f"resuming {ckpt} at epoch {trainer.epoch + 1}, step {trainer.step}")
    if start_over:
        lines.append(f"no checkpoint in {run_dir} yet (it stopped before its first): starting over")
    return "\n".join(lines) + world_size_note(resumed, world, cfg.batch_size)


def train(
    cfg: TrainConfig,
    *,
    model: nn.Module | None = None,
    data: tuple[LabelledData, LabelledData | None] | None = None,
    resume: str | Path | None = None,
    auto_resume: bool = False,
    callbacks: list[Callback] | None = None,
    save: bool = True,
    stdout: TextIO | None = None,
    param_groups: list[dict] | None = None,
    normalization: Normalization | None = None,
    live: bool | None = None,
) -> RunResult:
    """Run (or resume) training as ``cfg`` says; write the run directory when ``save``.

    ``auto_resume`` (needs ``cfg.out``): resume ``cfg.out`` if it holds a checkpoint, else start
    there. Under ``--strategy ddp`` every process of the group calls this; rank 0 alone reads
    the checkpoint and writes files, and the process group is closed at the end.

    ``normalization``: the per-channel (mean, std) that inputs are normalized with when
    ``cfg.normalize`` (a fine-tuned network keeps its source's); default: the training set's.
    ``live``: the curves redrawn in place after each epoch (``None``: in a Jupyter kernel).
    """
    if auto_resume and not cfg.out:
        raise ConfigError("--auto-resume needs --out DIR (the run directory to resume or start)")
    stream = stdout or sys.stdout
    locks = contextlib.ExitStack()  # rank 0's lock of the run directory, held to the end
    with open_strategy(cfg) as strategy, locks:
        stopper = StopOnSignal(None, run_dir=resume or cfg.out if save else None)
        alone = strategy.world_size == 1  # a torchrun agent owns its group's signals
        with stop_on_signals(stopper, enabled=alone and save):
            resume, state = on_main(
                strategy,
                lambda: read_resume_state(cfg, resume, auto_resume, locks, rebuild=model is None),
            )
            if state is not None:
                cfg = with_saved_settings(cfg, state["config"])
            setup = build_setup(cfg, strategy, model, data, normalization)
            # saved as chosen, so that a resume computes exactly as the run began
            cfg = dataclasses.replace(
                cfg,
                precision=setup.execution.precision.name,
                channels_last=setup.execution.channels_last,
            )
            run_dir: Path | None = None
            if save:  # rank 0 names the directory (a time stamp without --out); all ranks agree
                run_dir = Path(resume) if resume is not None else None
                run_dir = run_dir or on_main(
                    strategy, lambda: make_run_dir(cfg, reuse=auto_resume, locks=locks)
                )
            cbs = run_callbacks(cfg, setup, run_dir, stream) + list(callbacks or [])
            stopper.checkpointer = next((c for c in cbs if isinstance(c, Checkpointer)), None)
            stopper.run_dir = run_dir
            trainer = make_trainer(cfg, setup, strategy, [*cbs, stopper], param_groups, live)
            if state is not None:
                load_trainer_state(trainer, state, Path(resume) / Checkpointer.FILENAME)
                if stopper.checkpointer is not None:
                    stopper.checkpointer.saved_at = (trainer.epoch + 1, trainer.step)
            if strategy.is_main:
                if run_dir is not None and resume is None:
                    write_config(run_dir, cfg)
                start_over = resume is not None and state is None
                lines = header(cfg, setup, trainer, state, run_dir, start_over)
                print(lines, file=stream, flush=True)
            with checkpoint_notes(run_dir):
                trainer.fit(cfg.epochs)
                return finish(trainer, setup, run_dir, stream)


@contextlib.contextmanager
def checkpoint_notes(run_dir: Path | None) -> Iterator[None]:
    """A non-finite loss or a full disk says where the last good checkpoint is kept and how to
    resume."""
    try:
        yield
    except NonFiniteLossError as e:
        kept = run_dir is not None and (run_dir / Checkpointer.FILENAME).exists()
        where = f" The last good checkpoint is kept in {run_dir}." if kept else ""
        raise NonFiniteLossError(e.value, e.epoch, e.step, e.lr, note=where) from None
    except StorageError as e:
        if run_dir is None or not (run_dir / Checkpointer.FILENAME).exists():
            raise
        raise StorageError(
            f"{e}; the last checkpoint is kept in {run_dir}: once the disk has room, resume "
            f"with {resume_command(run_dir)}"
        ) from None


def choose_weights(trainer: Trainer, setup: Setup) -> dict[str, Any] | None:
    """Give the model the weights of the best epoch by the monitored validation value; return
    that epoch's record (``None`` without a validation split: the model keeps the last)."""
    best = trainer.history.best(trainer.monitor) if setup.chooses else None
    if best is None:
        return None
    if int(best["epoch"]) != len(trainer.history):
        keeper = next(cb for cb in trainer.callbacks if isinstance(cb, KeepBest))
        state = on_main(trainer.strategy, keeper.best_state)  # rank 0 kept them
        trainer.history.last_state = {
            k: v.detach().cpu().clone() for k, v in setup.model.state_dict().items()
        }
        setup.model.load_state_dict(state)
    return best


def finish(trainer: Trainer, setup: Setup, run_dir: Path | None, stream: TextIO) -> RunResult:
    """Save the last epoch's weights, give the model the weights chosen on validation data,
    and test those once more (with their confusion matrix) for the report and the files."""
    history = trainer.history
    if trainer.is_main and run_dir is not None:
        save_weights(run_dir / "model.safetensors", setup.model.state_dict(), setup.meta)
    chosen = choose_weights(trainer, setup)
    history.chosen_epoch = int(chosen["epoch"]) if chosen else len(history) or None
    test_data = setup.test_data
    test_eval = (
        trainer.evaluate(trainer.test_loader, confusion=True)
        if trainer.test_loader is not None
        else {}
    )
    classes = list(test_data.classes) if test_data else []
    metrics = final_metrics(history, test_eval, classes, chosen, trainer.monitor)
    if trainer.is_main:
        print(result_line(metrics), file=stream, flush=True)
        if run_dir is not None:
            write_artifacts(run_dir, setup.meta, metrics, test_eval, test_data)
            files = ", ".join(a for a in ARTIFACTS if (run_dir / a).exists())
            print(f"saved run to {run_dir}/ ({files})", file=stream, flush=True)
    history.run_dir = run_dir
    return RunResult(run_dir, history, metrics, setup.model, setup.meta)
