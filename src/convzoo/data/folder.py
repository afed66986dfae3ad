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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .dataset import ImageDataset

__all__ = [
    "MEMORY_LIMIT_BYTES",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "FolderIndex",
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


def too_many_pixels(img: Image.Image) -> str | None:
    """Why an opened image is refused as a decompression bomb (more pixels than PIL's
    ``MAX_IMAGE_PIXELS``, 89.5 M: a few kB of PNG can claim gigabytes), or ``None``. PIL only
    warns up to twice its limit; we refuse from the limit on, before decoding."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        return (
            f"{img.width}x{img.height} is {img.width * img.height:,} pixels, over PIL's "
            f"decompression-bomb limit of {limit:,}"
        )
    return None


def probe(path: str) -> tuple[str, tuple[int, int]]:
    """The PIL mode and (H, W) of an image file, from its header only."""
    try:
        with Image.open(path) as img:
            if bomb := too_many_pixels(img):
                raise BadImage(path, bomb)
            return img.mode, (img.height, img.width)
    except _IMAGE_ERRORS as e:
        raise BadImage(path, _reason(e)) from None


def decode(path: str, channels: int) -> torch.Tensor:
    """The image at ``path`` as uint8 ``channels`` x H x W (raises :class:`BadImage`)."""
    try:
        with Image.open(path) as img:
            if bomb := too_many_pixels(img):
                raise BadImage(path, bomb)
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")  # PIL's advice for palette images with transparency
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except _IMAGE_ERRORS as e:
        raise BadImage(path, _reason(e)) from None
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def fit_size(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
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


def log_skipped(bad: dict[str, str], where: Path) -> None:
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
    log_skipped(index.bad_images, index.root)
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
        classes, samples = _class_files(root / split, root)
        train_classes = classes if split == "train" else _class_files(root / "train", root)[0]
        if classes != train_classes:
            raise DataError(
                f"{root / split}: classes {classes} differ from train's {train_classes}"
            )
    else:
        classes, samples = _class_files(root)
        samples = _split(samples, split)
        if not samples:
            raise DataError(
                f"{root}: no image is left for the {split} split: each class needs 3 images or "
                f"more ({TEST_FRACTION:.0%} of each goes to test); add images, or give "
                f"train/ and test/ folders"
            )
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
            return fit_size(decode(sample[0], index.channels), index.size)
        except BadImage as e:
            if not skip_bad_images:
                raise
            return e

    with ThreadPoolExecutor(IO_THREADS) as pool:
        results = list(pool.map(one, index.samples))
    index.bad_images.update({r.path: r.reason for r in results if isinstance(r, BadImage)})
    log_skipped(index.bad_images, index.root)  # one message for the scan and the decoding
    keep = [i for i, r in enumerate(results) if not isinstance(r, BadImage)]
    if not keep:
        raise DataError(f"{index.root}: none of the image files of {split} can be read")
    images = torch.stack([results[i] for i in keep])
    labels = index.labels[keep]
    return ImageDataset(
        images, labels, index.classes, name=index.name, split=split, source=str(index.root)
    )
