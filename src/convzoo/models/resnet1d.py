"""ResNet for time series (Wang et al., 2017): the book's residual block in one dimension.

Paper: Z. Wang, W. Yan, T. Oates, "Time series classification from scratch with deep neural
networks: a strong baseline", IJCNN 2017, https://arxiv.org/abs/1611.06455; the best network of
the review by Ismail Fawaz et al., "Deep learning for time series classification: a review",
Data Mining and Knowledge Discovery 2019, whose Keras code (hfawaz/dl-4-tsc
``classifiers/resnet.py``) this follows layer for layer: three residual blocks of 64, 128 and
128 filters, global average pooling, one linear layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ZooModel
from ._registry import DEFAULT_LENGTH, register_model
from .fcn import conv_block, gap_head


class Residual1d(nn.Module):
    """The book's :class:`~convzoo.models.resnet.Residual` as Wang et al. use it on sequences.

    Same idea: a stack of conv + batch norm whose result is added to the (possibly projected)
    input before the last ReLU. Differences, all from the reference code: three convs of 8, 5
    and 3 steps (an FCN's three blocks, see :mod:`convzoo.models.fcn`) instead of two 3x3, no
    striding (the length never changes), and batch norm on the shortcut too: a 1x1 conv + batch
    norm where the channels change, batch norm alone where they do not. A separate class rather
    than a ``dim`` option of the 2-D block because those differences are the whole block, and
    the 2-D block's parameter names are pinned by saved weights.
    ``fold`` > 1 folds the input first (:func:`fold_steps`), for the first block.
    """

    def __init__(
        self,
        input_channels: int,
        num_channels: int,
        kernel_sizes: Sequence[int] = (8, 5, 3),
        fold: int = 1,
    ) -> None:
        super().__init__()
        if not kernel_sizes:
            raise ValueError("a residual block needs at least one kernel size")
        self.fold = fold
        input_channels *= fold
        *first, last = kernel_sizes
        c, body = input_channels, []
        for k in first:
            body.append(conv_block(c, num_channels, k))
            c = num_channels
        body.append(conv_block(c, num_channels, last, relu=False))
        self.body = nn.Sequential(*body)
        self.shortcut = (
            conv_block(input_channels, num_channels, 1, relu=False)
            if input_channels != num_channels
            else nn.BatchNorm1d(num_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold > 1:
            x = fold_steps(x, self.fold)
        return F.relu(self.body(x) + self.shortcut(x))


def fold_steps(x: torch.Tensor, fold: int) -> torch.Tensor:
    """N x C x L -> N x (C * fold) x ceil(L / fold): each run of ``fold`` steps becomes
    ``fold`` channels (channel ``c * fold + j`` holds step ``j`` of every run of channel ``c``),
    the last run padded with zeros. Lossless, unlike resampling: ACSF1's series repeat every 4
    steps, and averaging 4 steps into one leaves their mean level alone."""
    x = F.pad(x, (0, -x.shape[-1] % fold))
    return x.unflatten(2, (-1, fold)).transpose(2, 3).flatten(1, 2)


class ResNet1d(ZooModel):
    """Stages b1-b3, one :class:`Residual1d` each, of ``widths`` channels."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: Sequence[int] = (64, 128, 128),
        kernel_sizes: Sequence[int] = (8, 5, 3),
        fold: int = 1,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, spatial_dims=1)
        if not widths:
            raise ValueError("widths needs at least one stage")
        self.features = nn.Sequential()
        c = in_channels
        for i, w in enumerate(widths):
            block = Residual1d(c, w, kernel_sizes, fold if i == 0 else 1)
            self.features.add_module(f"b{i + 1}", block)
            c = w
        self.head = gap_head(c, num_classes)


@register_model("resnet1d", length=DEFAULT_LENGTH, family="resnet")
def resnet1d(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    width: int = 64,
    kernel_sizes: Sequence[int] = (8, 5, 3),
    fold: int = 1,
) -> ResNet1d:
    """ResNet for time series (Wang, Yan and Oates 2017): three residual blocks, 64-128-128
    filters.

    Each block: convs of 8, 5 and 3 steps with batch norm, a batch-normed shortcut (504k
    parameters for one input channel and two classes). ``width`` is the first block's filters
    (the later two have twice as many). ``fold`` > 1 turns each run of that many steps into
    channels before the first convolution (:func:`fold_steps`): the network then computes over
    ``L / fold`` steps, about ``fold`` times less work (``--max-length`` sets it from the
    data). Paper: https://arxiv.org/abs/1611.06455; reference code: hfawaz/dl-4-tsc
    ``classifiers/resnet.py``.
    """
    if width < 1 or fold < 1:
        raise ValueError(f"width and fold must be >= 1, got width {width}, fold {fold}")
    return ResNet1d(
        num_classes=num_classes,
        in_channels=in_channels,
        widths=(width, 2 * width, 2 * width),
        kernel_sizes=tuple(kernel_sizes),
        fold=fold,
    )
