"""Image folders: ``PATH/<class>/<image>``, loaded into memory or streamed by DataLoader workers.

Layout: one sub-folder per class (sorted names are the classes, as torchvision's
``ImageFolder``). With ``PATH/train`` and ``PATH/test`` sub-folders those are the splits;
otherwise the images are split per class, :data:`TEST_FRACTION` of each class (rounded, at
least one image left for training) going to ``test``, chosen by ``torch.randperm`` seeded with
:data:`SPLIT_SEED` — the same split on every machine and every run.

Mixed files are made uniform:

- channels: every image is converted with PIL to ``channels`` (1: ``L``, 3: ``RGB``; alpha is
  dropped as torchvision's loader does). By default the majority decides: 1 if most files are
  grayscale (modes ``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``), else 3 (a tie keeps colour).
- size: every image is resized (bilinear, antialiased) to the most common (H, W) among the
  files, ties going to the smaller; ``image_size`` sets it instead.

Both are read from the file headers only (a fast scan that also finds files that are not
images). A file that cannot be decoded raises :class:`DataError` naming it; with
``skip_bad_images=True`` it is left out, and the count and the list are logged (logger
``convzoo.data``) and kept in ``bad_images``.

In memory or streamed: :func:`load_folder` (what ``load_dataset("folder:PATH")`` calls) decodes
the whole split into an :class:`ImageDataset` when it fits in ``max_bytes`` of uint8 pixels
(default :data:`MEMORY_LIMIT_BYTES`, 1 GiB: 20,000 RGB images of 224 x 224 px) and refuses
larger ones, pointing to :class:`FolderLoader`, which reads files per batch in DataLoader
workers and presents the same interface as :class:`~convzoo.data.loader.DeviceLoader`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:  # imported where used: importing torchvision is slow (see data/sources.py)
    from torchvision.transforms import v2

from ..errors import DataError
from .augment import folder_transforms
from .dataset import ImageDataset
from .loader import Augment, Batch, DeviceLoader, derive_seed

__all__ = [
    "MEMORY_LIMIT_BYTES",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "FolderIndex",
    "FolderLoader",
    "index_folder",
    "load_folder",
]

log = logging.getLogger("convzoo.data")

#: largest split (uint8 pixels, bytes) ``load_folder`` decodes into memory
MEMORY_LIMIT_BYTES = 1 << 30
#: share of each class that goes to ``test`` when a folder has no train/test sub-folders
TEST_FRACTION = 0.2
#: seed of that split
SPLIT_SEED = 0
#: PIL modes counted as grayscale when voting on the channel count
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
#: threads that read file headers and decode images for the in-memory load (PIL frees the GIL)
IO_THREADS = 8
#: errors PIL raises on files that are not images, are truncated or are corrupt
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class BadImage(DataError):
    """One image file that cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"{path}: cannot read the image ({reason}); remove or replace it, or leave "
            "unreadable images out with skip_bad_images=True (--skip-bad-images)"
        )
        self.path, self.reason = path, reason


