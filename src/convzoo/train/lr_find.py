"""The learning-rate finder: a learning rate is a choice too, so make it on training data.

One short run on a copy of the network raises the learning rate exponentially from
``start_lr`` to ``end_lr`` over ``steps`` optimizer steps (Smith, "Cyclical learning rates",
2017; fastai's ``lr_find``), recording the training loss of each step. The loss is smoothed
(an exponential average with bias correction, as fastai) and the suggestion is the learning
rate where it falls fastest; the minimum divided by 10 is printed beside it. Only training
batches are read (never validation or test data), and the caller's network, optimizer, random
state and data order are left exactly as they were.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..errors import ConvzooError
from ..parallel import Strategy
from ..runtime import resolve_device
from .config import TrainConfig
from .optim import build_optimizer
from .setup import build_setup

#: smoothing of the loss curve (fastai's 0.98): the average over about the last 50 steps
SMOOTHING = 0.98
#: stop once the smoothed loss exceeds this multiple of its minimum: it has diverged
DIVERGED = 4.0


@dataclass
class LrFind:
    """The sweep: learning rates, raw and smoothed losses, and the suggestion."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    steepest: float = math.nan  #: lr where the smoothed loss falls fastest (the suggestion)
    minimum: float = math.nan  #: lr of the smoothed loss's minimum

    @property
    def suggestion(self) -> float:
        return self.steepest

    def describe(self) -> str:
        return (
            f"suggested lr {self.steepest:.3g}: where the smoothed training loss falls fastest "
            f"(its minimum is at lr {self.minimum:.3g}; a tenth of that, {self.minimum / 10:.3g}, "
            f"is the other usual pick) - {len(self.lrs)} steps from {self.lrs[0]:.3g} to "
            f"{self.lrs[-1]:.3g}"
        )


def _pick(result: LrFind) -> None:
    """Fill ``steepest`` and ``minimum`` from the smoothed curve (its first few steps, still
    dominated by the bias correction, are skipped)."""
    s, logs = result.smoothed, [math.log10(lr) for lr in result.lrs]
    skip = min(10, max(len(s) - 3, 0))
    lo = min(range(skip, len(s)), key=lambda i: s[i])
    result.minimum = result.lrs[lo]
    slopes = [(s[i + 1] - s[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(skip + 1, lo)]
    best = min(range(len(slopes)), key=lambda i: slopes[i]) + skip + 1 if slopes else lo
    result.steepest = result.lrs[best]


def lr_find(
    cfg: TrainConfig,
    *,
    model: nn.Module | None = None,
    data: tuple[ImageDataset, ImageDataset | None] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
) -> LrFind:
    """Sweep the learning rate for ``cfg`` (its model, optimizer, data and augmentation) on
    a copy of ``model`` (default: the network ``cfg`` builds, seeded as a run would)."""
    if not 0 < start_lr < end_lr or steps < 5:
        raise ConvzooError(
            f"the sweep needs 0 < start lr < end lr and at least 5 steps, got {start_lr:g}, "
            f"{end_lr:g}, {steps}"
        )
    gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=gpus):  # the caller's random state stays as it was
        setup = build_setup(
            cfg,
            Strategy(resolve_device(cfg.device)),
            copy.deepcopy(model) if model is not None else None,
            data,
            None,
        )
        return _sweep(cfg, setup, start_lr, end_lr, steps)


def _sweep(cfg: TrainConfig, setup, start_lr: float, end_lr: float, steps: int) -> LrFind:
    net = setup.model.train()
    opt = build_optimizer(
        net, cfg.optimizer, lr=start_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    result = LrFind()
    batches, epoch, avg = iter(()), 0, 0.0
    for i in range(steps):
        lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        batch = next(batches, None)
        if batch is None:  # a new pass over the training split (tiny data sets)
            setup.train_loader.set_epoch(epoch)
            batches, epoch = iter(setup.train_loader), epoch + 1
            batch = next(batches)
        with setup.precision.autocast():
            loss = loss_fn(net(batch.x).float(), batch.y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        avg = SMOOTHING * avg + (1 - SMOOTHING) * value
        now = avg / (1 - SMOOTHING ** (i + 1))  # bias-corrected
        if not math.isfinite(now) or (result.smoothed and now > DIVERGED * min(result.smoothed)):
            break
        result.lrs.append(lr)
        result.losses.append(value)
        result.smoothed.append(now)
    if len(result.lrs) < 5:
        raise ConvzooError(
            f"the loss diverged within {len(result.lrs)} steps from lr {start_lr:g}; "
            "start lower (--start-lr)"
        )
    _pick(result)
    return result
