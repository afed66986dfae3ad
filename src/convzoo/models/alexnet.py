"""AlexNet (Krizhevsky et al., 2012), the book's single-column version for 1-channel 224 px."""

from __future__ import annotations

from torch import nn

from ._base import ZooModel
from ._registry import register_model
from .layers import AdaptiveAvgPool2d


class AlexNet(ZooModel):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        self.features = nn.Sequential()
        # 11x11 window, stride 4: N x 96 x 54 x 54 at 224 px, then 26 x 26 after pooling
        self.features.add_module(
            "b1",
            nn.Sequential(
                nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
            ),
        )
        # N x 256 x 12 x 12
        self.features.add_module(
            "b2",
            nn.Sequential(
                nn.Conv2d(96, 256, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
            ),
        )
        # three 3x3 convs, then N x 256 x 5 x 5
        self.features.add_module(
            "b3",
            nn.Sequential(
                nn.Conv2d(256, 384, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(384, 384, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(384, 256, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
            ),
        )
        self.head = nn.Sequential()
        self.head.add_module("pool", AdaptiveAvgPool2d((5, 5)))  # identity at 224 px
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc1", nn.Linear(256 * 5 * 5, 4096))
        self.head.add_module("act1", nn.ReLU())
        self.head.add_module("drop1", nn.Dropout(dropout))
        self.head.add_module("fc2", nn.Linear(4096, 4096))
        self.head.add_module("act2", nn.ReLU())
        self.head.add_module("drop2", nn.Dropout(dropout))
        self.head.add_module("fc", nn.Linear(4096, num_classes))


@register_model("alexnet", image_size=224, family="alexnet", min_size=65)
def alexnet(*, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> AlexNet:
    """AlexNet as in the book: five convs, three max-pools, two 4096-wide dropout layers.

    Paper: https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks
    """
    return AlexNet(num_classes=num_classes, in_channels=in_channels, dropout=dropout)
