"""Layer-by-layer inspection: the book's "print each layer's output shape", with parameters and
FLOPs.

Own forward hooks rather than torchinfo: the zoo's models nest blocks (Inception, Residual,
DenseBlock) whose outputs are not those of their last child, and we want exactly one row per
module that computes something, FLOPs per row from PyTorch's own ``torch.utils.flop_counter``
(the same counter the benchmarks use), and no extra dependency. That is about 60 lines here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from .display import Raw, html_table

if TYPE_CHECKING:  # torch is imported when a summary is made: `import convzoo` stays light
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode


@dataclass
class LayerRow:
    name: str  #: dotted path in the model (``features.b1.0``)
    type: str  #: module class name
    depth: int  #: nesting level below the model's stages (0 = top level row)
    output_shape: tuple[int, ...]
    params: int  #: parameters of this module and its children
    flops: int  #: forward FLOPs of this module and its children (multiply-add = 2 FLOPs)


@dataclass
class ModelSummary:
    model: str
    input_size: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    flops: int = 0  #: forward FLOPs for one image, as counted by torch.utils.flop_counter
    output_shape: tuple[int, ...] = ()

    HEAD = ("layer", "type", "output shape", "params", "MFLOPs")

    def to_dict(self) -> dict:
        return asdict(self)

    def _cells(self) -> list[tuple[str, ...]]:
        return [
            (
                "  " * r.depth + r.name,
                r.type,
                " x ".join(map(str, r.output_shape)),
                f"{r.params:,}",
                f"{r.flops / 1e6:,.2f}",
            )
            for r in self.rows
        ]

    def _totals(self) -> list[tuple[str, str]]:
        unit = "image" if len(self.input_size) == 3 else "series"
        return [
            ("total parameters", f"{self.total_params:,}"),
            ("trainable parameters", f"{self.trainable_params:,}"),
            (f"forward GFLOPs/{unit}", f"{self.flops / 1e9:,.4f}"),
            ("output shape", " x ".join(map(str, self.output_shape))),
        ]

    def _repr_html_(self) -> str:
        """The table as Jupyter shows it; nested layers indented."""
        rows = [
            (Raw("&nbsp;" * 4 * r.depth + html.escape(r.name)), *cells[1:])
            for r, cells in zip(self.rows, self._cells())
        ]
        rows += [(Raw(f"<b>{k}</b>"), "", "", v, "") for k, v in self._totals()]
        caption = f"{self.model}, input 1 x {' x '.join(map(str, self.input_size))}"
        return html_table(self.HEAD, rows, align="llrrr", caption=caption)

    def __str__(self) -> str:
        head = self.HEAD
        body = self._cells()
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        aligns = ("<", "<", ">", ">", ">")

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths)).rstrip()

        rule = "-" * len(fmt(head))
        lines = [
            f"{self.model}  input 1 x {' x '.join(map(str, self.input_size))}",
            rule,
            fmt(head),
            rule,
            *map(fmt, body),
            rule,
            *(f"{k + ':':<21} {v}" for k, v in self._totals()),
        ]
        return "\n".join(lines)


def _is_container(m: nn.Module) -> bool:
    from torch import nn

    # Sequential/ModuleList only route data: their output is their last child's row.
    return isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


def _row_hooks(model: nn.Module, rows: dict[str, LayerRow], depth: int | None) -> list:
    """Forward hooks that record each computing module's output shape and parameters."""
    import torch

    hooks = []
    for name, module in model.named_modules():
        if not name or _is_container(module):
            continue
        level = _depth(model, name)
        if depth is not None and level > depth:
            continue

        def hook(mod, _inp, out, name=name, level=level):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
            params = sum(q.numel() for q in mod.parameters())
            rows[name] = LayerRow(name, type(mod).__name__, level, shape, params, 0)

        hooks.append(module.register_forward_hook(hook))
    return hooks


def _counted_forward(
    model: nn.Module, x: torch.Tensor, hooks: list
) -> tuple[torch.Tensor, FlopCounterMode]:
    """One forward pass in eval mode under PyTorch's FLOP counter; hooks removed after it."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    # Zoo models validate their input first; the check's one-off shape probe must run outside
    # the FLOP counter, which would otherwise count its meta-tensor passes.
    check = getattr(model, "check_input", None)
    try:
        if check is not None:
            check(x)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return out, counter


def summary(
    model: nn.Module, input_size: Sequence[int], *, depth: int | None = None
) -> ModelSummary:
    """Run one input of ``input_size`` through ``model`` and tabulate every layer: (C, H, W)
    for an image, (C, L) for a sequence (1-D models).

    ``depth`` limits how deeply nested blocks are expanded (``None``: all the way down). The
    model is run in eval mode on its own device and left in the mode it was in.
    """
    import torch

    input_size = tuple(int(s) for s in input_size)
    if len(input_size) not in (2, 3):
        raise ValueError(f"input_size must be (C, H, W) or (C, L), got {input_size}")
    p = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=p.device if p is not None else "cpu")
    rows: dict[str, LayerRow] = {}
    out, counter = _counted_forward(model, x, _row_hooks(model, rows, depth))
    root_name = type(model).__name__
    flops_by_module = counter.get_flop_counts()
    for name, row in rows.items():
        row.flops = int(sum(flops_by_module.get(f"{root_name}.{name}", {}).values()))
    # rows in forward (execution) order, which is what the book's loop prints
    order = _order(model)
    return ModelSummary(
        model=getattr(model, "model_name", root_name),
        input_size=input_size,
        rows=sorted(rows.values(), key=lambda r: order[r.name]),
        total_params=sum(q.numel() for q in model.parameters()),
        trainable_params=sum(q.numel() for q in model.parameters() if q.requires_grad),
        flops=int(counter.get_total_flops()),
        output_shape=tuple(out.shape),
    )


def _depth(model: nn.Module, name: str) -> int:
    """Nesting level counting only non-container ancestors (``features.b3.0.p1_1`` -> 1)."""
    level, path = 0, ""
    for part in name.split(".")[:-1]:
        path = f"{path}.{part}" if path else part
        if not _is_container(model.get_submodule(path)):
            level += 1
    return level


def _order(model: nn.Module) -> dict[str, int]:
    # registration order of submodules matches execution order in every zoo model
    return {name: i for i, (name, _) in enumerate(model.named_modules())}
