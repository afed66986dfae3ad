"""One image file: its header read, its pixels decoded at a set's channels and size, and the
files that are not images (or are decompression bombs) refused in one line naming them."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError

log = logging.getLogger("convzoo.data")

#: PIL modes counted as grayscale when voting on the channel count
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
#: errors PIL raises on files that are not images, are truncated or are corrupt
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class BadImage(DataError):
    """One image file that cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"{path}: cannot read the image ({reason}); remove or replace it, or leave "
            "unreadable images out with skip_bad_images=True (--skip-bad-images)"
        )
        self.path, self.reason = path, reason


def _reason(e: BaseException) -> str:
    text = str(e)
    if isinstance(e, RuntimeError):  # torchvision's: "decode_jpeg, FILE.cpp:LINE, why"
        text = text.split(", ", 2)[-1]
    return " ".join(text.split()) or type(e).__name__


def too_many_pixels(img: Image.Image) -> str | None:
    """Why an opened image is refused as a decompression bomb (more pixels than PIL's
    ``MAX_IMAGE_PIXELS``, 89.5 M: a few kB of PNG can claim gigabytes), or ``None``. PIL only
    warns up to twice its limit; we refuse from the limit on, before decoding."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        return (
            f"{img.width}x{img.height} is {img.width * img.height:,} pixels, over PIL's "
            f"decompression-bomb limit of {limit:,}"
        )
    return None


def probe(path: str) -> tuple[str, tuple[int, int]]:
    """The PIL mode and (H, W) of an image file, from its header only."""
    try:
        with Image.open(path) as img:
            if bomb := too_many_pixels(img):
                raise BadImage(path, bomb)
            return img.mode, (img.height, img.width)
    except _IMAGE_ERRORS as e:
        raise BadImage(path, _reason(e)) from None


def decode(path: str, channels: int) -> torch.Tensor:
    """The image at ``path`` as uint8 ``channels`` x H x W (raises :class:`BadImage`).

    JPEGs (L or RGB) are decoded by torchvision's libjpeg-turbo decoder where it has one,
    0.33 ms for a 224 px file against PIL's 0.54 ms, with the same pixels (torchvision 0.29
    deprecates it for TorchCodec; without it PIL decodes); other files by PIL."""
    try:
        with Image.open(path) as img:
            if bomb := too_many_pixels(img):
                raise BadImage(path, bomb)
            if img.format == "JPEG" and img.mode in ("L", "RGB") and (tv := _jpeg_decoder()):
                decode_jpeg, read_file, gray, rgb = tv
                return decode_jpeg(read_file(path), mode=gray if channels == 1 else rgb)
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")  # PIL's advice for palette images with transparency
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except (*_IMAGE_ERRORS, RuntimeError) as e:
        raise BadImage(path, _reason(e)) from None
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


@functools.cache
def _jpeg_decoder() -> tuple | None:
    try:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
    except ImportError:
        return None
    return decode_jpeg, read_file, ImageReadMode.GRAY, ImageReadMode.RGB


def fit_size(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(img, list(size), antialias=True)


def load_image(path: str, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """One file as a set holds it: uint8 ``channels`` x H x W at ``size``."""
    return fit_size(decode(path, channels), size)


def log_skipped(bad: dict[str, str], where: Path | str) -> None:
    if bad:
        listing = "; ".join(f"{p} ({r})" for p, r in bad.items())
        log.warning("skipped %d unreadable image(s) in %s: %s", len(bad), where, listing)
