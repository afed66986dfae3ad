"""The chapter's image augmentations as batched, per-sample operations on the device.

Why our own: torchvision's transforms (v1 and v2) draw ONE set of random parameters per call, so
applied to a batch every image gets the same flip and the same crop (pytorch/vision #2929,
#8484); per-sample randomness with torchvision means one call per image in DataLoader workers,
which on small images costs far more than the training step. Here each image of a batch gets
its own parameters, drawn from the ``torch.Generator`` passed in (so a batch is reproducible
from the loader's seed), and a whole batch takes a handful of kernels: ``torch.where`` with
per-sample masks for flips, one ``gather`` for padded crops, two batched matrix products for
resized crops, broadcasting for color jitter, one masked fill for random erasing. No Python
loop runs over samples.

Every op takes float images in [0, 1], N x C x H x W, and a generator, and returns a batch
(the :data:`~convzoo.data.loader.Augment` type). The parameter distributions are
torchvision's: the same probability for flips, the same offsets for a padded crop, the same
area/aspect-ratio sampling (10 tries, then a central crop) for ``RandomResizedCrop``, the same
factor ranges and per-image random order for ``ColorJitter``.

Spec grammar (one string for the CLI ``--ops``/``--augment`` and the API)::

    SPEC     := "" | "none" | OP ("," OP)*        applied left to right
    hflip[:P]                      horizontal flip with probability P (default 0.5)
    vflip[:P]                      vertical flip with probability P (default 0.5)
    crop[:PAD]                     pad PAD pixels of zeros on each side (default 4), then crop a
                                   random window of the original size (RandomCrop(size, PAD))
    rrc[:SIZE[:SMIN-SMAX[:RMIN-RMAX]]]
                                   RandomResizedCrop: a window of SMIN..SMAX of the area
                                   (default 0.08-1) and aspect ratio RMIN..RMAX (default
                                   0.75-1.3333), resized to SIZE (N or HxW; empty or omitted:
                                   the input's size)
    jitter:B[:C[:S[:H]]]           ColorJitter(brightness=B, contrast=C, saturation=S, hue=H),
                                   missing ones 0; H <= 0.5; S and H do nothing on 1 channel
    erase[:P[:SMIN-SMAX[:RMIN-RMAX]]]
                                   RandomErasing: with probability P (default 0.5) a rectangle
                                   of SMIN..SMAX of the area (default 0.02-0.33) and aspect
                                   ratio RMIN..RMAX (default 0.3-3.3) set to 0

For example the chapter's ``Compose([RandomHorizontalFlip(), color_aug, shape_aug])`` is
``"hflip,jitter:0.5:0.5:0.5:0.5,rrc:200:0.1-1:0.5-2"``.

The same spec builds torchvision ``transforms.v2`` per-sample transforms with
:func:`folder_transforms`, for image folders read by DataLoader workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # imported where used: importing torchvision is slow (see data/sources.py)
    from torchvision.transforms import v2

from ..errors import ConvzooError, UnknownNameError
from .color import (
    ColorJitter,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)
from .draw import randint, uniform
from .loader import Augment

__all__ = [
    "AugmentSpecError",
    "ColorJitter",
    "Compose",
    "Erase",
    "Flip",
    "PadCrop",
    "ResizedCrop",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply",
    "augmented_versions",
    "folder_transforms",
    "parse_augment",
]


class AugmentSpecError(ConvzooError, ValueError):
    """An augmentation spec that does not parse."""


# -- flips ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flip:
    """Flip each image with probability ``p``: ``dim=-1`` horizontal, ``dim=-2`` vertical."""

    dim: int = -1
    p: float = 0.5

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        flip = uniform(g, (len(x),), x.device) < self.p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(self.dim), x)

    def to_torchvision(self, size: tuple[int, int]) -> v2.Transform:
        from torchvision.transforms import v2

        cls = v2.RandomHorizontalFlip if self.dim == -1 else v2.RandomVerticalFlip
        return cls(p=self.p)

    def __str__(self) -> str:
        return f"{'h' if self.dim == -1 else 'v'}flip:{self.p:g}"


# -- crop with padding ------------------------------------------------------------------------
@dataclass(frozen=True)
class PadCrop:
    """torchvision ``RandomCrop(size=(H, W), padding=pad)``: zero-pad ``pad`` pixels on every
    side, then take an H x W window at a uniformly random offset in ``[0, 2 * pad]`` (per image,
    per axis). One ``gather`` for the whole batch."""

    pad: int = 4

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.pad
        if p == 0 or n == 0:
            return x
        wp = w + 2 * p
        top = randint(g, torch.tensor(2 * p, device=x.device), (n,))
        left = randint(g, torch.tensor(2 * p, device=x.device), (n,))
        rows = top[:, None] + torch.arange(h, device=x.device)  # N x H, rows of the padded image
        cols = left[:, None] + torch.arange(w, device=x.device)  # N x W
        idx = (rows[:, :, None] * wp + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        return padded.flatten(2).gather(2, idx).view(n, c, h, w)

    def to_torchvision(self, size: tuple[int, int]) -> v2.Transform:
        from torchvision.transforms import v2

        return v2.RandomCrop(size, padding=self.pad)

    def __str__(self) -> str:
        return f"crop:{self.pad}"


# -- RandomResizedCrop ------------------------------------------------------------------------
def resize_weights(
    start: torch.Tensor, length: torch.Tensor, out: int, full: int, dtype: torch.dtype
) -> torch.Tensor:
    """Per-image resampling matrices (N x out x full) that take the window
    ``[start, start + length)`` of an axis of ``full`` pixels to ``out`` pixels.

    They are PyTorch's antialiased bilinear weights (``interpolate(..., antialias=True)``, what
    torchvision's ``resize`` uses): a triangle filter widened by the shrink factor, cut to the
    window and normalized — so cropping then resizing with torchvision gives the same numbers.
    """
    device = start.device
    length = length.to(dtype).view(-1, 1, 1)
    scale = length / out  # input pixels per output pixel
    support = scale.clamp_min(1.0)  # the triangle's half-width, in input pixels
    inv = 1.0 / support
    center = scale * (torch.arange(out, device=device, dtype=dtype).view(1, -1, 1) + 0.5)
    lo = (center - support + 0.5).trunc().clamp_min(0)
    hi = torch.minimum((center + support + 0.5).trunc(), length)
    u = torch.arange(full, device=device, dtype=dtype).view(1, 1, -1) - start.to(dtype).view(
        -1, 1, 1
    )
    w = (1 - ((u - center + 0.5) * inv).abs()).clamp_min(0) * ((u >= lo) & (u < hi))
    return w / w.sum(dim=2, keepdim=True)


@dataclass(frozen=True)
class ResizedCrop:
    """torchvision ``RandomResizedCrop(size, scale, ratio, antialias=True)`` per image.

    Parameters are drawn as torchvision's ``get_params`` does (up to 10 tries of an area
    fraction in ``scale`` and a log-uniform aspect ratio in ``ratio``; the first window that fits
    wins, else a central crop with the ratio clamped), all tries of all images at once. Each
    window is cut and resized by two batched matrix products with :func:`resize_weights`, which
    equals torchvision's crop-then-resize (antialiased bilinear) to float rounding. The cost is
    O(out x in) per axis and image: nothing for 28-96 px images, heavy for large ones.
    ``size=None`` keeps the input's size.
    """

    size: tuple[int, int] | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    tries: int = 10

    def params(self, n: int, h: int, w: int, g: torch.Generator, device=None) -> torch.Tensor:
        """Windows as an N x 4 int64 tensor of (top, left, height, width) in pixels."""
        device = device or g.device
        u = uniform(g, (3, n, self.tries), device)
        area = h * w * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + u[1] * (hi - lo))
        cw = torch.sqrt(area * aspect).round().long()
        ch = torch.sqrt(area / aspect).round().long()
        fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = fits.int().argmax(dim=1, keepdim=True)  # first try that fits
        cw, ch = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0]
        # torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio
        in_ratio = w / h
        if in_ratio < min(self.ratio):
            fw, fh = w, round(w / min(self.ratio))
        elif in_ratio > max(self.ratio):
            fw, fh = round(h * max(self.ratio)), h
        else:
            fw, fh = w, h
        ok = fits.any(dim=1)
        cw = torch.where(ok, cw, fw)
        ch = torch.where(ok, ch, fh)
        top = torch.where(ok, randint(g, h - ch), (h - fh) // 2)
        left = torch.where(ok, randint(g, w - cw), (w - fw) // 2)
        return torch.stack([top, left, ch, cw], dim=1)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        oh, ow = self.size or (h, w)
        if n == 0:
            return x.new_empty((0, x.shape[1], oh, ow))
        top, left, ch, cw = self.params(n, h, w, g, x.device).unbind(1)
        rows = resize_weights(top, ch, oh, h, x.dtype)  # N x oh x H
        cols = resize_weights(left, cw, ow, w, x.dtype)  # N x ow x W
        # einsum lays these out as plain batched products (5x faster than broadcasting @)
        y = torch.einsum("noh,nchw->ncow", rows, x)  # N x C x oh x W
        return torch.einsum("ncow,npw->ncop", y, cols)  # N x C x oh x ow

    def to_torchvision(self, size: tuple[int, int]) -> v2.Transform:
        from torchvision.transforms import v2

        return v2.RandomResizedCrop(
            self.size or size, scale=self.scale, ratio=self.ratio, antialias=True
        )

    def __str__(self) -> str:
        size = "" if self.size is None else "x".join(map(str, self.size))
        return f"rrc:{size}:{self.scale[0]:g}-{self.scale[1]:g}:{self.ratio[0]:g}-{self.ratio[1]:g}"


# -- random erasing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Erase:
    """torchvision ``RandomErasing(p, scale, ratio, value=0)`` per image (Zhong et al. 2017).

    Parameters are drawn as torchvision's ``get_params`` does: up to 10 tries of an area
    fraction in ``scale`` and a log-uniform aspect ratio (height / width) in ``ratio``; the
    first rectangle smaller than the image wins, at a uniformly random place; if none fits, the
    image is kept. All tries of all images at once, and one masked fill for the batch.
    """

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    tries: int = 10

    def params(self, n: int, h: int, w: int, g: torch.Generator, device=None) -> torch.Tensor:
        """Rectangles as an N x 4 int64 tensor of (top, left, height, width) in pixels; height
        and width 0 where the image is kept."""
        device = device or g.device
        u = uniform(g, (2, n, self.tries), device)
        area = h * w * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + u[1] * (hi - lo))
        eh = torch.sqrt(area * aspect).round().long()
        ew = torch.sqrt(area / aspect).round().long()
        fits = (eh < h) & (ew < w)
        first = fits.int().argmax(dim=1, keepdim=True)  # first try that fits
        eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
        on = fits.any(dim=1) & (uniform(g, (n,), device) < self.p)
        eh, ew = torch.where(on, eh, 0), torch.where(on, ew, 0)
        return torch.stack([randint(g, h - eh), randint(g, w - ew), eh, ew], dim=1)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if n == 0:
            return x
        top, left, eh, ew = self.params(n, h, w, g, x.device).unbind(1)
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # N x H
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # N x W
        return x.masked_fill(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0.0)

    def to_torchvision(self, size: tuple[int, int]) -> v2.Transform:
        from torchvision.transforms import v2

        return v2.RandomErasing(p=self.p, scale=self.scale, ratio=self.ratio, value=0)

    def __str__(self) -> str:
        s, r = self.scale, self.ratio
        return f"erase:{self.p:g}:{s[0]:g}-{s[1]:g}:{r[0]:g}-{r[1]:g}"


# -- composition and the spec -----------------------------------------------------------------
class Compose:
    """Ops applied left to right, all drawing from the same generator."""

    def __init__(self, ops: Sequence[Augment]) -> None:
        self.ops = list(ops)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for op in self.ops:
            x = op(x, g)
        return x

    def to_torchvision(self, size: tuple[int, int]) -> v2.Transform:
        from torchvision.transforms import v2

        out, cur = [], size
        for op in self.ops:
            out.append(op.to_torchvision(cur))
            cur = getattr(op, "size", None) or cur
        return v2.Compose(out)

    def __str__(self) -> str:
        return ",".join(map(str, self.ops))

    def __repr__(self) -> str:
        return f"Compose({self!s})"


def _prob(text: str) -> float:
    p = float(text)
    if not 0 <= p <= 1:
        raise ValueError("the probability must be in [0, 1]")
    return p


def _size(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    parts = [int(t) for t in text.lower().split("x")]
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise ValueError("SIZE must be N or HxW with positive integers")
    return (parts[0], parts[-1])


def _range(text: str, positive: bool) -> tuple[float, float]:
    lo, sep, hi = text.partition("-")
    a, b = float(lo), float(hi if sep else lo)
    if not 0 < a <= b or (not positive and b > 1):
        raise ValueError(
            f"{text!r} must be LO-HI with 0 < LO <= HI" + ("" if positive else " <= 1")
        )
    return (a, b)


def _crop(args: list[str]) -> PadCrop:
    pad = int(args[0]) if args and args[0] else 4
    if pad < 0:
        raise ValueError("PAD must be >= 0")
    return PadCrop(pad)


def _rrc(args: list[str]) -> ResizedCrop:
    if len(args) > 3:
        raise ValueError("takes at most SIZE:SCALE:RATIO")
    op = ResizedCrop(_size(args[0]) if args else None)
    if len(args) > 1 and args[1]:
        op = ResizedCrop(op.size, _range(args[1], positive=False), op.ratio)
    if len(args) > 2 and args[2]:
        op = ResizedCrop(op.size, op.scale, _range(args[2], positive=True))
    return op


def _jitter(args: list[str]) -> ColorJitter:
    if not args or len(args) > 4:
        raise ValueError("needs B[:C[:S[:H]]]")
    values = [float(a) if a else 0.0 for a in args]
    if min(values) < 0 or (len(values) == 4 and values[3] > 0.5):
        raise ValueError("factors must be >= 0 and the hue at most 0.5")
    return ColorJitter(*values)


def _erase(args: list[str]) -> Erase:
    if len(args) > 3:
        raise ValueError("takes at most P:SCALE:RATIO")
    op = Erase(_prob(args[0]) if args and args[0] else 0.5)
    if len(args) > 1 and args[1]:
        op = Erase(op.p, _range(args[1], positive=False), op.ratio)
    if len(args) > 2 and args[2]:
        op = Erase(op.p, op.scale, _range(args[2], positive=True))
    return op


def _flip(dim: int) -> Callable[[list[str]], Flip]:
    def build(args: list[str]) -> Flip:
        if len(args) > 1:
            raise ValueError("takes at most one probability")
        return Flip(dim, _prob(args[0]) if args and args[0] else 0.5)

    return build


#: op name -> builder from the ``:``-separated arguments, and its grammar for messages
_OPS: dict[str, tuple[Callable[[list[str]], Augment], str]] = {
    "hflip": (_flip(-1), "hflip[:P]"),
    "vflip": (_flip(-2), "vflip[:P]"),
    "crop": (_crop, "crop[:PAD]"),
    "rrc": (_rrc, "rrc[:SIZE[:SMIN-SMAX[:RMIN-RMAX]]]"),
    "jitter": (_jitter, "jitter:B[:C[:S[:H]]]"),
    "erase": (_erase, "erase[:P[:SMIN-SMAX[:RMIN-RMAX]]]"),
}


def parse_augment(spec: str | None) -> Compose | None:
    """The augmentation a spec string describes (grammar in the module docstring); ``None``
    for ``""``/``"none"``. Bad parts raise :class:`AugmentSpecError` naming them."""
    return parse_ops(spec, _OPS)


def parse_ops(
    spec: str | None, table: dict[str, tuple[Callable[[list[str]], Augment], str]]
) -> Compose | None:
    """``spec`` built with ``table`` (op name -> builder from its ``:`` arguments, grammar):
    the parser shared by image and sequence augmentations."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    ops = []
    for part in spec.split(","):
        name, *args = part.strip().split(":")
        if name not in table:
            raise UnknownNameError(
                f"unknown augmentation {name!r} in {spec!r}; known: "
                + ", ".join(g for _, g in table.values())
            )
        build, grammar = table[name]
        try:
            ops.append(build(args))
        except ValueError as e:
            reason = str(e) if not str(e).startswith(("could not", "invalid literal")) else ""
            raise AugmentSpecError(
                f"bad augmentation {part.strip()!r} in {spec!r}: expected {grammar}"
                + (f" ({reason})" if reason else "")
            ) from None
    return Compose(ops)


