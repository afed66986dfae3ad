"""Strategies: how training is spread over devices and processes. They sit below the training
loop and know nothing of it (:class:`Strategy` is the interface and the one-device default).

Data parallelism, three ways (the chapter's 多GPU训练, 简洁实现 and 分布式计算):

- ``scratch`` (:mod:`.scratch`): the chapter's own code, ``get_params``, ``allreduce`` and
  ``split_batch``, driving one replica per device from one process. Works on ``cpu,cpu``.
- ``dp`` (:mod:`.dp`): ``nn.DataParallel``, the chapter's concise version, over the GPUs.
- ``ddp`` (:mod:`.ddp`): ``DistributedDataParallel``, one process per device, launched by
  ``torchrun`` on one machine or many.

:func:`make_strategy` builds the one ``--strategy`` names; :data:`STRATEGIES` is the list.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..errors import UnknownNameError
from .base import LossFn, Strategy
from .ddp import DistributedStrategy
from .devices import parse_devices
from .dp import DataParallelStrategy
from .scratch import ScratchStrategy, allreduce, get_params, split_batch


class StrategyBuilder(Protocol):
    def __call__(
        self, device: torch.device, *, devices: str | None = None, sync_bn: bool = False
    ) -> Strategy: ...


def single(device: torch.device, *, devices: str | None = None, sync_bn: bool = False) -> Strategy:
    """One process on ``device``."""
    return Strategy(device)


#: ``--strategy`` name -> builder(device, devices=, sync_bn=); ``device`` is the resolved --device
STRATEGIES: dict[str, StrategyBuilder] = {
    "single": single,
    "scratch": ScratchStrategy.build,
    "dp": DataParallelStrategy.build,
    "ddp": DistributedStrategy.build,
}


def make_strategy(
    name: str, device: torch.device, *, devices: str | None = None, sync_bn: bool = False
) -> Strategy:
    """The strategy ``name``: ``devices`` lists scratch/dp replicas, ``sync_bn`` is ddp's."""
    if name not in STRATEGIES:
        raise UnknownNameError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](device, devices=devices, sync_bn=sync_bn)


__all__ = [
    "STRATEGIES",
    "DataParallelStrategy",
    "DistributedStrategy",
    "LossFn",
    "ScratchStrategy",
    "Strategy",
    "allreduce",
    "get_params",
    "make_strategy",
    "parse_devices",
    "split_batch",
]
