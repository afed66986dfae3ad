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
        fields = {
            self.inputs_field: getattr(self, self.inputs_field)[indices],
            "labels": self.labels[indices],
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
            c = self.in_channels
            total = torch.zeros(c, dtype=torch.float64)
            squares = torch.zeros(c, dtype=torch.float64)
            for chunk in self.images.split(4096):  # bounded memory for big sets
                x = chunk.to(torch.float64).div_(255.0)
                total += x.sum(dim=(0, 2, 3))
                squares += x.square().sum(dim=(0, 2, 3))
            n = self.images.numel() // c
            mean = total / n
            std = (squares / n - mean.square()).clamp_min(1e-12).sqrt()
            self._stats = (tuple(mean.tolist()), tuple(std.tolist()))
        return self._stats
