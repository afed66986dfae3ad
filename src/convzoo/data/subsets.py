"""Class subsets and few-shot subsets of any data set, from one spec string.

Grammar: comma-separated ``key=value`` items. "Images" below stand for series too: a subset of
a :class:`~convzoo.data.sequences.SequenceDataset` works the same way.

- ``classes=5-9`` (a range), ``classes=0+2+4`` (a list), ``classes=Sandal+Bag`` (names) or a
  mix: keep only these classes; labels are renumbered 0..k-1 in the order given and the class
  names follow.
- ``shots=50``: at most 50 images per class in the *training* split (the test split keeps
  all its images of the chosen classes, so accuracy is measured on the full test set).
- ``seed=0``: which images ``shots`` picks (default 0). For the same classes and seed, a
  smaller ``shots`` picks a subset of a larger one's images (10 of the 20, 20 of the 50).

Examples: ``classes=0-4`` (pretraining half), ``classes=5-9,shots=20`` (few-shot transfer),
``classes=5-9,shots=20,seed=1`` (another draw of the same size).
"""

from __future__ import annotations

from typing import TypeVar

import torch

from ..errors import ConvzooError
from .dataset import ImageDataset
from .sequences import SequenceDataset

#: images or time series: anything with labels, classes, a split and ``subset()``
Data = TypeVar("Data", ImageDataset, SequenceDataset)


class SubsetError(ConvzooError, ValueError):
    """A subset spec that cannot be read or selects nothing."""


def parse_subset(spec: str) -> dict[str, str]:
    """``"classes=5-9,shots=20"`` -> ``{"classes": "5-9", "shots": "20"}``, checked."""
    items: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in ("classes", "shots", "seed") or not value:
            raise SubsetError(
                f"bad subset item {part!r} in {spec!r}; use classes=A-B|A+B+..., shots=N, seed=N"
            )
        if key in items:
            raise SubsetError(f"subset {spec!r} gives {key} twice")
        if key in ("shots", "seed") and not value.isdigit():
            raise SubsetError(f"{key} must be a whole number in {spec!r}, got {value!r}")
        items[key] = value
    if not items:
        raise SubsetError(f"empty subset spec {spec!r}; e.g. classes=5-9,shots=20")
    return items


def _class_ids(value: str, classes: list[str]) -> list[int]:
    ids: list[int] = []
    for token in value.split("+"):
        if token in classes:
            ids.append(classes.index(token))
            continue
        lo, dash, hi = token.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if dash else [int(token)]
        except ValueError:
            raise SubsetError(
                f"unknown class {token!r}; classes are 0-{len(classes) - 1} or names: "
                f"{', '.join(classes)}"
            ) from None
        if not span:
            raise SubsetError(f"class range {token!r} is empty; write it low-high")
        ids.extend(span)
    bad = [i for i in ids if not 0 <= i < len(classes)]
    if bad or not ids:
        raise SubsetError(f"class ids {bad or value} are outside 0-{len(classes) - 1}")
    if len(set(ids)) != len(ids):
        raise SubsetError(f"classes {value!r} names a class twice")
    return ids


def apply_subset(data: Data, spec: str | None) -> Data:
    """``data`` restricted as ``spec`` says (see the module docstring); ``None`` keeps all."""
    if not spec:
        return data
    items = parse_subset(spec)
    labels = data.labels
    classes = list(data.classes)
    ids = _class_ids(items["classes"], classes) if "classes" in items else list(range(len(classes)))
    keep = torch.zeros(len(classes), dtype=torch.bool)
    keep[ids] = True
    index = torch.nonzero(keep[labels]).flatten()
    if "shots" in items and data.split == "train":
        shots, seed = int(items["shots"]), int(items.get("seed", 0))
        if shots < 1:
            raise SubsetError(f"shots must be >= 1, got {shots}")
        g = torch.Generator().manual_seed(seed)
        chosen = []
        for c in ids:
            members = index[labels[index] == c]
            chosen.append(members[torch.randperm(len(members), generator=g)[:shots]])
        index = torch.cat(chosen).sort().values
    if len(index) == 0:
        raise SubsetError(f"subset {spec!r} selects no images of {data.name} ({data.split})")
    remap = torch.full((len(classes),), -1, dtype=torch.long)
    remap[ids] = torch.arange(len(ids))
    return data.subset(index, labels=remap[labels[index]], classes=[classes[i] for i in ids])
