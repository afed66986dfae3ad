"""Images from anywhere as a network's input: files, PIL images, numpy arrays, tensors.

:func:`image_batch` turns what a user has at hand into the float batch a network was trained
on: the network's channel count, its square input size, pixels in [0, 1]. The layout rule
is each library's own, never guessed from the sizes: numpy arrays are channels-last (H x W x C,
as PIL, matplotlib and OpenCV give them), tensors channels-first (C x H x W, as torchvision
gives them); a 2-d array or tensor is one gray image, a 4-d one a batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch
import torch.nn.functional as F

from ..errors import DataError, InputSizeError

if TYPE_CHECKING:
    import numpy
    import PIL.Image

#: one image (a file path, a PIL image, an array or a tensor) or a batch (4-d array or tensor)
ImageInput = Union[str, os.PathLike, "PIL.Image.Image", "numpy.ndarray", torch.Tensor]
#: ITU-R 601 luma weights, the ones PIL's ``convert("L")`` uses
_LUMA = (0.299, 0.587, 0.114)


def read_image(path: str | os.PathLike, channels: int) -> torch.Tensor:
    """An image file of any size and mode as uint8 C x H x W with ``channels`` channels."""
    from PIL import Image, UnidentifiedImageError

    from .image_file import too_many_pixels

    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p} is a folder, not an image file; give the image files in it")
    if not p.is_file():
        raise DataError(f"image {p} does not exist")
    if channels not in (1, 3):
        raise InputSizeError(f"predicting needs a 1- or 3-channel model, this one has {channels}")
    try:
        with Image.open(p) as im:
            if bomb := too_many_pixels(im):  # before decoding: a bomb's pixels never load
                raise DataError(f"refused image {p}: {bomb}")
            return pil_to_tensor(im, channels)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as e:
        raise DataError(f"cannot read image {p}: {' '.join(str(e).split())}") from None


def pil_to_tensor(image: Any, channels: int) -> torch.Tensor:
    """A PIL image of any mode (RGBA, palette, 16-bit gray, ...) as uint8 C x H x W, converted
    by PIL itself to gray (``channels=1``) or RGB."""
    im = image.convert("L" if channels == 1 else "RGB")
    t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return t.view(im.height, im.width, -1).permute(2, 0, 1).contiguous()


def image_batch(
    images: ImageInput | Sequence[ImageInput],
    channels: int,
    size: int,
    colours: list[bool] | None = None,
) -> torch.Tensor:
    """``images`` as float32 N x ``channels`` x ``size`` x ``size``, pixels in [0, 1].

    ``images``: a path, PIL image, array or tensor, a 4-d batch, or a list of single images
    (of any sizes). uint8 pixels are scaled by 1/255; float pixels must already be in [0, 1].
    Colour becomes gray with PIL's luma weights, gray becomes colour by repetition, an alpha
    channel is dropped. Images are resized as during training (bilinear; antialiased when
    shrinking). ``colours``, when given, gets whether each image was in colour before.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputSizeError("no images given")
        parts = [_one(item, channels, size, i, colours) for i, item in enumerate(images)]
        return torch.cat(parts)
    return _one(images, channels, size, None, colours)


def _one(
    item: Any, channels: int, size: int, index: int | None, colours: list[bool] | None
) -> torch.Tensor:
    """One input (a single image, or a 4-d batch) -> float N x C x size x size."""
    where = "" if index is None else f" (item {index})"
    decoded = isinstance(item, (str, os.PathLike)) or _is_pil(item)
    if decoded:  # converted by PIL, as the training images were
        decode = read_image if isinstance(item, (str, os.PathLike)) else pil_to_tensor
        x = decode(item, channels)[None]
        if colours is not None and channels == 1:  # once more in RGB: was it in colour?
            colours += is_colour(decode(item, 3)[None] / 255).tolist()
    elif isinstance(item, torch.Tensor):
        x = _tensor_layout(item.detach().cpu(), where)
    elif type(item).__module__ == "numpy":
        x = _array_layout(torch.from_numpy(item.copy()), where)
    else:
        raise InputSizeError(
            f"cannot read {type(item).__name__}{where} as an image: give file paths, PIL "
            f"images, numpy arrays or tensors"
        )
    x = _to_unit_float(x, where)
    if colours is not None and not (decoded and channels == 1):
        colours += is_colour(x[:, :3]).tolist()
    x = _convert_channels(x, channels, where)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x,
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=max(x.shape[-2:]) > size,
        )
    return x


def _is_pil(item: Any) -> bool:
    return type(item).__module__.startswith("PIL.")


def _tensor_layout(x: torch.Tensor, where: str) -> torch.Tensor:
    """Tensors are channels-first: H x W, C x H x W or N x C x H x W -> N x C x H x W."""
    if x.dim() == 2:
        return x[None, None]
    if x.dim() == 3:
        return x[None]
    if x.dim() == 4:
        return x
    raise InputSizeError(
        f"a tensor{where} of shape {tuple(x.shape)} is no image: give H x W, C x H x W or a "
        f"batch N x C x H x W"
    )


