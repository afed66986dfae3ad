"""Network in Network (Lin et al., 2013): 1x1 convs as per-pixel fully connected layers."""

from __future__ import annotations

from torch import nn

from ._base import ZooModel
from ._registry import register_model


def nin_block(
    in_channels: int, out_channels: int, kernel_size: int, strides: int, padding: int
) -> nn.Sequential:
    """One conv followed by two 1x1 convs, each with ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(),
    )


class NiN(ZooModel):
    """The classifier is the last NiN block (one output channel per class) + global pooling."""

    classifier_path = "head.classifier"

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        self.features = nn.Sequential()
        self.features.add_module(
            "b1", nn.Sequential(nin_block(in_channels, 96, 11, 4, 0), nn.MaxPool2d(3, stride=2))
        )
        self.features.add_module(
            "b2", nn.Sequential(nin_block(96, 256, 5, 1, 2), nn.MaxPool2d(3, stride=2))
        )
        self.features.add_module(
            "b3", nn.Sequential(nin_block(256, 384, 3, 1, 1), nn.MaxPool2d(3, stride=2))
        )
        self.head = nn.Sequential()
        self.head.add_module("drop", nn.Dropout(dropout))
        self.head.add_module("classifier", nin_block(384, num_classes, 3, 1, 1))
        self.head.add_module("pool", nn.AdaptiveAvgPool2d((1, 1)))
        self.head.add_module("flatten", nn.Flatten())

    def make_classifier(self, num_classes: int) -> nn.Module:
        return nin_block(384, num_classes, 3, 1, 1)


@register_model("nin", image_size=224, family="nin", min_size=67)
def nin(*, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> NiN:
    """NiN as in the book: three NiN blocks with max-pooling, dropout, a NiN block with one
    channel per class and global average pooling (no fully connected layer).

    Paper: https://arxiv.org/abs/1312.4400
    """
    return NiN(num_classes=num_classes, in_channels=in_channels, dropout=dropout)
