"""The chapter's flips and crops (翻转和裁剪) as batched, per-sample ops: ``Flip``, ``PadCrop``
(torchvision's ``RandomCrop`` with padding) and ``ResizedCrop`` (``RandomResizedCrop``).

Each image of a batch gets its own parameters from the generator passed in; why our own and
not torchvision's transforms: see :mod:`convzoo.data.augment`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .draw import randint, uniform

__all__ = ["Flip", "PadCrop", "ResizedCrop", "resize_weights"]


# -- flips ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flip:
    """Flip each image with probability ``p``: ``dim=-1`` horizontal, ``dim=-2`` vertical."""

    dim: int = -1
    p: float = 0.5

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        flip = uniform(g, (len(x),), x.device) < self.p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(self.dim), x)

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

    def __str__(self) -> str:
        size = "" if self.size is None else "x".join(map(str, self.size))
        return f"rrc:{size}:{self.scale[0]:g}-{self.scale[1]:g}:{self.ratio[0]:g}-{self.ratio[1]:g}"