def augmented_versions(
    image: torch.Tensor, aug: str | Augment | None, count: int, *, seed: int = 0
) -> torch.Tensor:
    """``count`` augmented versions of one image (uint8 or float in [0, 1], C x H x W), as
    float ``count`` x C x H' x W' in [0, 1]; each draws its own parameters, from ``seed``."""
    op = parse_augment(aug) if isinstance(aug, str) or aug is None else aug
    x = image.float().div(255.0) if image.dtype == torch.uint8 else image.float()
    x = x.unsqueeze(0).expand(count, -1, -1, -1).contiguous()
    return x if op is None else op(x, torch.Generator().manual_seed(seed))


def apply(
    image: torch.Tensor,
    aug: str | Augment | None,
    *,
    rows: int = 2,
    cols: int = 4,
    seed: int = 0,
    path: str | os.PathLike = "augment.png",
    label: str = "original",
    title: str | None = None,
) -> torch.Tensor:
    """The chapter's ``apply(img, aug, num_rows, num_cols)``: the image and ``rows x cols - 1``
    augmented versions in one grid, written to ``path`` as a PNG; returns the versions. The
    book shows only the versions; the original in the first cell makes each change visible."""
    from ..viz import image_grid

    cells = rows * cols
    if cells < 2:
        raise ConvzooError("rows x cols must leave room for the original and one version")
    versions = augmented_versions(image, aug, cells - 1, seed=seed)
    labels = [label, *(f"#{k}" for k in range(1, cells))]
    image_grid([image, *versions], labels, rows=rows, cols=cols, path=path, title=title)
    return versions


def folder_transforms(spec: str | None, size: tuple[int, int]) -> v2.Transform | None:
    """The same spec as torchvision ``transforms.v2`` per-sample transforms (for image folders
    read one file at a time in DataLoader workers). ``size`` is the (H, W) of the images the
    transforms receive (``crop:PAD`` crops back to it, ``rrc`` without a size resizes to it)."""
    aug = parse_augment(spec)
    return None if aug is None else aug.to_torchvision(tuple(size))
