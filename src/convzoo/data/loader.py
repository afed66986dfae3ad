"""The in-memory device loader: the whole uint8 image set on the training device, batches
sliced from a seeded permutation and converted, augmented, resized and normalized per batch.

Why our own rather than ``DataLoader``: the book's loader converts one PIL image at a time in
worker processes, which on small models costs more than the training itself (and on 2 cores
the workers compete with the compute threads). Here a batch is one gather and a few tensor ops
on the device; nothing is ever materialised at the resized size beyond the current batch
(Fashion-MNIST as float32 at 224 px would be 12 GB).

Determinism: the order of epoch ``e`` depends only on ``(seed, e)`` and the augmentation of
step ``s`` only on ``(seed, e, s, rank)``, so an epoch can be resumed at any step with
bitwise-identical batches, without saving or replaying random state.

Sharding (DDP): step ``s`` takes the next ``batch_size * world_size`` indices of the shared
permutation and hands each rank a contiguous, as-even-as-possible part. Ranks whose part is
short are padded with duplicates that :attr:`Batch.valid` marks as not real, so every sample is
used exactly once per epoch and losses and metrics can ignore the padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F

from .dataset import LabelledData
from .sequences import SequenceDataset

#: an augmentation: float images in [0, 1] (N x C x H x W) or series (N x C x L) and a
#: generator -> same-sized batch
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Batch(NamedTuple):
    #: float N x C x H x W (images) or N x C x L (series), resized and normalized, on the device
    x: torch.Tensor
    y: torch.Tensor  #: int64 N, on the device
    #: real samples at the front of this batch; the rest are padding (only under sharding)
    valid: int
    #: real samples in this step summed over all ranks (= ``valid`` on one process)
    global_valid: int


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across runs and platforms (unlike ``hash``)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= int(p) + 0x9E3779B97F4A7C15 + ((h << 6) & 0xFFFFFFFFFFFFFFFF) + (h >> 2)
        h &= 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class BatchLoader:
    """What every loader shares: checks, epoch order, rank sharding, step counts and batch
    finishing. :class:`DeviceLoader` (a data set in memory) and
    :class:`~convzoo.data.folder_loader.FolderLoader` (files read by workers) differ only in how a
    step's images are fetched, so both split, order and resume alike.

    ``data`` needs only ``len``; ``channels`` is the images' channel count (for ``mean``/``std``).
    Parameters as in :class:`DeviceLoader`.
    """

    #: dimensions after the channels: 2 for images (H, W), 1 for sequences (L)
    spatial_dims: ClassVar[int] = 2

    def __init__(
        self,
        data: Sized,
        batch_size: int,
        *,
        channels: int,
        shuffle: bool = False,
        augment: Augment | None = None,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.data = data
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.image_size = image_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        shape = (1, channels) + (1,) * self.spatial_dims
        self.mean = None if mean is None else torch.tensor(mean, device=self.device).view(shape)
        self.std = None if std is None else torch.tensor(std, device=self.device).view(shape)
        self.epoch = 0
        self.start_step = 0

    # -- epoch bookkeeping --------------------------------------------------------------------
    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        n, b = len(self.data), self.global_batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch whose order (and augmentation) to produce, from ``start_step`` on."""
        if not 0 <= start_step <= len(self):
            raise ValueError(f"start_step {start_step} is outside 0..{len(self)}")
        self.epoch = epoch
        self.start_step = start_step

    def order(self, epoch: int | None = None) -> torch.Tensor:
        """All sample indices of an epoch in the order they are served (on the CPU)."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.data)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        return torch.randperm(n, generator=g)

    def shard(self, step_indices: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This rank's part of one step's global indices, padded to equal length across
        ranks, and how many of them are real."""
        g, w, r = len(step_indices), self.world_size, self.rank
        if w == 1:
            return step_indices, g
        base, extra = divmod(g, w)
        start = r * base + min(r, extra)
        mine = step_indices[start : start + base + (r < extra)]
        width = base + (extra > 0)
        pad = width - len(mine)
        if pad:
            filler = mine[:1] if len(mine) else step_indices[:1]
            mine = torch.cat([mine, filler.expand(pad)])
        return mine, width - pad

    def steps(
        self, order: torch.Tensor | None = None
    ) -> Iterator[tuple[int, torch.Tensor, int, int]]:
        """``(step, this rank's indices, real count, real count over all ranks)`` for the rest
        of the epoch, from ``order`` (default: :meth:`order`)."""
        order = self.order() if order is None else order
        b = self.global_batch_size
        for step in range(self.start_step, len(self)):
            step_indices = order[step * b : (step + 1) * b]
            idx, valid = self.shard(step_indices)
            yield step, idx, valid, len(step_indices)

    # -- batches ------------------------------------------------------------------------------
    def finish_batch(
        self, images: torch.Tensor, labels: torch.Tensor, valid: int, global_valid: int, step: int
    ) -> Batch:
        """uint8 images on the device -> the training batch: scale to [0, 1], augment (seeded
        by epoch, step and rank), resize, normalize, memory format. Shared with FolderLoader."""
        x = images.float().div_(255.0)
        if self.augment is not None:
            x = self.augment(x, self.generator(step))
        if self.image_size is not None and x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=x.shape[-1] > self.image_size,
            )
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return Batch(x, labels, valid, global_valid)

    def generator(self, step: int) -> torch.Generator:
        """The augmentation's random numbers for ``step`` of the current epoch on this rank."""
        gen = torch.Generator(device=self.device)
        return gen.manual_seed(derive_seed(self.seed, self.epoch, step, self.rank, 1))


