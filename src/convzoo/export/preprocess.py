"""``--with-preprocess``: the input scaling and normalization baked into the exported graph.

The exported graph then takes what an image decoder gives: uint8 N x C x H x W pixels (0-255)
at the network's input size. Resizing stays outside (decoders and runtimes each have their
own resize; baking one in would hide which), so does colour conversion.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..train.meta import ModelMeta
from .formats import INPUT_NAME


class WithPreprocess(nn.Module):
    """uint8 pixels -> ``net``'s float input, with the same arithmetic as the training loader
    (divide by 255, subtract the mean, divide by the std: not a fused scale-and-shift, whose
    rounding would differ from training's by about 1e-7)."""

    def __init__(self, net: nn.Module, meta: ModelMeta) -> None:
        super().__init__()
        self.net = net
        shape = (1, meta.in_channels, 1, 1)
        self.normalized = meta.mean is not None and meta.std is not None
        mean = torch.tensor(meta.mean or [0.0] * meta.in_channels).view(shape)
        std = torch.tensor(meta.std or [1.0] * meta.in_channels).view(shape)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0
        if self.normalized:
            x = (x - self.mean) / self.std
        return self.net(x)


def to_pixels(x: torch.Tensor, meta: ModelMeta) -> torch.Tensor:
    """A normalized float batch back to the uint8 pixels a ``--with-preprocess`` graph takes
    (rounded to the nearest of the 256 levels, as an image file would hold them)."""
    if meta.mean is not None and meta.std is not None:
        shape = (1, meta.in_channels, 1, 1)
        x = x * torch.tensor(meta.std).view(shape) + torch.tensor(meta.mean).view(shape)
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8)


def input_spec(meta: ModelMeta, preprocess: bool, dynamic: bool) -> dict[str, Any]:
    """The exported graph's input, as recorded in its metadata and the model card."""
    return {
        "name": INPUT_NAME,
        "dtype": "uint8" if preprocess else "float32",
        "shape": ["batch" if dynamic else 1, *meta.input_shape],
        "normalized_in_graph": preprocess,
    }
