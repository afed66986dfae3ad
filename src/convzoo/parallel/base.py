"""The strategy interface: how one training step is spread over devices and processes.

A strategy sits below the trainer and knows nothing of it: the trainer hands it the network,
the batch, the loss function, the precision and the gradient scaler, and asks it to reduce
numbers over processes. :class:`Strategy` itself is the default, one process on one device;
``scratch``, ``dp`` and ``ddp`` (this package) override what they change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.loader import Batch
from ..runtime import Precision

#: per-sample losses from logits and labels (``reduction="none"``)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StrategyOptions:
    """What ``--strategy`` builders may read besides the device; each uses its own fields
    (``None``: the strategy's own default)."""

    devices: str | None = None  #: scratch, dp, model: ``cpu,cpu`` / ``cuda:0,cuda:1``
    sync_bn: bool = False  #: ddp: synchronised batch norm
    split_at: str | None = None  #: model, pipeline: the parts that start each next device's
    microbatches: int | None = None  #: model, pipeline: micro-batches per batch
    schedule: str | None = None  #: pipeline: ``gpipe`` or ``1f1b``


#: every option at its default (a builder called with the device alone)
DEFAULTS = StrategyOptions()


class Strategy:
    """One process, one device (``--strategy single``); the base of every other strategy.

    ``rank`` / ``world_size``: this process's share of the data (0 / 1 here): the loader gives
    rank r its slice of each step's ``batch_size * world_size`` samples, and sums are reduced
    over the ranks. ``is_main``: the one process that prints and writes files (rank 0 here).
    ``device``: where this process computes (and where the loader puts the batches).
    """

    rank = 0
    world_size = 1

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def place(self, model: nn.Module, input_size: Sequence[int]) -> None:
        """Put the model's parameters where they compute; ``input_size`` is one example's
        ((C, H, W), or (C, L) for sequences), for strategies that split the network by cost."""
        model.to(self.device)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the loop calls (a DDP or DataParallel wrapper where needed)."""
        return model

    def describe(self) -> str:
        """What the run's header says of the strategy beyond the device ('' for nothing)."""
        return ""

    def forward_backward(
        self,
        net: nn.Module,
        batch: Batch,
        loss_fn: LossFn,
        precision: Precision,
        scaler: torch.amp.GradScaler,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward on one batch; returns this rank's per-sample losses and logits
        of the real (non-padding) samples, detached."""
        with precision.autocast():
            logits = net(batch.x)
        losses = loss_fn(logits.float(), batch.y)[: batch.valid]
        # sum over real samples / all real samples of the step, times world size because
        # DistributedDataParallel averages gradients over ranks: the gradient is the global mean
        loss = losses.sum() * (self.world_size / batch.global_valid)
        scaler.scale(loss).backward()
        return losses.detach(), logits.detach()[: batch.valid]

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step (e.g. to broadcast buffers to other processes)."""

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Evaluation logits of ``x`` on this process's device (the loop holds no_grad and
        autocast); every rank calls it with its own batch."""
        return model(x)

    def gather_model(self, model: nn.Module) -> None:
        """Make the main rank's ``model`` whole and current before it is evaluated or saved
        (every rank calls it); nothing to do where every process holds the whole model."""

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's state for a checkpoint, whole on the main rank (every rank calls it)."""
        return optimizer.state_dict()

    def all_reduce_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over ranks in place (nothing to do on one process)."""
        return t

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable value: a path, a checkpoint, an error),
        so that decisions taken on rank 0 alone (the run directory, whether to resume) agree."""
        return obj

    def close(self) -> None:
        """Release what the strategy holds (a process group) once the run is over."""