def _array_layout(x: torch.Tensor, where: str) -> torch.Tensor:
    """Arrays are channels-last: H x W, H x W x C or N x H x W x C -> N x C x H x W."""
    if x.dim() == 2:
        return x[None, None]
    if x.dim() in (3, 4) and x.shape[-1] not in (1, 3, 4):
        raise InputSizeError(
            f"an array{where} of shape {tuple(x.shape)} is no image: arrays are channels-last "
            f"(H x W x C or N x H x W x C with C = 1, 3 or 4); for a batch of gray images add "
            f"a channel axis (N x H x W x 1)"
        )
    if x.dim() == 3:
        return x.permute(2, 0, 1)[None]
    if x.dim() == 4:
        return x.permute(0, 3, 1, 2)
    raise InputSizeError(f"an array{where} of shape {tuple(x.shape)} is no image")


def _to_unit_float(x: torch.Tensor, where: str) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise InputSizeError(
            f"images{where} of dtype {x.dtype}: give uint8 pixels (0-255) or floats in [0, 1]"
        )
    x = x.float()
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if lo < 0 or hi > 1:
        raise InputSizeError(
            f"float images{where} must have pixels in [0, 1], these range over "
            f"[{lo:.3g}, {hi:.3g}]; give uint8 0-255 or divide by 255 (not normalized pixels: "
            f"the network's normalization is applied for you)"
        )
    return x


def _convert_channels(x: torch.Tensor, channels: int, where: str) -> torch.Tensor:
    c = x.shape[1]
    if c == 4:  # RGBA: the alpha channel is dropped, as PIL's convert("RGB") does
        x, c = x[:, :3], 3
    if c == channels:
        return x
    if c == 3 and channels == 1:
        w = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    if c == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    raise InputSizeError(
        f"{c}-channel images{where} cannot be given to a {channels}-channel network"
    )


#: how far (in mean pixel, [0, 1]) an image may lie outside the training images' 1st-99th
#: percentiles before predict warns: none of Fashion-MNIST's 10,000 test images does (0.1: 3)
BRIGHTNESS_MARGIN = 0.2


def is_colour(x: torch.Tensor) -> torch.Tensor:
    """Whether each image of N x C x H x W (in [0, 1]) has channels that differ (by 2% on
    average): a gray image stored as RGB is not in colour."""
    return (x - x.mean(1, keepdim=True)).abs().mean((1, 2, 3)) > 0.02


def pixel_profile(images: Any, k: int = 256) -> dict[str, Any]:
    """How ``k`` training images (uint8 N x C x H x W, evenly spaced) look: the 1st and 99th
    percentiles of their mean pixel, and the share in colour (Fashion-MNIST: about 10 ms)."""
    x = images[torch.linspace(0, len(images) - 1, min(len(images), k)).long()] / 255
    q = x.mean((1, 2, 3)).quantile(torch.tensor([0.01, 0.99]))
    return {
        "brightness": [round(float(v), 3) for v in q],
        "colour": round(float(is_colour(x).float().mean()), 3),
    }


def unlike_training(
    x: torch.Tensor, colours: Sequence[bool], profile: dict[str, Any], given: Any
) -> str:
    """One line on the images of ``x`` (N x C x H x W in [0, 1], from what was ``given``) far
    from the training images ``profile`` describes (:func:`pixel_profile`): brighter or darker,
    in colour for a network trained on gray images or gray where they were in colour; '' when
    none is. Files are named, other images numbered."""
    listed = isinstance(given, (list, tuple)) and len(given) == len(x)
    names = [
        Path(p).name if isinstance(p, (str, os.PathLike)) else f"image {i}"
        for i, p in enumerate(given if listed else [None] * len(x))
    ]
    lo, hi = profile.get("brightness") or (0.0, 1.0)
    mid, trained_colour = (lo + hi) / 2, profile.get("colour", 0.0) > 0.5
    look = ", light on dark" if mid < 0.5 else ", dark on light"  # named to the other side
    odd = []
    for name, m, colour in zip(names, x.mean((1, 2, 3)).tolist(), colours):
        if not lo - BRIGHTNESS_MARGIN <= m <= hi + BRIGHTNESS_MARGIN:
            side, tone = ("brighter", mid < 0.5) if m > hi else ("darker", mid >= 0.5)
            why = f"{side} (mean pixel {m:.2f}; the training images' {lo:.2f}-{hi:.2f}"
            why += f"{look * tone})"
        elif x.shape[1] == 1 and colour:
            why = "in colour (the training images were gray)"
        elif x.shape[1] == 3 and not colour and trained_colour:
            why = "gray (the training images were in colour)"
        else:
            continue
        odd.append(f"{name} {why}")
    if not odd:
        return ""
    more = f"; {len(odd) - 2} more" if len(odd) > 2 else ""
    return (
        f"{len(odd)} of {len(x)} images unlike the training data: {'; '.join(odd[:2])}{more}; "
        f"the network's classes for such images are unreliable"
    )
