"""LeNet (LeCun et al., 1998) as the book writes it, the book's LeNet with batch norm, and the
same network in one dimension for sequences."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._base import ZooModel
from ._registry import DEFAULT_LENGTH, register_model
from .layers import ADAPTIVE_AVG_POOL, CONV, make_activation, make_norm, make_pool


class LeNet(ZooModel):
    """Two conv/pool stages and three fully connected layers.

    ``norm`` puts a normalization layer after each conv and hidden linear layer, as in the
    book's batch-norm section (``"scratch"``: our :class:`BatchNorm`; ``"torch"``: nn.BatchNorm).
    ``dim=1`` builds the same layers for sequences (N x C x L): 5-tap convs, pools of 2, and
    the classifier's 400 inputs as 16 channels x 25 steps instead of 16 x 5 x 5.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        activation: str = "sigmoid",
        pool: str = "avg",
        norm: str | None = None,
        padding: int = 2,
        widths: tuple[int, int] = (6, 16),
        hidden: tuple[int, int] = (120, 84),
        dim: int = 2,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, spatial_dims=dim)
        c1, c2 = widths
        h1, h2 = hidden
        # The book's spatial size before flatten: 5x5 with padding 2 (28 -> 28 -> 14 -> 10 -> 5),
        # 4x4 without (28 -> 24 -> 12 -> 8 -> 4).
        side = 5 if padding == 2 else 4
        pooled = (side, side) if dim == 2 else (side * side,)  # same number of features
        conv, rank = CONV[dim], dim + 2
        self.features = nn.Sequential()
        self.features.add_module(
            "b1",
            _seq(
                conv(in_channels, c1, kernel_size=5, padding=padding),
                make_norm(norm, c1, rank),
                make_activation(activation),
                make_pool(pool, dim=dim),
            ),
        )
        self.features.add_module(
            "b2",
            _seq(
                conv(c1, c2, kernel_size=5),
                make_norm(norm, c2, rank),
                make_activation(activation),
                make_pool(pool, dim=dim),
            ),
        )
        head = {
            "pool": ADAPTIVE_AVG_POOL[dim](pooled),  # identity at 28x28 (and 108-111 steps)
            "flatten": nn.Flatten(),
            "fc1": nn.Linear(c2 * side * side, h1),
            "norm1": make_norm(norm, h1, 2),
            "act1": make_activation(activation),
            "fc2": nn.Linear(h1, h2),
            "norm2": make_norm(norm, h2, 2),
            "act2": make_activation(activation),
            "fc": nn.Linear(h2, num_classes),
        }
        self.head = nn.Sequential(OrderedDict((k, m) for k, m in head.items() if m is not None))


def _seq(*layers: nn.Module | None) -> nn.Sequential:
    return nn.Sequential(*(m for m in layers if m is not None))


@register_model("lenet", image_size=28, family="lenet", min_size=12)
def lenet(
    *, num_classes: int = 10, in_channels: int = 1, activation: str = "sigmoid", pool: str = "avg"
) -> LeNet:
    """LeNet-5 as in the book: sigmoid, average pooling, 5x5 convs (first padded by 2).

    Variant: ``activation="relu", pool="max"`` is the modern LeNet of the multi-GPU chapter.
    """
    return LeNet(num_classes=num_classes, in_channels=in_channels, activation=activation, pool=pool)


@register_model("lenet_bn", image_size=28, family="lenet", min_size=16)
def lenet_bn(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    norm: str = "scratch",
    activation: str = "sigmoid",
    pool: str = "avg",
) -> LeNet:
    """LeNet with batch norm after every conv and hidden linear layer (book's BN section).

    As in the book the first conv is unpadded (16 x 4 x 4 features before the classifier) and
    the normalization is the from-scratch :class:`~convzoo.models.batchnorm.BatchNorm`;
    ``norm="torch"`` uses ``nn.BatchNorm1d/2d`` instead (the book's concise version).
    """
    return LeNet(
        num_classes=num_classes,
        in_channels=in_channels,
        activation=activation,
        pool=pool,
        norm=norm,
        padding=0,
    )


@register_model("lenet1d", length=DEFAULT_LENGTH, family="lenet", min_size=12)
def lenet1d(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    activation: str = "relu",
    pool: str = "max",
    norm: str | None = None,
) -> LeNet:
    """LeNet-5 in one dimension: the book's layers with 5-tap convs over time steps.

    The chapter's Q&A: time series take one-dimensional convolutions. Two conv/pool stages (6
    and 16 channels), then adaptive average pooling to 25 steps so that the classifier is the
    book's 400-120-84-classes for any length (the pooling is the identity at 108-111 steps;
    sequences need at least 12). ReLU and max-pooling by default, the modern LeNet of the
    book's multi-GPU chapter: with the book's sigmoid and average pooling
    (``activation="sigmoid", pool="avg"``) it stayed at chance on GunPoint (0.49 test
    accuracy after 100 epochs of Adam at 1e-3, and after 200 of SGD at the book's 0.9), where
    this one reached 0.94-0.97 in 100 epochs of Adam. ``norm="scratch"`` or ``"torch"`` adds
    batch norm as ``lenet_bn`` does.
    """
    return LeNet(
        num_classes=num_classes,
        in_channels=in_channels,
        activation=activation,
        pool=pool,
        norm=norm,
        dim=1,
    )