def _reason(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def probe(path: str) -> tuple[str, tuple[int, int]]:
    """The PIL mode and (H, W) of an image file, from its header only."""
    try:
        with Image.open(path) as img:
            return img.mode, (img.height, img.width)
    except _IMAGE_ERRORS as e:
        raise BadImage(path, _reason(e)) from None


def decode(path: str, channels: int) -> torch.Tensor:
    """The image at ``path`` as uint8 ``channels`` x H x W (raises :class:`BadImage`)."""
    try:
        with Image.open(path) as img:
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")  # PIL's advice for palette images with transparency
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except _IMAGE_ERRORS as e:
        raise BadImage(path, _reason(e)) from None
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def _fit(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == size:
        return img
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(img, list(size), antialias=True)


# -- the index --------------------------------------------------------------------------------
@dataclass
class FolderIndex:
    """The files of one split of an image folder, with what a trainer asks of a data set
    (``classes``, ``num_classes``, ``in_channels``, ``image_size``, ``len``) without pixels."""

    root: Path
    split: str
    classes: list[str]
    samples: list[tuple[str, int]]
    channels: int = 3
    size: tuple[int, int] = (0, 0)
    #: files left out as unreadable: path -> reason
    bad_images: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def name(self) -> str:
        return f"folder:{self.root}"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)


def _class_files(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    classes = sorted(
        e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
    )
    if not classes:
        raise DataError(
            f"{folder}: no class folders (expected {folder}/<class>/<image files>, "
            f"or train/ and test/ folders laid out so)"
        )
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    samples = make_dataset(
        str(folder), {c: i for i, c in enumerate(classes)}, IMG_EXTENSIONS, allow_empty=True
    )
    counts = Counter(label for _, label in samples)
    if empty := [classes[i] for i in range(len(classes)) if counts[i] == 0]:
        raise DataError(
            f"{folder / empty[0]}: class folder without images ({len(empty)} such: "
            f"{', '.join(empty[:5])}); add images ({', '.join(IMG_EXTENSIONS)}) or remove it"
        )
    return classes, samples


def _split(samples: list[tuple[str, int]], split: str) -> list[tuple[str, int]]:
    """The seeded, stratified ``split`` of a folder without train/test sub-folders."""
    g = torch.Generator().manual_seed(SPLIT_SEED)
    labels = torch.tensor([label for _, label in samples])
    chosen = []
    for c in range(int(labels.max()) + 1):
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = min(round(len(idx) * TEST_FRACTION), len(idx) - 1)
        chosen.append(idx[:n_test] if split == "test" else idx[n_test:])
    keep = torch.cat(chosen).sort().values
    return [samples[i] for i in keep.tolist()]


def _scan(
    samples: list[tuple[str, int]], skip_bad_images: bool
) -> tuple[list[tuple[str, int]], list[tuple[str, tuple[int, int]]], dict[str, str]]:
    """Headers of every file: the readable samples, their (mode, size), the unreadable ones."""

    def one(path: str):
        try:
            return probe(path)
        except BadImage as e:
            if not skip_bad_images:
                raise
            return e

    with ThreadPoolExecutor(IO_THREADS) as pool:
        results = list(pool.map(one, [p for p, _ in samples]))
    good, headers, bad = [], [], {}
    for sample, r in zip(samples, results):
        if isinstance(r, BadImage):
            bad[r.path] = r.reason
        else:
            good.append(sample)
            headers.append(r)
    return good, headers, bad


def _log_skipped(bad: dict[str, str], where: Path) -> None:
    if bad:
        listing = "; ".join(f"{p} ({r})" for p, r in bad.items())
        log.warning("skipped %d unreadable image(s) in %s: %s", len(bad), where, listing)


def index_folder(
    path: str | os.PathLike,
    split: str = "train",
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    skip_bad_images: bool = False,
) -> FolderIndex:
    """The files of ``split``, the channel count and common size (see the module docstring).

    Every file's header is read once (threads; about 0.1 ms a file) to vote the channels and
    size and to find files that are not images; with both ``channels`` and ``image_size``
    given the scan is skipped and bad files show up only when they are decoded.
    """
    index = _index(path, split, channels, image_size, skip_bad_images)
    _log_skipped(index.bad_images, index.root)
    return index


def _index(
    path: str | os.PathLike,
    split: str,
    channels: int | None,
    image_size: int | tuple[int, int] | None,
    skip_bad_images: bool,
) -> FolderIndex:
    root = Path(path).expanduser()
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    splits_present = (root / "train").is_dir() and (root / "test").is_dir()
    if splits_present:
        classes, samples = _class_files(root / split)
        train_classes = classes if split == "train" else _class_files(root / "train")[0]
        if classes != train_classes:
            raise DataError(
                f"{root / split}: classes {classes} differ from train's {train_classes}"
            )
    else:
        classes, samples = _class_files(root)
        samples = _split(samples, split)
    size = None if image_size is None else _as_size(image_size)
    bad: dict[str, str] = {}
    if channels is None or size is None:
        samples, headers, bad = _scan(samples, skip_bad_images)
        if not samples:
            raise DataError(f"{root}: none of the {len(bad)} image files can be read")
        if channels is None:
            gray = sum(mode in GRAY_MODES for mode, _ in headers)
            channels = 1 if gray > len(headers) - gray else 3
        if size is None:
            counts = Counter(s for _, s in headers)
            top = max(counts.values())
            size = min((s for s, n in counts.items() if n == top), key=lambda s: (s[0] * s[1], s))
    return FolderIndex(root, split, classes, samples, channels, size, bad)


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


# -- in memory --------------------------------------------------------------------------------
def load_folder(
    path: str | os.PathLike,
    split: str = "train",
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    skip_bad_images: bool = False,
    max_bytes: int | None = None,
) -> ImageDataset:
    """Decode one split of an image folder into an :class:`ImageDataset` (uint8, common size
    and channels), refusing splits over ``max_bytes`` (default :data:`MEMORY_LIMIT_BYTES`)."""
    index = _index(path, split, channels, image_size, skip_bad_images)
    h, w = index.size
    need = len(index) * index.channels * h * w
    limit = MEMORY_LIMIT_BYTES if max_bytes is None else max_bytes
    if need > limit:
        raise DataError(
            f"{index.root}: {len(index):,} images of {index.channels}x{h}x{w} need "
            f"{need / 2**30:.1f} GiB in memory, over the limit of {limit / 2**30:.1f} GiB; "
            "stream it with convzoo.data.FolderLoader, or pass max_bytes or a smaller image_size"
        )

    def one(sample: tuple[str, int]) -> torch.Tensor | BadImage:
        try:
            return _fit(decode(sample[0], index.channels), index.size)
        except BadImage as e:
            if not skip_bad_images:
                raise
            return e

    with ThreadPoolExecutor(IO_THREADS) as pool:
        results = list(pool.map(one, index.samples))
    index.bad_images.update({r.path: r.reason for r in results if isinstance(r, BadImage)})
    _log_skipped(index.bad_images, index.root)  # one message for the scan and the decoding
    keep = [i for i, r in enumerate(results) if not isinstance(r, BadImage)]
    if not keep:
        raise DataError(f"{index.root}: none of the image files of {split} can be read")
    images = torch.stack([results[i] for i in keep])
    labels = index.labels[keep]
    return ImageDataset(
        images, labels, index.classes, name=index.name, split=split, source=str(index.root)
    )


# -- streamed ---------------------------------------------------------------------------------
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
            img = _fit(decode(path, self.channels), self.size)
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


class FolderLoader:
    """Batches of an image folder read file by file in DataLoader workers, with the interface
    of :class:`~convzoo.data.loader.DeviceLoader`: iterating yields :class:`Batch` (x float
    N x C x H x W on ``device``, resized and normalized), ``len`` is the steps per epoch, and
    ``set_epoch(epoch, start_step)`` selects a deterministic order from ``(seed, epoch)``.
    Order and sharding are DeviceLoader's own code, so both loaders split and resume alike.

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

    # One implementation of epoch order, sharding and step counts: DeviceLoader's (they read
    # only len(self.data), batch_size, world_size, rank, shuffle, seed, drop_last).
    global_batch_size = DeviceLoader.global_batch_size
    __len__ = DeviceLoader.__len__
    samples_per_epoch = DeviceLoader.samples_per_epoch
    set_epoch = DeviceLoader.set_epoch
    order = DeviceLoader.order
    shard = DeviceLoader.shard
    finish_batch = DeviceLoader.finish_batch

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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        if isinstance(path, FolderIndex):
            self.data = path
        else:
            self.data = index_folder(
                path,
                split,
                channels=channels,
                image_size=load_size,
                skip_bad_images=skip_bad_images,
            )
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.image_size = image_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        self.skip_bad_images = skip_bad_images
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        self.augment = None if isinstance(augment, str) else augment
        transform = folder_transforms(augment, self.data.size) if isinstance(augment, str) else None
        self.files = _Files(self.data.samples, self.data.channels, self.data.size, transform)
        shape = (1, self.data.channels, 1, 1)
        self.mean = None if mean is None else torch.tensor(mean, device=self.device).view(shape)
        self.std = None if std is None else torch.tensor(std, device=self.device).view(shape)
        self.epoch = 0
        self.start_step = 0

    @property
    def bad_images(self) -> dict[str, str]:
        """Unreadable files met so far (path -> reason), from the scan and from decoding."""
        return self.data.bad_images

    def _shards(self) -> list[tuple[int, torch.Tensor, int, int]]:
        """(step, this rank's indices, real count, global real count) for the rest of the
        epoch; the same code path as DeviceLoader.__iter__."""
        order, b, out = self.order(), self.global_batch_size, []
        for step in range(self.start_step, len(self)):
            step_indices = order[step * b : (step + 1) * b]
            idx, valid = self.shard(step_indices)
            out.append((step, idx, valid, len(step_indices)))
        return out

    def __iter__(self) -> Iterator[Batch]:
        shards = self._shards()
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
            _log_skipped(new, self.data.root)
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
