"""Where to cut a network for model parallelism (the chapter's 模型并行): contiguous groups of
its parts, one group per device.

Every zoo model is a chain of parts, ``model.parts``: the feature stages ``b1..bN`` (torchvision
networks: their own stage names), then ``head``. An N-way split keeps the order and gives each
device a run of consecutive parts; the activation leaving the last part of a group is what
travels to the next device.

The default cut balances forward FLOPs (``torch.utils.flop_counter``, counted on the meta
device: shapes only, no arithmetic and no memory): the slowest part sets the pace of a pipeline
and the time the other devices wait in plain model parallelism. Parameters (memory) can be far
from FLOPs (VGG-11's head holds 119 of its 129 M parameters and 0.2 % of its FLOPs), so the
table prints both and ``--split-at b4`` cuts where the user says.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ParallelError


@dataclass(frozen=True)
class PartCost:
    """One part of the chain, for one example."""

    name: str
    params: int
    flops: int  #: forward FLOPs (multiply-add = 2)
    output_shape: tuple[int, ...]  #: one example's output, batch dimension left out
    output_bytes: int  #: bytes per element of that output (4 in float32)


@dataclass(frozen=True)
class Group:
    """The consecutive parts one device runs."""

    parts: tuple[PartCost, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parts]

    @property
    def params(self) -> int:
        return sum(p.params for p in self.parts)

    @property
    def flops(self) -> int:
        return sum(p.flops for p in self.parts)

    @property
    def sends(self) -> tuple[int, ...]:
        """Shape of the activation leaving the group, per example."""
        return self.parts[-1].output_shape

    @property
    def send_elements(self) -> int:
        return math.prod(self.sends)

    @property
    def send_bytes(self) -> int:
        return self.send_elements * self.parts[-1].output_bytes


@dataclass(frozen=True)
class SplitPlan:
    """An N-way split of ``model`` (its name) for inputs of ``input_size`` ((C, H, W) or
    (C, L))."""

    model: str
    input_size: tuple[int, ...]
    groups: tuple[Group, ...]
    chosen_by: str  #: "forward FLOPs" (balanced) or "--split-at"

    @property
    def starts(self) -> list[str]:
        """The first part of every group but the first: what ``--split-at`` would name."""
        return [g.names[0] for g in self.groups[1:]]

    def table(self, devices: Sequence[object] | None = None) -> str:
        """One line per group: its parts, parameters, FLOPs and what it sends to the next."""
        total = sum(g.flops for g in self.groups) or 1
        head = ("part", "device", "stages", "params", "MFLOPs", "share", "sends per example")
        rows = []
        for i, g in enumerate(self.groups):
            last = i == len(self.groups) - 1
            sends = (
                "-"
                if last
                else (
                    f"{' x '.join(map(str, g.sends))} = {g.send_elements:,} values, "
                    f"{_kib(g.send_bytes)}"
                )
            )
            device = str(devices[i]) if devices is not None else ""
            rows.append(
                (
                    str(i + 1),
                    device,
                    ", ".join(g.names),
                    f"{g.params:,}",
                    f"{g.flops / 1e6:,.2f}",
                    f"{100 * g.flops / total:.0f}%",
                    sends,
                )
            )
        keep = [j for j in range(len(head)) if devices is not None or j != 1]
        cells = [[r[j] for j in keep] for r in [head, *rows]]
        widths = [max(len(r[j]) for r in cells) for j in range(len(keep))]
        aligns = [
            "<" if head[j] in ("device", "stages", "sends per example") else ">" for j in keep
        ]
        lines = [
            "  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, aligns, widths)).rstrip() for r in cells
        ]
        size = " x ".join(map(str, self.input_size))
        title = (
            f"{self.model} in {len(self.groups)} parts, cut by {self.chosen_by} "
            f"(input {size}; --split-at {','.join(self.starts)})"
        )
        return "\n".join([title, *lines])


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n >= 1024 else f"{n} B"


def _meta_call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with meta stand-ins for its weights: shapes and FLOPs, no arithmetic."""
    tensors = {
        name: torch.empty_like(t, device="meta")
        for name, t in itertools.chain(module.named_parameters(), module.named_buffers())
    }
    return torch.func.functional_call(module, tensors, (x,), strict=False, tie_weights=False)


