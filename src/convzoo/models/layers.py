"""Small layer factories shared by the model families (norm, activation, pooling by name)."""

from __future__ import annotations

import torch
from torch import nn

from .batchnorm import BatchNorm


class AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` that passes its input through when it already has the output
    size: at the book's input sizes the pooling before a classifier is the identity, and
    PyTorch would still run (and differentiate) an averaging kernel over 1x1 windows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.output_size
        target = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(x.shape[-2:]) == target:
            return x
        return super().forward(x)


def make_norm(kind: str | None, num_features: int, dims: int) -> nn.Module | None:
    """A normalization layer by name: ``"scratch"`` (ours), ``"torch"`` (nn.BatchNorm), or
    ``None`` for none (so that layer tables show only real layers)."""
    if kind is None or kind == "none":
        return None
    if kind == "scratch":
        return BatchNorm(num_features)
    if kind == "torch":
        return nn.BatchNorm1d(num_features) if dims == 2 else nn.BatchNorm2d(num_features)
    raise ValueError(f"unknown norm {kind!r}; use 'scratch', 'torch' or None")


def make_activation(kind: str) -> nn.Module:
    acts = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
    if kind not in acts:
        raise ValueError(f"unknown activation {kind!r}; use one of {', '.join(acts)}")
    return acts[kind]()


def make_pool(kind: str, kernel_size: int = 2, stride: int = 2) -> nn.Module:
    pools = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
    if kind not in pools:
        raise ValueError(f"unknown pool {kind!r}; use one of {', '.join(pools)}")
    return pools[kind](kernel_size=kernel_size, stride=stride)
