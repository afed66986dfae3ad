"""Image files streamed: each step's files decoded and resized in DataLoader worker processes,
then finished on the device exactly as :class:`~convzoo.data.loader.DeviceLoader` finishes an
in-memory batch (the same batched augmentation, seeded by epoch, step and rank).

Both are :class:`~convzoo.data.loader.BatchLoader` s, so a streamed set is served in the same
order, sharded over ranks the same way (each rank decodes only its own part of each step) and
resumed at any step with the same batches; its workers hand over uint8 pixels at the training
size (a quarter of the bytes of float32).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from ..errors import DataError
from .image_file import BadImage, load_image, log_skipped
from .loader import Batch, BatchLoader

if TYPE_CHECKING:  # the index streams itself through this module
    from .folder import FolderIndex

#: DataLoader worker processes that decode: one per core, at most this many (a 224 px JPEG
#: takes about 0.4 ms to read and decode, so 4 supply some 10,000 images/s)
WORKERS = 4


class _Files(torch.utils.data.Dataset):
    """Item ``i``: (uint8 image or ``None``, (path, reason) or ``None``), decoded in a worker."""

    def __init__(self, index: FolderIndex) -> None:
        self.paths, self.channels, self.size = index.paths, index.channels, index.size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = str(self.paths[i])
        try:
            return load_image(path, self.channels, self.size), None
        except BadImage as e:
            return None, (e.path, e.reason)


def _collate(items):
    ok = torch.tensor([img is not None for img, _ in items])
    good = [img for img, _ in items if img is not None]
    return (torch.stack(good) if good else None), ok, [bad for _, bad in items if bad]


def default_workers() -> int:
    return min(WORKERS, os.cpu_count() or 1)


class FolderLoader(BatchLoader):
    """Batches of a :class:`~convzoo.data.folder.FolderIndex` read file by file in
    ``num_workers`` DataLoader workers (default :func:`default_workers`; 0: in this process),
    with the interface of :class:`~convzoo.data.loader.DeviceLoader` (same parameters).

    A file that fails to decode raises :class:`~convzoo.data.image_file.BadImage` naming it; with
    the index's ``skip_bad_images`` it is dropped from its batch (refilled at the end with
    padding, which ``valid`` does not count) and recorded in ``bad_images``. Under sharding
    ``global_valid`` then only discounts this rank's skipped files.
    """

    def __init__(
        self, data: FolderIndex, batch_size: int, *, num_workers: int | None = None, **kw: Any
    ) -> None:
        super().__init__(data, batch_size, channels=data.in_channels, **kw)
        self.num_workers = default_workers() if num_workers is None else num_workers

    @property
    def bad_images(self) -> dict[str, str]:
        """Unreadable files met so far (path -> reason)."""
        return self.data.bad_images

    def uint8_batches(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, int, int]]:
        """``(step, uint8 images, labels, valid, global_valid)`` for the rest of the epoch, on
        the CPU, unreadable files dropped (or raised)."""
        shards = list(self.steps())
        loader = torch.utils.data.DataLoader(
            _Files(self.data),
            batch_sampler=[idx.tolist() for _, idx, _, _ in shards],
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            # its own generator: a DataLoader otherwise draws its workers' seed from torch's
            # global one, which dropout draws from (a resumed run would drift)
            generator=torch.Generator(),
        )
        for (step, idx, valid, global_valid), (x, ok, bad) in zip(shards, loader):
            y = self.data.labels[idx]
            if bad:
                x, y, valid, global_valid = self._drop(step, x, y, ok, bad, valid, global_valid)
            yield step, x, y, valid, global_valid

    def __iter__(self) -> Iterator[Batch]:
        for step, x, y, valid, global_valid in self.uint8_batches():
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            yield self.finish_batch(x, y, valid, global_valid, step)

    def _drop(self, step, x, y, ok, bad, valid, global_valid):
        if not self.data.skip_bad_images:
            raise BadImage(*bad[0])
        new = {p: r for p, r in bad if p not in self.bad_images}
        self.bad_images.update(new)
        log_skipped(new, self.data.source)
        if x is None:
            raise DataError(f"{self.data.source}: every image of step {step} is unreadable")
        real_bad = int((~ok[:valid]).sum())
        width = len(ok)
        y = y[ok]
        if len(y) < width:  # refill at the end with padding, as sharding does
            fill = width - len(y)
            x = torch.cat([x, x[:1].expand(fill, *x.shape[1:])])
            y = torch.cat([y, y[:1].expand(fill)])
        return x, y, valid - real_bad, global_valid - real_bad
