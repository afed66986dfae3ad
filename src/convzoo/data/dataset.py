"""The in-memory image set every loader and trainer works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

import torch

_Data = TypeVar("_Data", bound="LabelledData")


class LabelledData:
    """What in-memory sets share, images or time series: N inputs in the tensor field named
    ``inputs_field``, int64 ``labels`` N in ``[0, len(classes))``, class names, subsets."""

    inputs_field: ClassVar[str]
    #: fields a subset resets (cached statistics of the whole set)
    reset_on_subset: ClassVar[dict[str, Any]] = {}
    labels: torch.Tensor
    classes: list[str]

    def _check_labels(self) -> None:
        n, what = len(getattr(self, self.inputs_field)), self.inputs_field
        if self.labels.dim() != 1 or len(self.labels) != n:
            raise ValueError(f"{n} {what} but labels of shape {tuple(self.labels.shape)}")
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self: _Data, indices: torch.Tensor, **changes: Any) -> _Data:
        """The items at ``indices`` (labels and classes kept unless ``changes`` says else)."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        inputs = getattr(self, self.inputs_field)  # a tensor, or a numpy array of file paths
        mask = getattr(self, "val_mask", None)
        take: Any = indices if torch.is_tensor(inputs) else indices.numpy()
        if len(indices) > 1 and bool((indices.diff() == 1).all()):  # a view, not a copy
            take = slice(int(indices[0]), int(indices[-1]) + 1)
        fields = {
            self.inputs_field: inputs[take],
            "labels": self.labels[indices],
            **({} if mask is None else {"val_mask": mask[indices]}),
            **self.reset_on_subset,
            **changes,
        }
        out = replace(self, **fields)
        if len(out) and not 0 <= int(out.labels.min()) <= int(out.labels.max()) < out.num_classes:
            raise ValueError("subset labels fall outside its classes")
        return out

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()


@dataclass
class ImageDataset(LabelledData):
    """A labelled image set held in memory.

    ``images`` is uint8 N x C x H x W (the compact form: Fashion-MNIST's 60,000 training images
    are 47 MB), ``labels`` int64 N in ``[0, len(classes))``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = "unnamed"
    split: str = "train"
    #: where the data came from (a path or a description), for messages and run records
    source: str = ""
    #: how an image folder's set is held (in memory or streamed, and why), for run headers
    note: str = ""
    #: rows a labels file marks ``val`` (the validation split), or ``None``
    val_mask: torch.Tensor | None = field(default=None, repr=False)
    #: per-channel mean and std of the pixels in [0, 1] (computed on first use)
    _stats: tuple[tuple[float, ...], tuple[float, ...]] | None = field(default=None, repr=False)
    inputs_field: ClassVar[str] = "images"
    reset_on_subset: ClassVar[dict[str, Any]] = {"_stats": None}

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 N x C x H x W tensor, got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        self._check_labels()

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the pixel values scaled to [0, 1]."""
        if self._stats is None:
            sums = sum(pixel_sums(chunk) for chunk in self.images.split(256))
            self._stats = stats_from_sums(sums, self.images.numel() // self.in_channels)
        return self._stats


def pixel_sums(images: torch.Tensor) -> torch.Tensor:
    """2 x C int64: per-channel sums of the uint8 pixels and of their squares (exact, so
    any chunking and order give the same figures)."""
    c = images.shape[1]
    x = images.transpose(0, 1).reshape(c, -1)
    out = torch.zeros(2, c, dtype=torch.int64)
    for chunk in x.split(1 << 22, dim=1):  # bounded int64 temporaries
        wide = chunk.long()
        out[0] += wide.sum(1)
        out[1] += wide.square().sum(1)
    return out


def stats_from_sums(sums: torch.Tensor, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    s = sums.double() / 255.0
    mean = s[0] / n
    std = (s[1] / 255.0 / n - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
