"""Data parallelism from scratch: the chapter's 多GPU训练 as working code.

The chapter needs two operations: give every device a copy of the parameters
(:func:`get_params`) and sum gradients across devices (:func:`allreduce`); and one helper,
:func:`split_batch`, that hands each device its slice of the mini-batch. One training step is
then: split the batch, run forward and backward on every device, allreduce the gradients, step.

:class:`ScratchStrategy` is that step as a strategy of the training loop, so the chapter's lesson
trains any zoo model with the same loop, checkpoints and metrics as everything else::

    convzoo train --strategy scratch --devices cpu,cpu        # two replicas on the CPU
    convzoo train --strategy scratch --devices cuda:0,cuda:1

It runs in one Python process; on GPUs the devices overlap because kernels are queued
asynchronously, on the CPU the shards simply run one after the other (the point there is that
the arithmetic is the same as on one device, which the tests check).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ..data.loader import Batch
from ..errors import ParallelError
from ..runtime import Precision
from .base import DEFAULTS, LossFn, Strategy, StrategyOptions
from .devices import parse_devices


def get_params(params: Iterable[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Copy the parameters to ``device``, each a leaf that collects its own gradient.

    The book clones tensors that never required grad; ``detach`` makes the copy a leaf for any
    input (a clone of a parameter would be part of its graph and get no ``.grad``).
    """
    new_params = [p.detach().clone().to(device) for p in params]
    for p in new_params:
        p.requires_grad_()
    return new_params


def allreduce(data: list[torch.Tensor]) -> None:
    """Sum the tensors of ``data`` (one per device) onto the first, then broadcast the sum back:
    afterwards every entry holds the total, on its own device.

    In place, as the book's ``data[0][:] += ...`` / ``data[i][:] = ...``: the entries are the
    devices' ``.grad`` tensors, which must change themselves (rebinding ``data[i]`` to a new
    tensor, as the chapter notes' transcription drops the ``[:]``, would leave them unsummed).
    """
    for i in range(1, len(data)):
        data[0].add_(data[i].to(data[0].device))
    for i in range(1, len(data)):
        data[i].copy_(data[0])


def scatter(t: torch.Tensor, devices: Sequence[torch.device]) -> list[torch.Tensor]:
    """``nn.parallel.scatter``: ``t`` cut along dim 0 into ``len(devices)`` chunks, chunk ``i``
    on ``devices[i]`` (fewer chunks when the batch is shorter than the device list)."""
    if all(d.type == "cuda" for d in devices) and len(set(devices)) == len(devices):
        return list(nn.parallel.scatter(t, list(devices)))
    # nn.parallel.scatter only takes CUDA devices ("Expected a non cpu device") and is meant
    # for distinct GPUs (as nn.DataParallel uses it); its split is torch.chunk, so that and a
    # copy per chunk is the same thing for the CPU and for a device listed twice.
    return [c.to(d) for c, d in zip(t.chunk(len(devices)), devices)]


def split_batch(
    X: torch.Tensor, y: torch.Tensor, devices: Sequence[torch.device]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split ``X`` and ``y`` across ``devices`` (the book's ``split_batch``)."""
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{X.shape[0]} inputs but {y.shape[0]} labels")
    return scatter(X, devices), scatter(y, devices)


class ScratchStrategy(Strategy):
    """One process, one model replica per device, gradients summed with :func:`allreduce`.

    ``devices[0]`` holds the master model, which the training loop's optimizer steps; the other
    replicas are copies. Every step starts by giving the replicas the master's parameters and
    buffers (the chapter's parameter distribution, done in place rather than with fresh
    :func:`get_params` copies), so they are also right after a resume or after a callback changed
    the model. Each device's loss is its shard's summed loss divided by the batch's size, so the
    allreduced gradient is the full batch's mean gradient: the same step as on one device.

    Batch norm sees each shard's own statistics (as in ``nn.DataParallel``) and the running
    averages kept are those of ``devices[0]``; with batch norm the result therefore differs
    slightly from one device, without it it matches to float rounding.
    """

    def __init__(self, devices: Sequence[torch.device]) -> None:
        if not devices:
            raise ParallelError("--strategy scratch needs at least one device in --devices")
        super().__init__(devices[0])
        self.devices = list(devices)
        self.replicas: list[nn.Module] = []

    @classmethod
    def build(cls, device: torch.device, options: StrategyOptions = DEFAULTS) -> ScratchStrategy:
        """The replicas ``options.devices`` lists (``cpu,cpu``), else one per visible GPU."""
        if options.devices:
            return cls(parse_devices(options.devices))
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ParallelError(
                "--strategy scratch needs --devices on a machine without GPUs, e.g. "
                "--devices cpu,cpu (two replicas on the CPU)"
            )
        return cls([torch.device("cuda", i) for i in range(n)])

    def wrap(self, model: nn.Module) -> nn.Module:
        self.replicas = [model] + [copy.deepcopy(model).to(d) for d in self.devices[1:]]
        return model

    @torch.no_grad()
    def sync_replicas(self) -> None:
        """Give every replica the master's parameters, buffers, modes and frozen flags."""
        master = self.replicas[0]
        for replica in self.replicas[1:]:
            for r, m in zip(replica.parameters(), master.parameters()):
                r.copy_(m)
                r.requires_grad_(m.requires_grad)
                r.grad = None
            for r, m in zip(replica.buffers(), master.buffers()):
                r.copy_(m)
            for r, m in zip(replica.modules(), master.modules()):
                r.training = m.training

    def forward_backward(
        self,
        net: nn.Module,
        batch: Batch,
        loss_fn: LossFn,
        precision: Precision,
        scaler: torch.amp.GradScaler,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.sync_replicas()
        n = batch.valid  # one process: no padding, n == global_valid
        xs, ys = split_batch(batch.x[:n], batch.y[:n], self.devices)
        used = self.replicas[: len(xs)]  # a batch shorter than the device list uses fewer
        scaled, losses, logits = [], [], []
        for replica, x, y in zip(used, xs, ys):
            with precision.autocast():
                out = replica(x).float()
            shard_losses = loss_fn(out, y)
            # this shard's share of the batch mean: the shards' gradients sum to the batch's
            scaled.append(scaler.scale(shard_losses.sum() / batch.global_valid))
            losses.append(shard_losses.detach().to(self.device))
            logits.append(out.detach().to(self.device))
        # one backward call over all shards: autograd runs each device's part on its own thread
        torch.autograd.backward(scaled)
        self.allreduce_grads(used)
        return torch.cat(losses), torch.cat(logits)

    @staticmethod
    def allreduce_grads(replicas: Sequence[nn.Module]) -> None:
        """The chapter's ``allreduce`` over each parameter's gradients; the master (first
        replica) then holds the sum, which the optimizer uses."""
        for params in zip(*(r.parameters() for r in replicas)):
            if all(p.grad is None for p in params):
                continue  # unused in this step on every device: the optimizer skips it
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            allreduce([p.grad for p in params])
