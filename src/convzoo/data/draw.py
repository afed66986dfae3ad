"""Per-sample random draws for batched augmentation, from the loader's seeded generator."""

from __future__ import annotations

import torch


def uniform(g: torch.Generator, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    # Drawn on the generator's device (a CPU generator may drive a CUDA batch), then moved.
    return torch.rand(shape, generator=g, device=g.device).to(device)


def randint(
    g: torch.Generator, high: torch.Tensor, shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Per-element uniform integers in ``[0, high]`` (``high`` inclusive, int tensor)."""
    u = uniform(g, shape or tuple(high.shape), high.device)
    return (u * (high + 1)).floor().long().clamp_max_(high)