class DeviceLoader(BatchLoader):
    """Batches of an :class:`~convzoo.data.ImageDataset` kept in memory on ``device`` (and the
    base of :class:`SequenceLoader`, which differs only in how a batch is finished).

    Parameters
    ----------
    batch_size: samples per batch *per rank*.
    shuffle: new seeded order every epoch (training); ``False`` keeps the stored order.
    augment: applied to float images in [0, 1] at the stored resolution, before resizing.
    image_size: resize every batch to this side (pixels) on the device; ``None`` keeps it.
    mean, std: per-channel normalization after scaling to [0, 1]; ``None``: no normalization
        (the book's ``ToTensor`` only).
    drop_last: skip a final partial step (static shapes, e.g. for ``torch.compile``).
    rank, world_size: this process's share under data parallelism.
    """

    def __init__(self, data: LabelledData, batch_size: int, **kwargs: Any) -> None:
        super().__init__(data, batch_size, channels=data.in_channels, **kwargs)
        self.inputs = getattr(data, data.inputs_field).to(self.device)
        self.labels = data.labels.to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        # one host-to-device copy of the epoch's order, not one small copy per batch
        for step, idx, valid, global_valid in self.steps(self.order().to(self.device)):
            yield self.make_batch(idx, valid, global_valid, step)

    def make_batch(self, idx: torch.Tensor, valid: int, global_valid: int, step: int) -> Batch:
        return self.finish_batch(self.inputs[idx], self.labels[idx], valid, global_valid, step)


class SequenceLoader(DeviceLoader):
    """Batches of a :class:`~convzoo.data.SequenceDataset` (float N x C x L) kept in memory on
    ``device``: the same order, sharding and resume as images; a batch is augmented with the
    sequence ops (:func:`~convzoo.data.parse_augment1d`), resampled to ``image_size`` steps
    when that is given, and normalized per channel when ``mean``/``std`` are given.

    The series are float already (as loaded: z-normalised or the stored values), so there is no
    scaling by 255.
    ``image_size`` keeps its name (the one definition of "the input size a network is trained
    at"): for a sequence it is the number of steps, and ``None`` keeps the stored length.
    Shrinking averages neighbouring steps (``mode="area"``, the 1-D antialiasing), stretching
    interpolates linearly. There is no channels-last layout for N x C x L tensors.
    """

    spatial_dims = 1

    def __init__(self, data: SequenceDataset, batch_size: int, **kwargs: Any) -> None:
        if kwargs.pop("channels_last", False):
            raise ValueError("channels_last is a layout of images; sequences have none")
        super().__init__(data, batch_size, **kwargs)

    def finish_batch(
        self, series: torch.Tensor, labels: torch.Tensor, valid: int, global_valid: int, step: int
    ) -> Batch:
        x = series
        if self.augment is not None:
            x = self.augment(x, self.generator(step))
        if self.image_size is not None and x.shape[-1] != self.image_size:
            x = resample(x, self.image_size)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return Batch(x, labels, valid, global_valid)


def resample(x: torch.Tensor, length: int) -> torch.Tensor:
    """Series ``N x C x L`` resampled to ``length`` steps: averaged over windows when
    shrinking (no aliasing), linearly interpolated when stretching."""
    if length < x.shape[-1]:
        return F.interpolate(x, size=length, mode="area")
    return F.interpolate(x, size=length, mode="linear", align_corners=False)
