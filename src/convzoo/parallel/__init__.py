"""Strategies: how training is spread over devices and processes. They sit below the training
loop and know nothing of it (:class:`Strategy` is the interface and the one-device default).

Data parallelism, three ways (the chapter's 多GPU训练, 简洁实现 and 分布式计算):

- ``scratch`` (:mod:`.scratch`): the chapter's own code, ``get_params``, ``allreduce`` and
  ``split_batch``, driving one replica per device from one process. Works on ``cpu,cpu``.
- ``dp`` (:mod:`.dp`): ``nn.DataParallel``, the chapter's concise version, over the GPUs.
- ``ddp`` (:mod:`.ddp`): ``DistributedDataParallel``, one process per device, launched by
  ``torchrun`` on one machine or many.

Model parallelism (the chapter's 模型并行: split the network, not the batch):

- ``model`` (:mod:`.model`): the network's parts in contiguous groups, one per device
  (:mod:`.split` says where to cut), driven by one process.
- ``pipeline`` (:mod:`.pipeline`): the same cut run as a pipeline of micro-batches, one
  process per part, on ``torch.distributed.pipelining``, launched by ``torchrun``.

:func:`make_strategy` builds the one ``--strategy`` names; :data:`STRATEGIES` is the list.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..errors import UnknownNameError
from .base import DEFAULTS, LossFn, Strategy, StrategyOptions
from .ddp import DistributedStrategy
from .devices import parse_devices
from .dp import DataParallelStrategy
from .model import ModelParallelStrategy
from .pipeline import PipelineStrategy
from .scratch import ScratchStrategy, allreduce, get_params, split_batch


class StrategyBuilder(Protocol):
    def __call__(self, device: torch.device, options: StrategyOptions = DEFAULTS) -> Strategy: ...


def single(device: torch.device, options: StrategyOptions = DEFAULTS) -> Strategy:
    """One process on ``device``."""
    return Strategy(device)


#: ``--strategy`` name -> builder(device, options); ``device`` is the resolved --device
STRATEGIES: dict[str, StrategyBuilder] = {
    "single": single,
    "scratch": ScratchStrategy.build,
    "dp": DataParallelStrategy.build,
    "ddp": DistributedStrategy.build,
    "model": ModelParallelStrategy.build,
    "pipeline": PipelineStrategy.build,
}


def make_strategy(name: str, device: torch.device, **options: Any) -> Strategy:
    """The strategy ``name``; ``options`` are :class:`StrategyOptions` fields (``devices``
    lists scratch/dp/model devices, ``sync_bn`` is ddp's, ``split_at`` and ``microbatches``
    model's and pipeline's, ``schedule`` pipeline's)."""
    if name not in STRATEGIES:
        raise UnknownNameError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](device, StrategyOptions(**options))


__all__ = [
    "STRATEGIES",
    "DataParallelStrategy",
    "DistributedStrategy",
    "LossFn",
    "ModelParallelStrategy",
    "PipelineStrategy",
    "ScratchStrategy",
    "Strategy",
    "StrategyOptions",
    "allreduce",
    "get_params",
    "make_strategy",
    "parse_devices",
    "split_batch",
]
