"""Optimizers, learning-rate schedules and the book's initialisation, from plain values.

Their choice lists (``OPTIMIZERS``, ``SCHEDULES``, ``INITS``) live in :mod:`convzoo.catalog`,
where the command line reads them without torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..catalog import INITS, OPTIMIZERS, SCHEDULES  # noqa: F401

#: plateau: multiply the lr by this factor after this many epochs without improvement. The
#: classic x0.1 step; 2 epochs because the book's runs last 10 (PyTorch's default, 10 epochs,
#: would never fire in them).
PLATEAU_FACTOR = 0.1
PLATEAU_PATIENCE = 2


def build_optimizer(
    params: list[dict] | nn.Module,
    name: str,
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``sgd`` (the book's, with ``momentum``), ``nesterov`` or ``adamw``.

    ``params`` is a module (its trainable parameters) or parameter groups (fine-tuning gives
    the head its own lr).
    """
    groups = (
        [{"params": [p for p in params.parameters() if p.requires_grad]}]
        if isinstance(params, nn.Module)
        else params
    )
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(
        groups,
        lr=lr,
        momentum=momentum,
        nesterov=name == "nesterov" and momentum > 0,
        weight_decay=weight_decay,
    )


def lr_factor(schedule: str, step: int, total: int, warmup: float) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` of ``total``.

    ``onecycle``: linear warm-up over the first ``warmup`` fraction, then linear decay to 0
    (the triangular schedule of fast CIFAR training); ``cosine``: the same warm-up, then a
    half cosine to 0; ``constant``: always 1 (the book's).
    """
    if schedule == "constant" or total <= 0:
        return 1.0
    w = round(warmup * total)
    if step < w:
        return (step + 1) / w
    progress = (step - w) / max(total - w, 1)
    if schedule == "onecycle":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    *,
    total_steps: int,
    warmup: float,
    mode: str = "max",
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """``schedule`` over ``total_steps`` optimizer steps, stepped once per step; ``plateau``
    is stepped once per epoch with the monitored validation value (``mode``: max or min)."""
    if schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )

    # LambdaLR with a plain function: its state_dict is plain numbers (the lambda is rebuilt
    # from the config on resume), so checkpoints load with weights_only=True.
    def factor(step: int) -> float:
        return lr_factor(schedule, step, total_steps, warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def xavier_init(model: nn.Module) -> None:
    """The book's ``train_ch6`` initialisation: Xavier-uniform weights of Linear and Conv2d
    layers (biases keep PyTorch's default), and of Conv1d for the sequence models: the same
    rule in one dimension (Keras' glorot_uniform, the init of Ismail Fawaz et al.'s ResNet)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
