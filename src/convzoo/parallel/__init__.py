"""Data parallelism, three ways (the chapter's 多GPU训练, 简洁实现 and 分布式计算):

- ``scratch`` (:mod:`.scratch`): the chapter's own code, ``get_params``, ``allreduce`` and
  ``split_batch``, driving one replica per device from one process. Works on ``cpu,cpu``.
- ``dp`` (:mod:`.dp`): ``nn.DataParallel``, the chapter's concise version, over the GPUs.
- ``ddp`` (:mod:`.ddp`): ``DistributedDataParallel``, one process per device, launched by
  ``torchrun`` on one machine or many.

Each is a strategy object that plugs into :class:`~convzoo.train.Trainer` (see
:class:`~convzoo.train.SingleProcess` for the interface); :func:`make_strategy` builds the one
``--strategy`` names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import UnknownNameError
from ..train.config import TrainConfig
from ..train.trainer import SingleProcess
from .ddp import DistributedStrategy
from .devices import parse_devices
from .dp import DataParallelStrategy
from .scratch import ScratchStrategy, allreduce, get_params, split_batch

#: --strategy name -> builder(cfg, device), where device is the resolved --device
STRATEGIES: dict[str, Callable[[TrainConfig, torch.device], SingleProcess]] = {
    "scratch": ScratchStrategy.from_config,
    "dp": DataParallelStrategy.from_config,
    "ddp": DistributedStrategy.from_config,
}


def make_strategy(cfg: TrainConfig, device: torch.device) -> SingleProcess:
    """The strategy ``cfg.strategy`` names (``single`` is built by the trainer itself)."""
    if cfg.strategy == "single":
        return SingleProcess()
    if cfg.strategy not in STRATEGIES:
        raise UnknownNameError(
            f"unknown strategy {cfg.strategy!r}; choose one of: single, {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[cfg.strategy](cfg, device)


__all__ = [
    "STRATEGIES",
    "DataParallelStrategy",
    "DistributedStrategy",
    "ScratchStrategy",
    "allreduce",
    "get_params",
    "make_strategy",
    "parse_devices",
    "split_batch",
]
