"""``--strategy ddp``: ``DistributedDataParallel``, one process per device, started by torchrun.

One machine, 8 GPUs::

    torchrun --nproc-per-node 8 -m convzoo train --strategy ddp --out runs/r18 --auto-resume

Two machines (run on each; ``HOST`` is the first machine's address; ``/shared`` a disk both
mount, since the c10d rendezvous may put rank 0 on either machine after a restart; the
variable lets a lost machine, launched again, rejoin: see :func:`init_group`)::

    TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --nnodes 2 --nproc-per-node 8 \\
        --rdzv-id r18 --rdzv-backend c10d --rdzv-endpoint HOST:29400 --max-restarts 3 \\
        -m convzoo train --strategy ddp --out /shared/runs/r18 --auto-resume

CPU (gloo), e.g. to try it on a laptop::

    torchrun --standalone --nproc-per-node 2 -m convzoo train --strategy ddp --device cpu ...

As in nanoGPT the process reads ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` from torchrun's
environment; process ``LOCAL_RANK`` of a machine uses ``cuda:LOCAL_RANK`` (NCCL), or the CPU
(gloo). ``--batch-size`` is per process: the global batch is ``batch_size * WORLD_SIZE``, and the
loader gives every rank a disjoint share of it (every sample once per epoch, padding marked and
left out of losses and metrics). Only rank 0 prints and writes files.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ParallelError
from ..models import BatchNorm
from .base import DEFAULTS, Strategy, StrategyOptions

#: how long a collective waits for the other ranks before failing instead of hanging forever;
#: it must cover the longest time one rank can be busy alone (rank 0 writing a checkpoint,
#: one machine loading its data set before the first broadcast)
TIMEOUT = _dt.timedelta(minutes=15)

LAUNCH_HINT = (
    "--strategy ddp runs one process per device started by torchrun, e.g. "
    "torchrun --nproc-per-node 2 -m convzoo train --strategy ddp ... "
    "(one process: --strategy single)"
)


def init_group(device: torch.device) -> None:
    """``init_process_group`` from torchrun's environment: NCCL on GPUs, gloo on the CPU.

    By default (PyTorch >= 2.4) torchrun's agents share one TCP store with their workers and keep
    it across restarts, without separating attempts in it: a restarted group could read the dead
    group's addresses and fail with "Connection refused" (measured here with gloo;
    pytorch/pytorch#167288 with NCCL). So on that shared store each attempt gets its own prefix.
    With ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (what a job that may lose a whole node needs,
    see :data:`NODE_LOSS_HINT`) every rendezvous round starts a new store and needs no prefix,
    and must not get one: the restart count differs between an agent whose worker failed and
    one that only saw the group change (a job hung so, measured in the soak suite).
    """
    store, rank, world_size = next(dist.rendezvous("env://", timeout=TIMEOUT))
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"convzoo/attempt_{attempt}", store)
    if rank == 0 and shares_agent_store_across_nodes():
        print(f"warning: {NODE_LOSS_HINT}", file=sys.stderr, flush=True)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(
        backend, store=store, rank=rank, world_size=world_size, timeout=TIMEOUT, **kwargs
    )


#: why a multi-node job should not share torchrun's store, in one line
NODE_LOSS_HINT = (
    "this job spans several nodes on torchrun's shared rendezvous store, where a lost node "
    "launched again never rejoins (the survivors wait 60 s for keys of a new round, then "
    "exit); launch every node with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun ..."
)


def shares_agent_store_across_nodes() -> bool:
    """Whether torchrun runs this job on several nodes over the agents' shared store."""
    nodes = int(os.environ.get("GROUP_WORLD_SIZE", "1"))
    return nodes > 1 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"


def check_sync_bn(model: nn.Module) -> None:
    """Refuse ``--sync-bn`` for a model with the from-scratch ``convzoo.BatchNorm``:
    ``SyncBatchNorm.convert_sync_batchnorm`` converts PyTorch's layers only, so ours would stay
    per-process while the user believes them synchronised."""
    if any(isinstance(m, BatchNorm) for m in model.modules()):
        raise ParallelError(
            "--sync-bn converts PyTorch's batch norm layers only, and this model uses "
            "convzoo.BatchNorm (the book's from-scratch layer), which would stay "
            "per-process: use -o norm=torch, or drop --sync-bn"
        )


class DistributedStrategy(Strategy):
    """This process's place in the group, the DDP wrapper and the collectives the Trainer uses.

    ``rank`` is the global rank (0 prints and saves); ``device`` is ``cuda:LOCAL_RANK`` or the
    CPU. A process group already set up by the caller is used as it is and left open.
    """

    launch_hint = LAUNCH_HINT  #: the one line for a start without torchrun

    def __init__(self, device: torch.device, *, sync_bn: bool = False) -> None:
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            if "RANK" not in os.environ:
                raise ParallelError(self.launch_hint)
            local_rank = int(os.environ.get("LOCAL_RANK", 0))
        else:
            local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        if device.type == "cuda":
            n = torch.cuda.device_count()
            if local_rank >= n:
                raise ParallelError(
                    f"process LOCAL_RANK={local_rank} has no GPU: this machine has {n}; start at "
                    f"most {n} processes per machine (--nproc-per-node {n})"
                )
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if sync_bn and device.type != "cuda":
            raise ParallelError(
                "--sync-bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA only; drop it on CPUs"
            )
        if self._owns_group:
            init_group(device)
        super().__init__(device)
        self.local_rank = local_rank
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.sync_bn = sync_bn

    @classmethod
    def build(
        cls, device: torch.device, options: StrategyOptions = DEFAULTS
    ) -> DistributedStrategy:
        """This process's place in torchrun's group (one device per process)."""
        return cls(device, sync_bn=options.sync_bn)

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.sync_bn:
            check_sync_bn(model)
            # in place for every model whose root is not itself a batch-norm layer; the new
            # layers share the old parameters and buffers, so the optimizer is unaffected
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        # buffers (batch-norm running statistics) are broadcast in after_step instead of at
        # the next forward, so that every rank evaluates the same model (rank 0's); recent
        # PyTorch names the flag forward_sync_buffers and deprecates broadcast_buffers
        flags = inspect.signature(DistributedDataParallel).parameters
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in flags else "broadcast_buffers"
        return DistributedDataParallel(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            **{no_sync: False},
        )

    def after_step(self, model: nn.Module) -> None:
        """Rank 0's buffers to every rank, one collective per dtype. DDP keeps parameters equal
        (same gradients, same update); buffers updated in the forward pass (batch-norm running
        averages) would drift apart, each rank averaging its own shards."""
        if self.world_size == 1:
            return
        groups: dict[torch.dtype, list[torch.Tensor]] = {}
        for b in model.buffers():
            groups.setdefault(b.dtype, []).append(b)
        with torch.no_grad():
            for buffers in groups.values():
                flat = torch.cat([b.reshape(-1) for b in buffers])
                dist.broadcast(flat, src=0)
                offset = 0
                for b in buffers:
                    b.copy_(flat[offset : offset + b.numel()].view_as(b))
                    offset += b.numel()

    def all_reduce_(self, t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
