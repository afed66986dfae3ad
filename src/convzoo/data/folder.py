"""Your own images: ``folder:PATH`` (``PATH/<class>/<image>``) and ``csv:FILE`` (a labels file,
:mod:`convzoo.data.labels_file`), indexed, then decoded into memory when they fit or streamed
from disk by DataLoader workers (:mod:`convzoo.data.folder_loader`) when they do not.

Layout: one sub-folder per class (sorted names are the classes, as torchvision's
``ImageFolder``). With ``PATH/train`` and ``PATH/test`` sub-folders those are the splits;
otherwise the images are split per class, :data:`TEST_FRACTION` of each class (rounded, at
least one image left for training) going to ``test``, chosen by ``torch.randperm`` seeded with
:data:`SPLIT_SEED` — the same split on every machine and every run.

Mixed files are made uniform, the same way in memory and streamed, so both give the same
pixels, batches and results:

- channels: every image is converted to ``channels`` (1 or 3; alpha is dropped as
  torchvision's loader does). By default the majority of the training files decides: 1 if
  most are grayscale (modes ``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``), else 3.
- size: every image is resized (bilinear, antialiased) to the training size when it is known
  (``image_size``), else to the most common (H, W) among the files, ties going to the smaller.

The vote reads the file headers only (a fast scan that also finds files that are not images).
A file that cannot be decoded raises :class:`BadImage` naming it; with
``skip_bad_images=True`` it is left out, logged (logger ``convzoo.data``) and kept in
``bad_images`` — when the whole set is read into memory, or when a streamed batch meets it.

In memory or streamed (:func:`place`): the decoded uint8 pixels of every split used, at the
training size and after any subset, are compared with :func:`memory_budget` (a quarter of the
memory available); ``in_memory="yes"``/``"no"`` forces either.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..catalog import IN_MEMORY
from ..errors import DataError
from .dataset import ImageDataset, LabelledData, pixel_sums, stats_from_sums
from .folder_loader import FolderLoader
from .image_file import GRAY_MODES, BadImage, load_image, log_skipped, probe

__all__ = [
    "IN_MEMORY",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "FolderIndex",
    "index_folder",
    "load_folder",
    "memory_budget",
    "place",
]

#: share of each class that goes to ``test`` when a folder has no train/test sub-folders
TEST_FRACTION = 0.2
#: seed of that split
SPLIT_SEED = 0
#: share of the available memory that ``in_memory="auto"`` lets decoded pixels take
MEMORY_SHARE = 0.25
#: threads that read file headers and decode images for the in-memory load (the decoders free
#: the GIL)
IO_THREADS = 8


# -- the index --------------------------------------------------------------------------------
class _Decoded:
    """``index.images``: indexing decodes the files asked for (an int: C x H x W; a slice,
    list or tensor: a stacked batch), so code written for an in-memory set reads a few images
    of a streamed one."""

    def __init__(self, index: FolderIndex) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: Any) -> torch.Tensor:
        ix = self.index
        if isinstance(key, (int, np.integer)) or (torch.is_tensor(key) and key.dim() == 0):
            return load_image(str(ix.paths[int(key)]), ix.channels, ix.size)
        picked = np.arange(len(ix))[key.numpy() if isinstance(key, torch.Tensor) else key]
        return torch.stack([self[int(i)] for i in picked])


@dataclass
class FolderIndex(LabelledData):
    """Image files with their labels, not decoded: what a trainer asks of a data set
    (``classes``, ``num_classes``, ``in_channels``, ``image_size``, ``labels``, ``subset``,
    ``len``) without pixels. ``images[i]`` decodes file ``i``; a
    :class:`~convzoo.data.folder_loader.FolderLoader` streams batches of it."""

    paths: np.ndarray  #: the files (a numpy array of str, indexable like the labels)
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str = "train"
    source: str = ""
    note: str = ""  #: how the set is held (streamed, and why), for run headers
    channels: int = 3
    size: tuple[int, int] = (0, 0)  #: (H, W) every image is resized to when decoded
    skip_bad_images: bool = False
    #: files left out as unreadable, path -> reason (shared by the subsets of one index)
    bad_images: dict[str, str] = field(default_factory=dict)
    #: rows a labels file marks ``val`` (the validation split), or ``None``
    val_mask: torch.Tensor | None = None
    inputs_field: ClassVar[str] = "paths"

    def __post_init__(self) -> None:
        self.paths = np.asarray(self.paths, dtype=str)
        self._check_labels()

    @property
    def root(self) -> Path:
        return Path(self.source)

    @property
    def samples(self) -> list[tuple[str, int]]:
        return list(zip(self.paths.tolist(), self.labels.tolist()))

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size

    @property
    def images(self) -> _Decoded:
        return _Decoded(self)

    def decoded(self, images: torch.Tensor, keep: torch.Tensor) -> ImageDataset:
        """The in-memory data set of the files ``keep`` indexes, their pixels ``images``."""
        return ImageDataset(
            images,
            self.labels[keep],
            self.classes,
            name=self.name,
            split=self.split,
            source=self.source,
            val_mask=None if self.val_mask is None else self.val_mask[keep],
        )

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded uint8 pixels."""
        return len(self) * self.channels * self.size[0] * self.size[1]

    def stats(
        self,
        rank: int = 0,
        world_size: int = 1,
        reduce: Callable[[torch.Tensor], Any] | None = None,
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the pixels in [0, 1], from one streamed pass; exactly
        those of the same set in memory (the sums are integers). Under data parallelism each
        rank reads its share and ``reduce`` sums the counts over ranks in place."""
        loader = FolderLoader(self, 256, rank=rank, world_size=world_size)
        sums = torch.zeros(2 * self.channels + 1, dtype=torch.int64)
        for _, x, _, valid, _ in loader.uint8_batches():
            sums += torch.cat([pixel_sums(x[:valid]).flatten(), torch.tensor([valid])])
        if reduce is not None:
            reduce(sums)
        pixels = int(sums[-1]) * self.size[0] * self.size[1]
        return stats_from_sums(sums[:-1].view(2, self.channels), pixels)


def val_last(train: FolderIndex, val: FolderIndex | None) -> FolderIndex:
    """One index of ``train``'s files followed by ``val``'s, ``val_mask`` marking the latter:
    decoded so, the validation split is a view of the same tensor, not a second copy."""
    if val is None:
        return train
    mask = torch.arange(len(train) + len(val)) >= len(train)
    paths = np.concatenate([train.paths, val.paths])
    return replace(train, paths=paths, labels=torch.cat([train.labels, val.labels]), val_mask=mask)


def image_files(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> list[str]:
    """The image files under ``folder`` (recursively), found as torchvision's ``ImageFolder``
    finds them (by extension, in its order), except that hidden files and folders
    (``.x.png``, macOS's ``._x.png``) are left out and symbolic links to folders are followed
    only out of the data set ``root`` (default ``folder``), each folder once: a link back
    into it (a loop, or one class pointing into another) cannot multiply or mislabel images,
    as a loop in torchvision's walk turned 120 files into 37,720."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    inside = os.path.realpath(root if root is not None else folder)
    seen: set[tuple[int, int]] = set()
    found: list[tuple[str, list[str]]] = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(top)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = [d for d in dirs if not d.startswith(".") and not _links_into(top, d, inside)]
        keep = [f for f in files if not f.startswith(".") and f.lower().endswith(IMG_EXTENSIONS)]
        found.append((top, sorted(keep)))
    # torchvision's order (folders sorted by path, then files by name): the same split as before
    return [os.path.join(top, f) for top, files in sorted(found) for f in files]


def _links_into(top: str, name: str, inside: str) -> bool:
    path = os.path.join(top, name)
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    return target == inside or target.startswith(inside + os.sep)


def _class_files(folder: Path, root: Path | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and (file, label) of ``folder`` (a data set, or its split ``root/split``)."""
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
    if len(classes) == 1:
        raise DataError(
            f"{folder}: only one class folder ({classes[0]}); a classifier needs two or more "
            f"(one folder of images per class)"
        )
    from torchvision.datasets.folder import IMG_EXTENSIONS

    samples = [
        (f, i) for i, c in enumerate(classes) for f in image_files(folder / c, root or folder)
    ]
    counts = Counter(label for _, label in samples)
    if empty := [classes[i] for i in range(len(classes)) if counts[i] == 0]:
        raise DataError(
            f"{folder / empty[0]}: class folder without images ({len(empty)} such: "
            f"{', '.join(empty[:5])}); add images ({', '.join(IMG_EXTENSIONS)}) or remove it"
        )
    return classes, samples


def split_of(labels: torch.Tensor, split: str) -> torch.Tensor:
    """The sorted indices of the seeded, stratified ``split`` of a set without one."""
    g = torch.Generator().manual_seed(SPLIT_SEED)
    chosen = []
    for c in range(int(labels.max()) + 1):
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = min(round(len(idx) * TEST_FRACTION), len(idx) - 1)
        chosen.append(idx[:n_test] if split == "test" else idx[n_test:])
    return torch.cat(chosen).sort().values


def _scan(paths: Sequence[str], skip_bad_images: bool):
    """Headers of every file: the readable ones' (mode, size), and the unreadable ones."""

    def one(path: str):
        try:
            return probe(path)
        except BadImage as e:
            if not skip_bad_images:
                raise
            return e

    with ThreadPoolExecutor(IO_THREADS) as pool:
        results = list(pool.map(one, paths))
    good = [i for i, r in enumerate(results) if not isinstance(r, BadImage)]
    bad = {r.path: r.reason for r in results if isinstance(r, BadImage)}
    return good, [results[i] for i in good], bad


def make_index(
    paths: list[str],
    labels: list[int],
    classes: list[str],
    *,
    name: str,
    split: str,
    source: str,
    channels: int | None,
    image_size: int | tuple[int, int] | None,
    skip_bad_images: bool,
    val_mask: list[bool] | None = None,
) -> FolderIndex:
    """The index of the files given: the channel count and size voted from their headers
    unless both are given (see the module docstring)."""
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    size = None if image_size is None else _as_size(image_size)
    bad: dict[str, str] = {}
    if channels is None or size is None:
        good, headers, bad = _scan(paths, skip_bad_images)
        if not good:
            raise DataError(f"{source}: none of the {len(bad)} image files can be read")
        paths, labels = [paths[i] for i in good], [labels[i] for i in good]
        val_mask = None if val_mask is None else [val_mask[i] for i in good]
        if channels is None:
            gray = sum(mode in GRAY_MODES for mode, _ in headers)
            channels = 1 if gray > len(headers) - gray else 3
        if size is None:
            counts = Counter(s for _, s in headers)
            top = max(counts.values())
            size = min((s for s, n in counts.items() if n == top), key=lambda s: (s[0] * s[1], s))
    index = FolderIndex(
        np.asarray(paths, dtype=str),
        torch.tensor(labels, dtype=torch.int64),
        classes,
        name=name,
        split=split,
        source=source,
        channels=channels,
        size=size,
        skip_bad_images=skip_bad_images,
        bad_images=bad,
        val_mask=None if val_mask is None else torch.tensor(val_mask, dtype=torch.bool),
    )
    return index


def index_folder(
    path: str | os.PathLike,
    split: str = "train",
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    skip_bad_images: bool = False,
) -> FolderIndex:
    """The files of ``split`` of an image folder, its channel count and size."""
    root = Path(path).expanduser()
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes, samples = _class_files(root / split, root)
        train_classes = classes if split == "train" else _class_files(root / "train", root)[0]
        if classes != train_classes:
            raise DataError(
                f"{root / split}: classes {classes} differ from train's {train_classes}"
            )
    else:
        classes, samples = _class_files(root)
        keep = split_of(torch.tensor([label for _, label in samples]), split)
        samples = [samples[i] for i in keep.tolist()]
        if not samples:
            raise DataError(
                f"{root}: no image is left for the {split} split: each class needs 3 images or "
                f"more ({TEST_FRACTION:.0%} of each goes to test); add images, or give "
                f"train/ and test/ folders"
            )
    return make_index(
        [p for p, _ in samples],
        [label for _, label in samples],
        classes,
        name=f"folder:{root}",
        split=split,
        source=str(root),
        channels=channels,
        image_size=image_size,
        skip_bad_images=skip_bad_images,
    )


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


# -- in memory or streamed --------------------------------------------------------------------
def read_images(index: FolderIndex) -> ImageDataset:
    """Decode every file of ``index`` into one preallocated uint8 tensor (one copy of the
    pixels: no list of images to stack)."""
    c, (h, w) = index.channels, index.size
    images = torch.empty((len(index), c, h, w), dtype=torch.uint8)

    def one(i: int) -> BadImage | None:
        try:
            images[i] = load_image(str(index.paths[i]), c, (h, w))
        except BadImage as e:
            if not index.skip_bad_images:
                raise
            return e
        return None

    with ThreadPoolExecutor(IO_THREADS) as pool:
        bad = [r for r in pool.map(one, range(len(index))) if r is not None]
    keep = torch.arange(len(index))
    if bad:
        new = {r.path: r.reason for r in bad}
        index.bad_images.update(new)
        keep = torch.tensor([i for i, p in enumerate(index.paths) if p not in new])
        if not len(keep):
            raise DataError(f"{index.source}: none of the image files of {index.split} can be read")
        for j, i in enumerate(keep.tolist()):  # close the gaps in place: still one copy
            if i != j:
                images[j] = images[i]
        images = images[: len(keep)]
    return index.decoded(images, keep)


def memory_budget() -> int:
    """Bytes of decoded pixels that ``in_memory="auto"`` keeps in memory: a quarter of the
    memory available now (the rest is for the network, its activations and the system)."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return int(available * MEMORY_SHARE)


def place(
    sets: Sequence[FolderIndex | None], in_memory: str = "auto", budget: int | None = None
) -> tuple[list[ImageDataset | FolderIndex | None], str]:
    """The indexed ``sets`` decoded into memory when their pixels (together) fit ``budget``
    (default :func:`memory_budget`) or ``in_memory="yes"``, else left to stream; and one line
    saying which and why."""
    if in_memory not in IN_MEMORY:
        raise DataError(f"in_memory must be one of {', '.join(IN_MEMORY)}, got {in_memory!r}")
    need = sum(s.nbytes for s in sets if s is not None)
    budget = memory_budget() if budget is None else budget
    fits = need <= budget
    keep = in_memory == "yes" or (in_memory == "auto" and fits)
    gib = f"{need / 2**30:.1f} GiB" if need >= 2**30 else f"{need / 2**20:.1f} MiB"
    if in_memory != "auto":
        why = f"--in-memory {in_memory}"
    else:
        why = f"{'within' if fits else 'over'} the {budget / 2**30:.1f} GiB memory budget"
    note = f"{'in memory' if keep else 'streamed from disk'} ({gib} of pixels, {why})"
    placed = [s if s is None or not keep else read_images(s) for s in sets]
    for s, index in zip(placed, sets):
        if s is not None:
            s.note = note
            log_skipped(index.bad_images, index.source)  # the scan's and the decoding's, once
    return placed, note


def load_folder(
    path: str | os.PathLike,
    split: str = "train",
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    skip_bad_images: bool = False,
    in_memory: str = "auto",
) -> ImageDataset | FolderIndex:
    """One split of an image folder: decoded into an :class:`ImageDataset` when it fits in
    memory (or ``in_memory="yes"``), else its :class:`FolderIndex`, to stream."""
    index = index_folder(
        path, split, channels=channels, image_size=image_size, skip_bad_images=skip_bad_images
    )
    return place([index], in_memory)[0][0]
