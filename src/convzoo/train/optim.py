"""Optimizers and learning-rate schedules from :class:`TrainConfig`."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(cfg: TrainConfig, params: list[dict] | nn.Module) -> torch.optim.Optimizer:
    """``sgd`` (the book's, with ``momentum``), ``nesterov`` or ``adamw``.

    ``params`` is a module or parameter groups (fine-tuning gives the head its own lr).
    """
    groups = (
        [{"params": [p for p in params.parameters() if p.requires_grad]}]
        if isinstance(params, nn.Module)
        else params
    )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.optimizer == "nesterov" and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
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
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    # LambdaLR with a plain function: its state_dict is plain numbers (the lambda is rebuilt
    # from the config on resume), so checkpoints load with weights_only=True.
    total = cfg.epochs * steps_per_epoch

    def factor(step: int) -> float:
        return lr_factor(cfg.schedule, step, total, cfg.warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def xavier_init(model: nn.Module) -> None:
    """The book's ``train_ch6`` initialisation: Xavier-uniform weights of Linear and Conv2d
    layers (biases keep PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
