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

Spec grammar (one string for the CLI's ``--augment`` and the API)::

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

The ops live in one file per idea of the chapter: :mod:`~convzoo.data.flip_crop` (flips and
crops), :mod:`~convzoo.data.color` (color jitter), :mod:`~convzoo.data.erase` (random erasing);
this module holds the spec grammar and composition, and re-exports the ops.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # imported where used: importing matplotlib is slow
    from matplotlib.figure import Figure

from ..errors import ConvzooError, UnknownNameError
from .color import (
    ColorJitter,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)
from .erase import Erase
from .flip_crop import Flip, PadCrop, ResizedCrop
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
    "augment_grid",
    "augmented_versions",
    "parse_augment",
]


class AugmentSpecError(ConvzooError, ValueError):
    """An augmentation spec that does not parse."""


# -- composition and the spec -----------------------------------------------------------------
class Compose:
    """Ops applied left to right, all drawing from the same generator."""

    def __init__(self, ops: Sequence[Augment]) -> None:
        self.ops = list(ops)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for op in self.ops:
            x = op(x, g)
        return x

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
    path: str | os.PathLike | None = "augment.png",
    label: str = "original",
    title: str | None = None,
) -> torch.Tensor:
    """The chapter's ``apply(img, aug, num_rows, num_cols)``: the image and ``rows x cols - 1``
    augmented versions in one grid, written to ``path`` as a PNG; returns the versions. The
    book shows only the versions; the original in the first cell makes each change visible."""
    return _grid(image, aug, rows, cols, seed, label, title, path)[0]


def augment_grid(
    image: torch.Tensor,
    aug: str | Augment | None,
    *,
    rows: int = 2,
    cols: int = 4,
    seed: int = 0,
    label: str = "original",
    title: str | None = None,
) -> Figure:
    """:func:`apply`'s grid as a matplotlib figure, which a notebook shows; nothing is
    written. ``title`` defaults to the spec."""
    title = title if title is not None else aug if isinstance(aug, str) else None
    return _grid(image, aug, rows, cols, seed, label, title, None)[1]


def _grid(image, aug, rows, cols, seed, label, title, path) -> tuple[torch.Tensor, Any]:
    from ..viz import image_grid

    cells = rows * cols
    if cells < 2:
        raise ConvzooError("rows x cols must leave room for the original and one version")
    versions = augmented_versions(image, aug, cells - 1, seed=seed)
    labels = [label, *(f"#{k}" for k in range(1, cells))]
    grid = image_grid([image, *versions], labels, rows=rows, cols=cols, path=path, title=title)
    return versions, grid
