"""``--strategy dp``: ``nn.DataParallel``, the chapter's 简洁实现.

``nn.DataParallel(net, device_ids=devices)`` does in one line what :mod:`.scratch` spells out:
scatter the batch, replicate the module, run the replicas in threads, gather the outputs on the
first GPU (where autograd sums the gradients). PyTorch recommends
``DistributedDataParallel`` (``--strategy ddp``) over it for speed; it stays here because it is
the chapter's code and needs no launcher.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from ..errors import ParallelError
from .base import DEFAULTS, Strategy, StrategyOptions
from .devices import parse_devices


class DataParallelStrategy(Strategy):
    """``nn.DataParallel`` over ``device_ids``; with one GPU the model is left unwrapped."""

    def __init__(self, device_ids: list[int]) -> None:
        super().__init__(torch.device("cuda", device_ids[0]))
        self.device_ids = device_ids

    @classmethod
    def build(
        cls, device: torch.device, options: StrategyOptions = DEFAULTS
    ) -> DataParallelStrategy:
        """Every visible GPU, or those ``options.devices`` lists (``cuda:0,cuda:2``)."""
        devices = options.devices
        if not torch.cuda.is_available():
            raise ParallelError(
                "--strategy dp splits batches over GPUs and this machine has none; "
                "use --strategy single --device cpu (or --strategy scratch --devices cpu,cpu)"
            )
        if device.type != "cuda":
            raise ParallelError(
                f"--strategy dp runs on GPUs, not on --device {device}; "
                "drop --device or use --strategy single"
            )
        if devices:
            listed = parse_devices(devices)
            if listed[0].type != "cuda":
                raise ParallelError(f"--strategy dp needs GPUs in --devices, got {devices}")
            ids = [d.index for d in listed]
            if len(set(ids)) != len(ids):
                raise ParallelError(
                    f"--devices {devices} repeats a GPU, which nn.DataParallel refuses; "
                    "use --strategy scratch to put several replicas on one device"
                )
        else:
            ids = list(range(torch.cuda.device_count()))
        if len(ids) < 2:
            print(
                f"convzoo: note: --strategy dp has one GPU (cuda:{ids[0]}): training on it "
                "alone, without nn.DataParallel",
                file=sys.stderr,
                flush=True,
            )
        return cls(ids)

    def wrap(self, model: nn.Module) -> nn.Module:
        if len(self.device_ids) < 2:
            return model
        return nn.DataParallel(model, device_ids=self.device_ids)
