"""GoogLeNet (Szegedy et al., 2014): Inception blocks of four parallel paths."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ZooModel
from ._registry import register_model


class Inception(nn.Module):
    """Four paths concatenated on the channel axis; H and W are unchanged.

    ``c1``..``c4`` are the output channels of each path (``c2``/``c3`` are pairs: the 1x1
    reduction, then the 3x3 / 5x5 conv).
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c2: tuple[int, int],
        c3: tuple[int, int],
        c4: int,
    ) -> None:
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


class GoogLeNet(ZooModel):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        self.features = nn.Sequential()
        # 96 px: N x 64 x 24 x 24
        self.features.add_module(
            "b1",
            nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ),
        )
        # N x 192 x 12 x 12
        self.features.add_module(
            "b2",
            nn.Sequential(
                nn.Conv2d(64, 64, kernel_size=1),
                nn.ReLU(),
                nn.Conv2d(64, 192, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ),
        )
        # N x 480 x 6 x 6
        self.features.add_module(
            "b3",
            nn.Sequential(
                Inception(192, 64, (96, 128), (16, 32), 32),
                Inception(256, 128, (128, 192), (32, 96), 64),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ),
        )
        # N x 832 x 3 x 3
        self.features.add_module(
            "b4",
            nn.Sequential(
                Inception(480, 192, (96, 208), (16, 48), 64),
                Inception(512, 160, (112, 224), (24, 64), 64),
                Inception(512, 128, (128, 256), (24, 64), 64),
                Inception(512, 112, (144, 288), (32, 64), 64),
                Inception(528, 256, (160, 320), (32, 128), 128),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ),
        )
        # N x 1024 x 3 x 3
        self.features.add_module(
            "b5",
            nn.Sequential(
                Inception(832, 256, (160, 320), (32, 128), 128),
                Inception(832, 384, (192, 384), (48, 128), 128),
            ),
        )
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveAvgPool2d((1, 1)))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc", nn.Linear(1024, num_classes))


@register_model("googlenet", image_size=96, family="googlenet")
def googlenet(*, num_classes: int = 10, in_channels: int = 1) -> GoogLeNet:
    """GoogLeNet as in the book: stem b1-b2 (a ReLU after each conv), nine Inception blocks in
    b3-b5, global pooling.

    Paper: https://arxiv.org/abs/1409.4842
    """
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels)
