"""Small layer factories shared by the model families (norm, activation, pooling by name)."""

from __future__ import annotations

import torch
from torch import nn

from .batchnorm import BatchNorm


class _PassThroughWhenSized:
    """Adaptive average pooling that passes its input through when it already has the output
    size: at the book's input sizes the pooling before a classifier is the identity, and
    PyTorch would still run (and differentiate) an averaging kernel over 1x1 windows."""

    dims: int
    output_size: int | tuple[int, ...]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.output_size
        target = (size,) * self.dims if isinstance(size, int) else tuple(size)
        if tuple(x.shape[-self.dims :]) == target:
            return x
        return super().forward(x)  # type: ignore[misc]


class AdaptiveAvgPool2d(_PassThroughWhenSized, nn.AdaptiveAvgPool2d):
    dims = 2


class AdaptiveAvgPool1d(_PassThroughWhenSized, nn.AdaptiveAvgPool1d):
    dims = 1


#: layer classes by the number of spatial dimensions (1: sequences N x C x L, 2: images)
CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d}
ADAPTIVE_AVG_POOL: dict[int, type[nn.Module]] = {1: AdaptiveAvgPool1d, 2: AdaptiveAvgPool2d}
_TORCH_NORM: dict[int, type[nn.Module]] = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}
_POOLS: dict[str, dict[int, type[nn.Module]]] = {
    "avg": {1: nn.AvgPool1d, 2: nn.AvgPool2d},
    "max": {1: nn.MaxPool1d, 2: nn.MaxPool2d},
}


def make_norm(kind: str | None, num_features: int, dims: int) -> nn.Module | None:
    """A normalization layer by name: ``"scratch"`` (ours), ``"torch"`` (nn.BatchNorm), or
    ``None`` for none (so that layer tables show only real layers). ``dims`` is the rank of
    its input: 2 (N x C), 3 (N x C x L) or 4 (N x C x H x W)."""
    if kind is None or kind == "none":
        return None
    if kind == "scratch":
        return BatchNorm(num_features)
    if kind == "torch":
        return _TORCH_NORM[dims](num_features)
    raise ValueError(f"unknown norm {kind!r}; use 'scratch', 'torch' or None")


def make_activation(kind: str) -> nn.Module:
    acts = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
    if kind not in acts:
        raise ValueError(f"unknown activation {kind!r}; use one of {', '.join(acts)}")
    return acts[kind]()


def make_pool(kind: str, kernel_size: int = 2, stride: int = 2, dim: int = 2) -> nn.Module:
    """``"avg"`` or ``"max"`` pooling over ``dim`` spatial dimensions (1: sequences)."""
    if kind not in _POOLS:
        raise ValueError(f"unknown pool {kind!r}; use one of {', '.join(_POOLS)}")
    return _POOLS[kind][dim](kernel_size=kernel_size, stride=stride)
