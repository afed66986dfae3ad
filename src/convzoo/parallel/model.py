"""``--strategy model``: model parallelism, the chapter's 模型并行 — split the network, not the
batch, for when a model does not fit on one device.

The network's parts (``b1..bN``, ``head``) are cut into contiguous groups, one per device
(:mod:`.split`: balanced by forward FLOPs, or where ``--split-at`` says); each group's
parameters live on its device and the activations travel from one device to the next. One
process drives every device::

    convzoo train --strategy model --devices cuda:0,cuda:1
    convzoo train --strategy model --devices cpu,cpu --split-at b3     # the same code on a CPU

The model stays one ordinary module whose parameters happen to sit on several devices, so the
optimizer, checkpoints and ``model.safetensors`` are those of ``--strategy single``.

Plain model parallelism keeps all but one device idle at any moment. ``--microbatches M`` cuts
each batch into M equal micro-batches and issues them staggered (device d works on micro-batch
i while device d+1 works on i-1), so that GPUs, which queue kernels asynchronously, overlap;
this is the pipelining of PyTorch's model-parallel tutorial, in one process. The gradient is
the batch's mean gradient either way; batch norm then normalizes each micro-batch with its own
statistics (docs/multi-device.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..catalog import MODEL_MICROBATCHES as DEFAULT_MICROBATCHES  # plain model parallelism
from ..data.loader import Batch
from ..errors import ParallelError
from ..runtime import Precision
from .base import DEFAULTS, LossFn, Strategy, StrategyOptions
from .devices import parse_devices
from .split import SplitPlan, group_modules, plan_split


def microbatch_count(n: int, m: int) -> int:
    """How many micro-batches a batch of ``n`` examples is cut into: ``m`` when it divides
    ``n``, else the largest number below ``m`` that does. The micro-batches are always of equal
    size, so batch norm sees the same number of examples in each (a short last batch of an
    epoch, kept with ``--no-drop-last``, may get fewer micro-batches)."""
    return max(k for k in range(1, min(m, n) + 1) if n % k == 0)


class ModelParallelStrategy(Strategy):
    """One process; the model's parts in contiguous groups, group ``d`` on ``devices[d]``.

    Batches arrive on ``devices[0]`` (where the first group computes) and the logits are
    brought back there, where the labels are: the loop's losses and metrics never leave it.
    """

    def __init__(
        self,
        devices: Sequence[torch.device],
        *,
        split_at: str | None = None,
        microbatches: int = DEFAULT_MICROBATCHES,
    ) -> None:
        if not devices:
            raise ParallelError("--strategy model needs at least one device in --devices")
        if microbatches < 1:
            raise ParallelError(f"--microbatches must be >= 1, got {microbatches}")
        super().__init__(devices[0])
        self.devices = list(devices)
        self.split_at = split_at
        self.microbatches = microbatches
        self.plan: SplitPlan | None = None
        self.net: StagedNet | None = None

    @classmethod
    def build(
        cls, device: torch.device, options: StrategyOptions = DEFAULTS
    ) -> ModelParallelStrategy:
        """The devices ``options.devices`` lists (``cpu,cpu``), else every visible GPU."""
        if options.devices:
            devices = parse_devices(options.devices)
        elif torch.cuda.is_available() and torch.cuda.device_count() > 0:
            devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        else:
            raise ParallelError(
                "--strategy model needs --devices on a machine without GPUs, e.g. "
                "--devices cpu,cpu (the network in two parts on the CPU)"
            )
        return cls(
            devices,
            split_at=options.split_at,
            microbatches=options.microbatches or DEFAULT_MICROBATCHES,
        )

    def place(self, model: nn.Module, input_size: Sequence[int]) -> None:
        self.plan = plan_split(model, input_size, len(self.devices), self.split_at)
        groups = group_modules(model, self.plan)
        # each part straight to its device: never the whole network on one (it may not fit);
        # the parts hold every parameter and buffer of a zoo model (tests/test_models.py)
        for group, device in zip(groups, self.devices):
            group.to(device)
        self.net = StagedNet(model, groups, self.devices)

    def describe(self) -> str:
        if self.plan is None:
            return ""
        names = ", ".join(map(str, self.devices))
        m = f", {self.microbatches} micro-batches a batch" if self.microbatches > 1 else ""
        return f"model parallel on {names}{m}: " + self.plan.table(self.devices)

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.net is None or self.net.model is not model:
            raise ParallelError(
                "--strategy model splits the network in place(): call "
                "strategy.place(model, input_size) before building the Trainer"
            )
        return self.net

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.wrap(model)(x)

    def forward_backward(
        self,
        net: nn.Module,
        batch: Batch,
        loss_fn: LossFn,
        precision: Precision,
        scaler: torch.amp.GradScaler,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = batch.valid  # one process: no padding
        m = microbatch_count(n, self.microbatches)
        if m == 1:
            return super().forward_backward(net, batch, loss_fn, precision, scaler)
        staged = self.net  # the groups' runner, made by place()
        if staged is None:
            raise ParallelError("--strategy model: call strategy.place(model, input_size) first")
        staged.check(batch.x)
        with precision.autocast():
            logits = torch.cat(staged.staggered(list(batch.x[:n].chunk(m)))).float()
        losses = loss_fn(logits, batch.y[:n])
        # the micro-batches' summed losses over the whole batch: the batch's mean gradient
        scaler.scale(losses.sum() / batch.global_valid).backward()
        return losses.detach(), logits.detach()


class StagedNet(nn.Module):
    """The model as the loop calls it under ``--strategy model``: the input check, then the
    groups on their devices (the model's own modules; this wrapper holds no parameters of its
    own and is never saved)."""

    def __init__(
        self, model: nn.Module, groups: Sequence[nn.Module], devices: Sequence[torch.device]
    ) -> None:
        super().__init__()
        self.model = model
        self.groups = list(groups)
        self.devices = list(devices)

    def check(self, x: torch.Tensor) -> None:
        """The model's own input check (one line naming the model for a wrong shape)."""
        check = getattr(self.model, "check_input", None)
        if check is not None:
            check(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        for d in range(len(self.groups)):
            x = self.run_group(d, x)
        return x.to(self.devices[0])

    def run_group(self, d: int, x: torch.Tensor) -> torch.Tensor:
        # non_blocking: a copy between GPUs is queued like a kernel, the host does not wait
        return self.groups[d](x.to(self.devices[d], non_blocking=True))

    def staggered(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every micro-batch through every group, in the order of a pipeline's clock ticks: at
        tick t group d takes micro-batch t - d (later groups first: their inputs are ready).
        Each group still sees the micro-batches in order (batch-norm running averages too)."""
        acts = list(xs)
        depth = len(self.groups)
        for t in range(len(xs) + depth - 1):
            for d in reversed(range(depth)):
                if 0 <= t - d < len(xs):
                    acts[t - d] = self.run_group(d, acts[t - d])
        return [a.to(self.devices[0]) for a in acts]
