"""ResNet (He et al., 2015) with the book's residual block."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ZooModel
from ._registry import register_model


class Residual(nn.Module):
    """Two 3x3 convs with batch norm; the input is added back before the last ReLU.

    ``use_1x1conv`` passes the input through a 1x1 conv (with ``strides``) so that its shape
    matches when the block changes channels or halves H and W.
    """

    def __init__(
        self,
        input_channels: int,
        num_channels: int,
        use_1x1conv: bool = False,
        strides: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            input_channels, num_channels, kernel_size=3, padding=1, stride=strides
        )
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = (
            nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
            if use_1x1conv
            else None
        )
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


def resnet_block(
    input_channels: int,
    num_channels: int,
    num_residuals: int,
    first_block: bool = False,
) -> list[nn.Module]:
    """``num_residuals`` blocks; all but the first stage start by halving H and W."""
    blk: list[nn.Module] = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


class ResNet(ZooModel):
    """Stem b1, four stages b2-b5 of residual blocks, global average pooling, one linear layer.

    ``stem="imagenet"`` is the book's 7x7 stride-2 conv + 3x3 stride-2 max-pool;
    ``stem="small"`` is the 3x3 stride-1 conv without pooling of ``d2l.resnet18`` (multi-GPU
    chapter), for 28-32 px images. ``width`` is the channel count of the first stage (doubled at
    every later stage).
    """

    def __init__(
        self,
        *,
        layers: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 10,
        in_channels: int = 1,
        stem: str = "imagenet",
        width: int = 64,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        if stem == "imagenet":
            b1 = nn.Sequential(
                nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        elif stem == "small":
            b1 = nn.Sequential(
                nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )
        else:
            raise ValueError(f"unknown stem {stem!r}; use 'imagenet' or 'small'")
        self.features = nn.Sequential()
        self.features.add_module("b1", b1)
        c = width
        for i, n in enumerate(layers):
            out = width * 2**i
            blocks = resnet_block(c, out, n, first_block=(i == 0))
            self.features.add_module(f"b{i + 2}", nn.Sequential(*blocks))
            c = out
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveAvgPool2d((1, 1)))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc", nn.Linear(c, num_classes))


@register_model("resnet18", image_size=96, family="resnet")
def resnet18(
    *, num_classes: int = 10, in_channels: int = 1, stem: str = "imagenet", width: int = 64
) -> ResNet:
    """ResNet-18 as in the book: four stages of two residual blocks each.

    Paper: https://arxiv.org/abs/1512.03385
    """
    return ResNet(
        layers=(2, 2, 2, 2),
        num_classes=num_classes,
        in_channels=in_channels,
        stem=stem,
        width=width,
    )


@register_model("resnet34", image_size=96, family="resnet")
def resnet34(
    *, num_classes: int = 10, in_channels: int = 1, stem: str = "imagenet", width: int = 64
) -> ResNet:
    """ResNet-34 with the book's residual block: stages of 3, 4, 6 and 3 blocks.

    Paper: https://arxiv.org/abs/1512.03385
    """
    return ResNet(
        layers=(3, 4, 6, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        stem=stem,
        width=width,
    )
