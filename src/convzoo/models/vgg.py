"""VGG (Simonyan & Zisserman, 2014): networks of repeated blocks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ._base import ZooModel
from ._registry import register_model
from .layers import AdaptiveAvgPool2d

#: the book's VGG-11: (number of convs, output channels) per block
VGG11_ARCH: tuple[tuple[int, int], ...] = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` 3x3 same-padding convs with ReLU, then a 2x2 max-pool halving H and W."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(ZooModel):
    def __init__(
        self,
        *,
        conv_arch: Sequence[Sequence[int]] = VGG11_ARCH,
        num_classes: int = 10,
        in_channels: int = 1,
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        if not conv_arch:
            raise ValueError("conv_arch needs at least one (num_convs, channels) block")
        self.features = nn.Sequential()
        c = in_channels
        for i, (num_convs, out_channels) in enumerate(conv_arch, start=1):
            self.features.add_module(f"b{i}", vgg_block(num_convs, c, out_channels))
            c = out_channels
        self.head = nn.Sequential()
        self.head.add_module("pool", AdaptiveAvgPool2d((7, 7)))  # identity at 224 px
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc1", nn.Linear(c * 7 * 7, hidden))
        self.head.add_module("act1", nn.ReLU())
        self.head.add_module("drop1", nn.Dropout(dropout))
        self.head.add_module("fc2", nn.Linear(hidden, hidden))
        self.head.add_module("act2", nn.ReLU())
        self.head.add_module("drop2", nn.Dropout(dropout))
        self.head.add_module("fc", nn.Linear(hidden, num_classes))


# every block halves the side
@register_model(
    "vgg11",
    image_size=224,
    family="vgg",
    min_size=lambda conv_arch=VGG11_ARCH, **_: 2 ** len(conv_arch),
)
def vgg11(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    conv_arch: Sequence[Sequence[int]] = VGG11_ARCH,
    width_ratio: int = 1,
    hidden: int = 4096,
    dropout: float = 0.5,
) -> VGG:
    """VGG-11 as in the book; ``width_ratio=4`` divides every block's channels by 4, the
    book's small VGG that it trains on Fashion-MNIST. ``conv_arch`` gives other depths,
    ``hidden`` the width of the two fully connected layers.

    Paper: https://arxiv.org/abs/1409.1556
    """
    if width_ratio < 1:
        raise ValueError(f"width_ratio must be >= 1, got {width_ratio}")
    arch = tuple((int(n), int(c) // width_ratio) for n, c in conv_arch)
    return VGG(
        conv_arch=arch,
        num_classes=num_classes,
        in_channels=in_channels,
        hidden=hidden,
        dropout=dropout,
    )
