"""A validation split carved out of the training split: what every choice looks at.

Early stopping, the kept ("best") weights, learning-rate plateaus and recipe tuning must never
look at the test set, or the test figure they report is optimistic. ``--val-split`` sets aside
part of the *training* images for those choices; the test split is only ever reported.

The split is stratified (each class gives the same share) and seeded, so the same seed gives
the same split on every machine, every process of a DDP group and every resume.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConvzooError
from .dataset import ImageDataset
from .loader import derive_seed

#: mixed into the run's seed so that the split's draws are not the model's or the order's
_SPLIT_STREAM = 0x5A17


class SplitError(ConvzooError, ValueError):
    """A validation split that cannot be made (too large, not a whole number, ...)."""


def val_count(size: float, n: int) -> int:
    """How many of ``n`` images ``size`` asks for: a fraction in (0, 1) or a whole count."""
    if size < 0 or (size >= 1 and not float(size).is_integer()):
        raise SplitError(
            f"--val-split {size:g} must be a fraction in (0, 1) or a whole number of images"
        )
    count = round(size * n) if size < 1 else int(size)
    if count >= n:
        raise SplitError(
            f"--val-split {size:g} asks for {count} of the {n} training images; leave some to "
            "train on (e.g. --val-split 0.1)"
        )
    return count


def _per_class(counts: list[int], total: int) -> list[int]:
    """``total`` spread over classes in proportion to ``counts`` (largest remainders first),
    never taking a class's last training image."""
    n = sum(counts)
    exact = [total * c / n for c in counts]
    take = [min(math.floor(e), max(c - 1, 0)) for e, c in zip(exact, counts)]
    order = sorted(range(len(counts)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    for i in order:
        if sum(take) >= total:
            break
        if take[i] < counts[i] - 1:
            take[i] += 1
    return take


def split_validation(
    data: ImageDataset, size: float, *, seed: int = 0
) -> tuple[ImageDataset, ImageDataset | None]:
    """``(train, val)``: ``size`` of ``data`` (a fraction, or a count) set aside, the same share
    of every class, chosen by ``seed``; ``size`` 0 gives ``(data, None)``. Rows a labels file
    marks ``val`` (``data.val_mask``) are the validation split instead, whatever ``size``."""
    mask = getattr(data, "val_mask", None)
    if mask is not None and bool(mask.any()):
        rest, val = (~mask).nonzero().flatten(), mask.nonzero().flatten()
        return data.subset(rest, val_mask=None), data.subset(val, split="val", val_mask=None)
    if size == 0:
        return data, None
    total = val_count(size, len(data))
    counts = data.class_counts()
    take = _per_class(counts, total)
    g = torch.Generator().manual_seed(derive_seed(seed, _SPLIT_STREAM))
    val_idx = []
    for c, k in enumerate(take):
        members = torch.nonzero(data.labels == c).flatten()
        val_idx.append(members[torch.randperm(len(members), generator=g)[:k]])
    chosen = torch.cat(val_idx).sort().values
    if len(chosen) == 0:
        raise SplitError(
            f"--val-split {size:g} of {len(data)} images leaves no validation image; ask for more"
        )
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[chosen] = False
    rest = torch.nonzero(mask).flatten()
    return data.subset(rest), data.subset(chosen, split="val")
