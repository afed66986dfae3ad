"""``--strategy pipeline``: model parallelism as a pipeline, one process per part, on PyTorch's
own ``torch.distributed.pipelining`` (GPipe or 1F1B schedule), started by torchrun like ddp::

    torchrun --nproc-per-node 2 -m convzoo train --strategy pipeline --microbatches 8
    torchrun --standalone --nproc-per-node 2 -m convzoo train --strategy pipeline --device cpu

The network is cut as for ``--strategy model`` (:mod:`.split`; ``--split-at`` overrides), into
as many parts as processes; process ``s`` keeps part ``s`` on its device (``cuda:LOCAL_RANK``
with NCCL, or the CPU with gloo) and the rest of the network only in host memory. Every batch
is cut into ``--microbatches`` equal micro-batches which flow through the stages, activations
forward and their gradients backward from process to process. With S stages and M micro-batches
a GPipe step leaves each device idle a fraction (S - 1) / (M + S - 1) of the time (the bubble);
1F1B has the same bubble and keeps at most S micro-batches' activations alive instead of M.

The gradient is the batch's mean gradient (each micro-batch's summed loss divided by the batch
size, ``scale_grads=False``); batch norm normalizes each micro-batch with its own statistics and
updates its running averages once per micro-batch: the same training as ``--strategy model``
with the same ``--microbatches`` (and as accumulating the micro-batches' gradients on one
device), which tests/test_pipeline.py checks.

Every process reads the same batches (the pipeline is one data-parallel replica: ``rank`` 0 of
``world_size`` 1); the first stage feeds the inputs, the last computes the loss and sends the
per-sample losses and logits to the others, so that every process keeps the same metrics.
Stage 0 alone prints and writes files; before the model is evaluated or saved the other stages
send it their parameters and buffers, so ``model.safetensors`` and checkpoints hold the whole
network, loadable on one device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# micro-batches per batch unless --microbatches says (2 stages: a 20 % bubble); the
# --pipeline-schedule names: torch.distributed.pipelining's ScheduleGPipe and Schedule1F1B
from ..catalog import PIPELINE_MICROBATCHES as DEFAULT_MICROBATCHES
from ..catalog import PIPELINE_SCHEDULES as SCHEDULES
from ..data.loader import Batch
from ..errors import ParallelError
from ..runtime import Precision
from .base import DEFAULTS, LossFn, StrategyOptions
from .ddp import DistributedStrategy
from .model import microbatch_count
from .split import SplitPlan, group_modules, plan_split

LAUNCH_HINT = (
    "--strategy pipeline runs one process per part of the network, started by torchrun, e.g. "
    "torchrun --nproc-per-node 2 -m convzoo train --strategy pipeline ... "
    "(one process over several devices: --strategy model --devices ...)"
)


def bubble(stages: int, microbatches: int) -> float:
    """Fraction of a GPipe (or 1F1B) step each device waits: (S - 1) / (M + S - 1)."""
    return (stages - 1) / (microbatches + stages - 1)


class _Autocast(nn.Module):
    """This process's part run under the step's precision (set before every step)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.precision: Precision | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # point-to-point sends take dense row-major tensors (gloo refuses channels-last ones):
        # the activation sent forward, and the gradient of the input sent back
        x = _DenseGrad.apply(x) if x.requires_grad else x
        if self.precision is None:
            out = self.module(x)
        else:
            with self.precision.autocast():
                out = self.module(x)
        return out.contiguous()