def part_costs(model: nn.Module, input_size: Sequence[int]) -> list[PartCost]:
    """Parameters, forward FLOPs and output shape of each of ``model.parts`` for one example
    of ``input_size`` ((C, H, W), or (C, L) for sequences), counted on the meta device in eval
    mode."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    x = torch.empty(1, *input_size, device="meta", dtype=dtype)
    was_training = model.training
    model.eval()  # batch norm over one example would refuse in training mode; shapes agree
    costs = []
    try:
        for name, part in model.parts:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                x = _meta_call(part, x)
            params = sum(p.numel() for p in part.parameters())
            costs.append(
                PartCost(
                    name, params, counter.get_total_flops(), tuple(x.shape[1:]), x.element_size()
                )
            )
    finally:
        model.train(was_training)
    return costs


def balance(costs: Sequence[int], n: int) -> list[int]:
    """Start indices of groups 2..n that cut ``costs`` into ``n`` contiguous non-empty groups
    with the smallest largest sum (the linear partition problem; exact, O(n * len(costs)^2)).
    Among equally good cuts the earliest is taken, so the result is deterministic (every
    process of a pipeline computes the same one)."""
    k = len(costs)
    prefix = [0, *itertools.accumulate(costs)]
    # best[j][i]: smallest largest sum cutting costs[:i] into j groups; cut[j][i]: last start
    best = [[math.inf] * (k + 1) for _ in range(n + 1)]
    cut = [[0] * (k + 1) for _ in range(n + 1)]
    best[0][0] = 0
    for j in range(1, n + 1):
        for i in range(j, k + 1):
            for s in range(j - 1, i):
                value = max(best[j - 1][s], prefix[i] - prefix[s])
                if value < best[j][i]:
                    best[j][i], cut[j][i] = value, s
    starts, i = [], k
    for j in range(n, 1, -1):
        i = cut[j][i]
        starts.append(i)
    return starts[::-1]


def plan_split(
    model: nn.Module, input_size: Sequence[int], n: int, split_at: str | None = None
) -> SplitPlan:
    """Cut ``model.parts`` into ``n`` groups: at ``split_at`` (comma-separated names of the
    parts that start groups 2..n) or, by default, balancing forward FLOPs."""
    name = getattr(model, "model_name", type(model).__name__)
    costs = part_costs(model, input_size)
    names = [c.name for c in costs]
    if n > len(costs):
        raise ParallelError(
            f"{name} has {len(costs)} parts ({', '.join(names)}) and cannot be split over {n} "
            f"devices: use at most {len(costs)}"
        )
    if split_at:
        starts = _parse_split_at(split_at, names, n, name)
        chosen_by = "--split-at"
    else:
        starts = balance([c.flops for c in costs], n)
        chosen_by = "forward FLOPs"
    bounds = [0, *starts, len(costs)]
    groups = tuple(Group(tuple(costs[a:b])) for a, b in itertools.pairwise(bounds))
    return SplitPlan(name, tuple(int(s) for s in input_size), groups, chosen_by)


def _parse_split_at(spec: str, names: list[str], n: int, model: str) -> list[int]:
    """Indices of the parts ``spec`` names; one line of error for anything else."""
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ParallelError(
            f"--split-at {spec}: {model} has no part {unknown[0]}; its parts are {', '.join(names)}"
        )
    if len(wanted) != n - 1:
        raise ParallelError(
            f"--split-at {spec} cuts {model} into {len(wanted) + 1} parts, not {n}: name "
            f"{n - 1} part(s), each the first of a device's share"
        )
    starts = [names.index(w) for w in wanted]
    if starts[0] == 0:
        raise ParallelError(
            f"--split-at {spec}: nothing comes before {names[0]}; name where the next "
            f"device starts, one of {', '.join(names[1:])}"
        )
    if any(b <= a for a, b in itertools.pairwise(starts)):
        raise ParallelError(
            f"--split-at {spec}: name the parts in the network's order ({', '.join(names)})"
        )
    return starts


def group_modules(model: nn.Module, plan: SplitPlan) -> list[nn.Sequential]:
    """Each group of ``plan`` as one module running its parts in order (the model's own
    modules: training them trains ``model``)."""
    parts = dict(model.parts)
    return [nn.Sequential(*(parts[name] for name in g.names)) for g in plan.groups]
