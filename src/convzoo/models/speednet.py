"""SpeedNet: our small network for time-to-accuracy runs on 28-32 px images.

Not in the book, but made only of the chapter's ideas: VGG-style 3x3 conv stages that halve H
and W while doubling channels, batch norm, and NiN/GoogLeNet-style global pooling instead of big
fully connected layers. Each stage pools right after its conv and before batch norm (as in
airbench), so normalization and activation run on the 4x smaller map: on the 2-core CPU this
trains an epoch of Fashion-MNIST in about 11 s (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from torch import nn

from ._base import ZooModel
from ._registry import register_model


def conv_stage(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    """3x3 conv (no bias: batch norm follows), optional 2x2 max-pool, batch norm, ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
    ]
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SpeedNet(ZooModel):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        w = width
        self.features = nn.Sequential()
        self.features.add_module("b1", conv_stage(in_channels, w, pool=True))  # 28 -> 14
        self.features.add_module("b2", conv_stage(w, 2 * w, pool=True))  # 14 -> 7
        self.features.add_module("b3", conv_stage(2 * w, 4 * w, pool=True))  # 7 -> 3
        self.features.add_module("b4", conv_stage(4 * w, 4 * w, pool=False))  # 3 -> 3
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveMaxPool2d((1, 1)))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc", nn.Linear(4 * w, num_classes))


@register_model("speednet", image_size=28, family="speednet", min_size=8)
def speednet(*, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> SpeedNet:
    """Small VGG-style network for fast training on 28-32 px images (ours, not the book's).

    ``width``: channels of the first stage (then x2, x4, x4).
    """
    return SpeedNet(num_classes=num_classes, in_channels=in_channels, width=width)
