"""The fully convolutional network (FCN) of Wang et al. (2017) for time series classification.

Paper: Z. Wang, W. Yan, T. Oates, "Time series classification from scratch with deep neural
networks: a strong baseline", IJCNN 2017, https://arxiv.org/abs/1611.06455. Checked against
the Keras code of the review that re-ran it on the whole UCR archive (Ismail Fawaz et al.,
"Deep learning for time series classification: a review", 2019), hfawaz/dl-4-tsc
``classifiers/fcn.py``: three blocks of conv (128, 256, 128 filters; kernels 8, 5, 3; "same"
padding, with bias) + batch norm + ReLU, global average pooling, one linear layer. No pooling
or striding: every block keeps the sequence length, so any length >= 1 works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ZooModel
from ._registry import DEFAULT_LENGTH, register_model
from .layers import AdaptiveAvgPool1d


class SameConv1d(nn.Conv1d):
    """Conv1d that keeps the length (Keras' ``padding="same"``) for any kernel size: ``k - 1``
    zeros split ``(k - 1) // 2`` on the left, the rest on the right (8 taps: 3 and 4).

    PyTorch's ``padding="same"`` pads the same way but warns about it for every even kernel;
    this pads odd kernels inside the convolution and even ones with one explicit ``F.pad``
    (the copy PyTorch's warning is about)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        left = (kernel_size - 1) // 2
        right = kernel_size - 1 - left
        super().__init__(
            in_channels, out_channels, kernel_size, padding=0 if right - left else left
        )
        self.extra = (left, right) if right - left else (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra != (0, 0):
            x = F.pad(x, self.extra)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, same"


def conv_block(
    in_channels: int, out_channels: int, kernel_size: int, *, relu: bool = True
) -> nn.Sequential:
    """:class:`SameConv1d` (with bias, as the reference) + batch norm (+ ReLU): the unit of the
    FCN and of ``resnet1d``."""
    layers: list[nn.Module] = [
        SameConv1d(in_channels, out_channels, kernel_size),
        nn.BatchNorm1d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def gap_head(in_features: int, num_classes: int) -> nn.Sequential:
    """Global average pooling over time, then one linear layer (both 1-D networks' head)."""
    head = nn.Sequential()
    head.add_module("pool", AdaptiveAvgPool1d(1))  # N x C x L -> N x C x 1
    head.add_module("flatten", nn.Flatten())
    head.add_module("fc", nn.Linear(in_features, num_classes))
    return head


class FCN(ZooModel):
    """Stages b1-b3, one :func:`conv_block` each; ``widths`` and ``kernel_sizes`` per stage."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: Sequence[int] = (128, 256, 128),
        kernel_sizes: Sequence[int] = (8, 5, 3),
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, spatial_dims=1)
        if len(widths) != len(kernel_sizes) or not widths:
            raise ValueError(
                f"widths {tuple(widths)} and kernel_sizes {tuple(kernel_sizes)} need one entry "
                "per stage"
            )
        self.features = nn.Sequential()
        c = in_channels
        for i, (w, k) in enumerate(zip(widths, kernel_sizes)):
            self.features.add_module(f"b{i + 1}", conv_block(c, w, k))
            c = w
        self.head = gap_head(c, num_classes)


@register_model("fcn1d", length=DEFAULT_LENGTH, family="fcn")
def fcn1d(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    widths: Sequence[int] = (128, 256, 128),
    kernel_sizes: Sequence[int] = (8, 5, 3),
) -> FCN:
    """FCN for time series (Wang, Yan and Oates 2017): three conv + batch norm + ReLU blocks,
    global average pooling.

    128, 256 and 128 filters of 8, 5 and 3 steps (265k parameters for one input channel and two
    classes). Paper: https://arxiv.org/abs/1611.06455; reference code: hfawaz/dl-4-tsc
    ``classifiers/fcn.py``.
    """
    return FCN(
        num_classes=num_classes,
        in_channels=in_channels,
        widths=tuple(widths),
        kernel_sizes=tuple(kernel_sizes),
    )
