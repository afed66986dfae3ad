"""Image folders streamed: files decoded per batch in DataLoader workers (:class:`FolderLoader`).

For folders too big for memory (:func:`~convzoo.data.folder.load_folder` refuses splits over
:data:`~convzoo.data.folder.MEMORY_LIMIT_BYTES`). The loader presents the interface of
:class:`~convzoo.data.loader.DeviceLoader` (both are :class:`~convzoo.data.loader.BatchLoader`),
so training does not care which one feeds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # imported where used: importing torchvision is slow (see data/sources.py)
    from torchvision.transforms import v2

from ..errors import DataError
from .augment import folder_transforms
from .folder import BadImage, FolderIndex, decode, fit_size, index_folder, log_skipped
from .loader import Augment, Batch, BatchLoader, derive_seed


class _Files(torch.utils.data.Dataset):
    """Decodes one file per item in a worker: ``(index, step, slot)`` -> (uint8 image or
    ``None``, label, path, reason). ``base_seed`` (per epoch and rank) and the key seed the
    sample's transforms."""

    base_seed = 0

    def __init__(
        self,
        samples: list[tuple[str, int]],
        channels: int,
        size: tuple[int, int],
        transform: v2.Transform | None,
    ) -> None:
        self.samples, self.channels, self.size, self.transform = samples, channels, size, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int, int]):
        i, step, slot = key
        path, label = self.samples[i]
        try:
            img = fit_size(decode(path, self.channels), self.size)
        except BadImage as e:
            return None, label, path, e.reason
        if self.transform is not None:
            # v2 transforms draw from torch's global generator: seed it per sample (so a resumed
            # epoch repeats itself) without disturbing the caller's state
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(self.base_seed, step, slot))
                img = self.transform(img)
        return img, label, path, None


class _Keys:
    """The DataLoader's batch sampler: each step's ``(index, step, slot)`` keys, made lazily
    (an epoch of a million files would otherwise be a million tuples up front)."""

    def __init__(self, shards: list[tuple[int, torch.Tensor, int, int]]) -> None:
        self.shards = shards

    def __len__(self) -> int:
        return len(self.shards)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for step, idx, _, _ in self.shards:
            yield [(i, step, slot) for slot, i in enumerate(idx.tolist())]


def _collate(items):
    ok = torch.tensor([it[0] is not None for it in items])
    good = [it[0] for it in items if it[0] is not None]
    x = torch.stack(good) if good else None
    y = torch.tensor([it[1] for it in items], dtype=torch.int64)
    bad = [(it[2], it[3]) for it in items if it[0] is None]
    return x, y, ok, bad


class FolderLoader(BatchLoader):
    """Batches of an image folder read file by file in DataLoader workers, with the interface
    of :class:`~convzoo.data.loader.DeviceLoader`: iterating yields :class:`Batch` (x float
    N x C x H x W on ``device``, resized and normalized), ``len`` is the steps per epoch, and
    ``set_epoch(epoch, start_step)`` selects a deterministic order from ``(seed, epoch)``.
    Order, sharding and batch finishing are :class:`BatchLoader`'s, as for DeviceLoader, so
    both loaders split and resume alike.

    ``augment``: a spec string (:mod:`convzoo.data.augment`) runs as torchvision ``v2``
    transforms per sample in the workers, each sample seeded from (seed, epoch, rank, step,
    place in the batch);
    an :data:`Augment` callable runs batched on the device, like DeviceLoader's. Each file is
    decoded, converted to ``channels`` and resized to ``load_size`` (the folder's common size
    by default) before augmentation; ``image_size`` resizes the batch on the device after it.

    A file that fails to decode raises :class:`DataError` naming it; with
    ``skip_bad_images=True`` it is dropped from its batch (the batch is refilled with padding
    at the end, ``valid`` counts the real ones) and recorded in ``bad_images``. Under sharding
    ``global_valid`` then only discounts this rank's skipped files.
    """

    def __init__(
        self,
        path: str | os.PathLike | FolderIndex,
        batch_size: int,
        *,
        split: str = "train",
        shuffle: bool = False,
        augment: str | Augment | None = None,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        channels: int | None = None,
        load_size: int | tuple[int, int] | None = None,
        skip_bad_images: bool = False,
        num_workers: int | None = None,
    ) -> None:
        index = (
            path
            if isinstance(path, FolderIndex)
            else index_folder(
                path,
                split,
                channels=channels,
                image_size=load_size,
                skip_bad_images=skip_bad_images,
            )
        )
        super().__init__(
            index,
            batch_size,
            channels=index.channels,
            shuffle=shuffle,
            augment=None if isinstance(augment, str) else augment,
            image_size=image_size,
            mean=mean,
            std=std,
            device=device,
            seed=seed,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
            channels_last=channels_last,
        )
        self.skip_bad_images = skip_bad_images
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        transform = folder_transforms(augment, index.size) if isinstance(augment, str) else None
        self.files = _Files(index.samples, index.channels, index.size, transform)

    @property
    def bad_images(self) -> dict[str, str]:
        """Unreadable files met so far (path -> reason), from the scan and from decoding."""
        return self.data.bad_images

    def __iter__(self) -> Iterator[Batch]:
        shards = list(self.steps())
        self.files.base_seed = derive_seed(self.seed, self.epoch, self.rank, 2)
        loader = torch.utils.data.DataLoader(
            self.files,
            batch_sampler=_Keys(shards),
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        for (step, _, valid, global_valid), (x, y, ok, bad) in zip(shards, loader):
            yield self._batch(step, x, y, ok, bad, valid, global_valid)

    def _batch(self, step, x, y, ok, bad, valid, global_valid) -> Batch:
        if bad:
            if not self.skip_bad_images:
                raise BadImage(*bad[0])
            new = {p: r for p, r in bad if p not in self.bad_images}
            self.bad_images.update(new)
            log_skipped(new, self.data.root)
            if x is None:
                raise DataError(f"{self.data.root}: every image of step {step} is unreadable")
            width = len(ok)
            real_bad = int((~ok[:valid]).sum())
            y = y[ok]
            if len(y) < width:  # refill at the end with padding, as sharding does
                fill = width - len(y)
                x = torch.cat([x, x[:1].expand(fill, *x.shape[1:])])
                y = torch.cat([y, y[:1].expand(fill)])
            valid, global_valid = valid - real_bad, global_valid - real_bad
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        return self.finish_batch(x, y, valid, global_valid, step)