class _DenseGrad(torch.autograd.Function):
    """The identity, whose backward makes the gradient row-major (contiguous)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


class PipelineStrategy(DistributedStrategy):
    """Stage ``stage`` of ``num_stages``, one per process of torchrun's group."""

    launch_hint = LAUNCH_HINT

    def __init__(
        self,
        device: torch.device,
        *,
        split_at: str | None = None,
        microbatches: int = DEFAULT_MICROBATCHES,
        schedule: str = SCHEDULES[0],
    ) -> None:
        if schedule not in SCHEDULES:
            raise ParallelError(
                f"unknown pipeline schedule {schedule!r}; use {', '.join(SCHEDULES)}"
            )
        super().__init__(device)
        # one data-parallel replica: every process reads the whole batch
        self.stage, self.num_stages = self.rank, self.world_size
        self.rank, self.world_size = 0, 1
        if schedule == "1f1b" and microbatches < self.num_stages:
            raise ParallelError(
                f"the 1F1B schedule needs at least as many micro-batches as stages: "
                f"--microbatches {microbatches} < {self.num_stages} processes"
            )
        self.split_at, self.microbatches, self.schedule_name = split_at, microbatches, schedule
        self.plan: SplitPlan | None = None
        self.part: _Autocast | None = None
        self._schedules: dict[tuple[int, int, bool], Any] = {}
        self._stale = False  # a step changed this stage's weights since the last gather

    @classmethod
    def build(cls, device: torch.device, options: StrategyOptions = DEFAULTS) -> PipelineStrategy:
        return cls(
            device,
            split_at=options.split_at,
            microbatches=options.microbatches or DEFAULT_MICROBATCHES,
            schedule=options.schedule or SCHEDULES[0],
        )

    @property
    def is_main(self) -> bool:
        return self.stage == 0

    @property
    def is_last(self) -> bool:
        return self.stage == self.num_stages - 1

    # -- the split ------------------------------------------------------------------------
    def place(self, model: nn.Module, input_size: Sequence[int]) -> None:
        # every process computes the same plan (FLOPs are counted, not timed)
        self.plan = plan_split(model, input_size, self.num_stages, self.split_at)
        module = group_modules(model, self.plan)[self.stage]
        self.part = _Autocast(module.to(self.device))
        self.model = model
        names = {id(t): k for k, t in model.state_dict(keep_vars=True).items()}
        mine = [*module.parameters(), *module.buffers()]
        self.owned_keys = {names[id(t)] for t in mine if id(t) in names}
        self.owned_params = {id(p) for p in module.parameters()}
        self.num_classes = self.plan.groups[-1].sends[0]

    def describe(self) -> str:
        if self.plan is None:
            return ""
        backend = dist.get_backend()
        where = [f"process {s}" for s in range(self.num_stages)]
        return (
            f"pipeline of {self.num_stages} processes ({backend}), {self.schedule_name} schedule, "
            f"{self.microbatches} micro-batches a batch (bubble "
            f"{bubble(self.num_stages, self.microbatches):.0%} of each step): "
            + self.plan.table(where)
        )

    def wrap(self, model: nn.Module) -> nn.Module:
        return model  # the schedules run this process's part; there is no whole-model forward

    def after_step(self, model: nn.Module) -> None:
        """Nothing to share: each process updates its own part."""

    def all_reduce_(self, t: torch.Tensor) -> torch.Tensor:
        return t  # every process already holds the whole batch's figures

    # -- steps ----------------------------------------------------------------------------
    def forward_backward(
        self,
        net: nn.Module,
        batch: Batch,
        loss_fn: LossFn,
        precision: Precision,
        scaler: torch.amp.GradScaler,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if scaler.is_enabled():
            raise ParallelError(
                "--strategy pipeline cannot use fp16's gradient scaler (each process would "
                "decide alone to skip a step); use --precision bf16 or fp32"
            )
        self.model.check_input(batch.x)  # on every process: all stop together
        n = batch.valid  # one data-parallel replica: no padding
        schedule = self._schedule(n, True, loss_fn)
        self.part.precision = precision
        out = schedule.step(*self._inputs(batch.x), target=batch.y if self.is_last else None)
        self._stale = True
        rows = None
        if self.is_last:
            logits = out.detach().float()
            rows = torch.cat([loss_fn(logits, batch.y).detach()[:, None], logits], 1)
        rows = self._from_last(rows, n, 1 + self.num_classes)
        return rows[:, 0], rows[:, 1:]

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # in training mode (the batch-norm refresh of young runs) whole batches, whose
        # statistics the running averages should hold; the running averages change then
        whole = model.training
        self._stale |= whole
        schedule = self._schedule(len(x), False, None, whole=whole)
        self.part.precision = None  # the caller's autocast holds
        out = schedule.eval(*self._inputs(x))
        return self._from_last(out.float() if self.is_last else None, len(x), self.num_classes)

    def _inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x,) if self.stage == 0 else ()

    def _schedule(
        self, n: int, training: bool, loss_fn: LossFn | None, *, whole: bool = False
    ) -> Any:
        """The schedule for batches of ``n`` examples (in one micro-batch if ``whole``), made
        on first use: a stage's buffers are sized for one micro-batch shape, and every process
        sees the same batch sizes."""
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

        m = 1 if whole else microbatch_count(n, self.microbatches)
        key = (n, m, training)
        if key not in self._schedules:
            stage = PipelineStage(self.part, self.stage, self.num_stages, self.device)
            one_f_one_b = training and self.schedule_name == "1f1b" and m >= self.num_stages
            cls = Schedule1F1B if one_f_one_b else ScheduleGPipe
            loss = _batch_share(loss_fn, n) if training and loss_fn is not None else None
            self._schedules[key] = cls(stage, m, loss_fn=loss, scale_grads=False)
        return self._schedules[key]

    def _from_last(self, t: torch.Tensor | None, rows: int, cols: int) -> torch.Tensor:
        """The last stage's ``rows x cols`` float tensor on every process."""
        if t is None:
            t = torch.empty(rows, cols, device=self.device)
        t = t.contiguous()
        dist.broadcast(t, src=self.num_stages - 1)
        return t

    # -- the whole model on the main process ---------------------------------------------
    def gather_model(self, model: nn.Module) -> None:
        """The other stages' parameters and buffers into stage 0's copy of the network."""
        if not self._stale:
            return
        self._stale = False
        state = model.state_dict()
        mine = {k: state[k].detach().cpu() for k in self.owned_keys}
        parts = [None] * self.num_stages if self.is_main else None
        dist.gather_object(mine, parts, dst=0)
        if self.is_main:
            for other in parts[1:]:
                model.load_state_dict(other, strict=False)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's state with every stage's entries, on stage 0 (the indices number
        the whole network's parameters, the same on every process)."""
        state = optimizer.state_dict()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        mine = {
            i: {k: v.cpu() if torch.is_tensor(v) else v for k, v in s.items()}
            for i, s in state["state"].items()
            if id(params[i]) in self.owned_params
        }
        parts = [None] * self.num_stages if self.is_main else None
        dist.gather_object(mine, parts, dst=0)
        if not self.is_main:
            return state
        return {"state": {i: s for part in parts for i, s in part.items()}, **_groups(state)}


def _groups(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "state"}


def _batch_share(loss_fn: LossFn, n: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A micro-batch's summed loss over the whole batch's ``n``: the micro-batches' gradients
    add up to the batch's mean gradient."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits.float(), y).sum() / n

    return loss
