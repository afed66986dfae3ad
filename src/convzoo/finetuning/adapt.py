"""Adapting a trained network to new data: other input channels, the same normalization.

A network trained on RGB photographs can fine-tune on gray images (and the reverse): its first
convolution is rewritten so that it computes what it computed before on the equivalent input,
and its input normalization is carried over to the new channel count.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import FinetuneError
from ..models.tv import first_conv


def adapt_input_channels(model: nn.Module, channels: int) -> str | None:
    """Make the input convolution take ``channels`` channels; say how (None: nothing to do).

    RGB -> gray sums the stem's weights over the colour channels. Convolution is linear, so
    for a gray image ``g`` the adapted stem computes ``sum_c W_c * g``, which is exactly what
    the RGB stem computes on the image with ``g`` copied into all three channels (zero padding
    included): the adapted network's output on ``g`` equals the original network's output on
    the replicated image, i.e. it sees a gray image as it would a gray photograph. Averaging
    instead would divide every activation of the stem by 3 and throw off the batch norm after
    it. Gray -> ``channels``: the weights are copied into every channel and divided by the
    count, which keeps the output on gray-looking images.
    """
    old = model.in_channels
    if channels == old:
        return None
    path, conv = first_conv(model)
    if conv.in_channels != old or conv.groups != 1:
        raise FinetuneError(
            f"cannot adapt {getattr(model, 'model_name', '')} to {channels}-channel images"
        )
    w = conv.weight.detach()
    if channels == 1:
        new, how = w.sum(dim=1, keepdim=True), f"{old}-channel stem {path} summed to 1 channel"
    elif old == 1:
        new = w.repeat(1, channels, 1, 1) / channels
        how = f"1-channel stem {path} copied to {channels} channels / {channels}"
    else:
        raise FinetuneError(
            f"the source takes {old}-channel images and the data has {channels} channels; "
            f"only RGB -> gray and gray -> any are adapted"
        )
    conv.weight = nn.Parameter(new.clone(), requires_grad=conv.weight.requires_grad)
    conv.in_channels = channels
    model.in_channels = channels
    if hasattr(model, "model_kwargs"):
        model.model_kwargs["in_channels"] = channels
    return how


def adapt_normalization(
    mean: Sequence[float] | None, std: Sequence[float] | None, channels: int
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The source's normalization for ``channels``-channel inputs.

    Gray after an RGB stem (see :func:`adapt_input_channels`): the network sees the gray
    channel normalized once and copied into R, G and B, so one mean and std must stand for
    three. We take the averages (ImageNet: mean 0.449, std 0.226): a gray value is about the
    average of its R, G and B values, and then each colour channel receives inputs within
    0.16 of its own standardization ((0.485 - 0.449) / 0.229 for red, the largest gap).
    Gray -> several channels: the gray statistics for each channel.
    """
    if mean is None or std is None or len(mean) == channels:
        return (tuple(mean), tuple(std)) if mean is not None and std is not None else (None, None)
    if channels == 1:
        return (sum(mean) / len(mean),), (sum(std) / len(std),)
    if len(mean) == 1:
        return tuple(mean) * channels, tuple(std) * channels
    raise FinetuneError(f"cannot adapt {len(mean)}-channel normalization to {channels} channels")
