"""DenseNet (Huang et al., 2017), the book's DenseNet-BC-like network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._base import ZooModel
from ._registry import register_model


def conv_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """Pre-activation unit: batch norm, ReLU, 3x3 conv."""
    return nn.Sequential(
        nn.BatchNorm2d(input_channels),
        nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    """``num_convs`` conv blocks; each one's output is concatenated to its input, so the
    block adds ``num_convs * num_channels`` channels (``num_channels`` is the growth rate)."""

    def __init__(self, num_convs: int, input_channels: int, num_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *(conv_block(num_channels * i + input_channels, num_channels) for i in range(num_convs))
        )
        self.out_channels = input_channels + num_convs * num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            x = torch.cat((x, blk(x)), dim=1)
        return x


def transition_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """Batch norm, ReLU, 1x1 conv to ``num_channels``, 2x2 average pooling (halves H and W)."""
    return nn.Sequential(
        nn.BatchNorm2d(input_channels),
        nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )


class DenseNet(ZooModel):
    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        num_channels: int = 64,
        growth_rate: int = 32,
        num_convs_in_dense_blocks: Sequence[int] = (4, 4, 4, 4),
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        self.features = nn.Sequential()
        self.features.add_module(
            "b1",
            nn.Sequential(
                nn.Conv2d(in_channels, num_channels, kernel_size=7, stride=2, padding=3),
                nn.BatchNorm2d(num_channels),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ),
        )
        c = num_channels
        last = len(num_convs_in_dense_blocks) - 1
        for i, num_convs in enumerate(num_convs_in_dense_blocks):
            stage = nn.Sequential(DenseBlock(num_convs, c, growth_rate))
            c += num_convs * growth_rate
            if i != last:  # transition layers halve the channels as well as H and W
                stage.append(transition_block(c, c // 2))
                c //= 2
            self.features.add_module(f"b{i + 2}", stage)
        self.head = nn.Sequential()
        self.head.add_module("norm", nn.BatchNorm2d(c))
        self.head.add_module("act", nn.ReLU())
        self.head.add_module("pool", nn.AdaptiveAvgPool2d((1, 1)))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc", nn.Linear(c, num_classes))


def _densenet_min_size(num_convs_in_dense_blocks: Sequence[int] = (4, 4, 4, 4), **_: object) -> int:
    # each transition halves the side, the stem quarters it: 4 * 2**transitions - 3 pixels
    return 4 * 2 ** (len(num_convs_in_dense_blocks) - 1) - 3


@register_model("densenet", image_size=96, family="densenet", min_size=_densenet_min_size)
def densenet(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    growth_rate: int = 32,
    num_convs_in_dense_blocks: Sequence[int] = (4, 4, 4, 4),
) -> DenseNet:
    """The book's DenseNet: 64-channel stem, four dense blocks of four conv blocks with growth
    rate 32, transition layers between them, batch norm + ReLU + global pooling before the head.

    Paper: https://arxiv.org/abs/1608.06993
    """
    return DenseNet(
        num_classes=num_classes,
        in_channels=in_channels,
        growth_rate=growth_rate,
        num_convs_in_dense_blocks=num_convs_in_dense_blocks,
    )
