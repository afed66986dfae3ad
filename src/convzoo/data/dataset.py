"""The in-memory image set every loader and trainer works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class ImageDataset:
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

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 N x C x H x W tensor, got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise ValueError(
                f"{len(self.images)} images but labels of shape {tuple(self.labels.shape)}"
            )
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: torch.Tensor, **changes) -> ImageDataset:
        """The images at ``indices`` (labels and classes kept unless ``changes`` says else)."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        fields = dict(images=self.images[indices], labels=self.labels[indices], _stats=None)
        fields.update(changes)
        out = replace(self, **fields)
        if out.labels.numel() and not 0 <= int(out.labels.min()) <= int(out.labels.max()) < len(
            out.classes
        ):
            raise ValueError("subset labels fall outside its classes")
        return out

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

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()
