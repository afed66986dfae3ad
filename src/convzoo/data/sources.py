"""Named image sets: where their files come from, and loading them checked into memory.

``load_dataset(name, split)`` returns an :class:`ImageDataset` (uint8 N x C x H x W, int64
labels, class names). Names: ``fashion-mnist`` (the default everywhere), ``mnist``, ``cifar10``
and ``folder:PATH`` (an image folder, see :mod:`convzoo.data.folder`); ``ucr:NAME`` and
``uea:NAME`` are time series (a :class:`~convzoo.data.sequences.SequenceDataset`, see
:mod:`convzoo.data.sequences`).

Where the files come from, first hit wins:

1. the data directory: ``root``, else ``$CONVZOO_DATA``, else ``~/.cache/convzoo``, in
   torchvision's layout (``FashionMNIST/raw/train-images-idx3-ubyte``, ``MNIST/raw/...``,
   ``cifar-10-batches-py/``), so torchvision reads it and a directory torchvision filled works;
2. system copies: ``/usr/share/datasets/fashion-mnist/*.gz`` (Debian's
   ``dataset-fashion-mnist``) and ``/usr/share/datasets/mnist/`` — decompressed once into the
   data directory (temp file, then ``os.replace``, so a crash never leaves half a file);
   ``$CONVZOO_SYSTEM_DATA`` (``os.pathsep``-separated; empty: none) replaces
   :data:`SYSTEM_ROOTS`, which is how the tests stay hermetic;
3. a download through torchvision's mirrors with its checksums, into a temporary folder of the
   data directory that is removed whatever happens (never with ``download=False`` or
   ``$CONVZOO_OFFLINE`` set to a non-empty value other than ``0``).

The readers: :mod:`.idx` (Fashion-MNIST, MNIST; our own IDX reader), :mod:`.cifar` (CIFAR-10,
read by torchvision), :mod:`.sequences` (UCR/UEA time series); :mod:`.files` holds the plumbing
they share. Around the readers we add the checks they lack
(images = labels, labels in range, CIFAR checksums named per file) and turn every failure into
a one-line :class:`~convzoo.errors.DataError` that names the file and the fix.
Loading Fashion-MNIST's training split from the decompressed files takes about 0.1 s, so the
tensors are not cached beyond the files themselves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ..errors import ConvzooError, UnknownNameError
from .cifar import CifarSource
from .dataset import ImageDataset
from .files import SPLITS, SYSTEM_ROOTS, default_root, system_roots
from .idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, IdxSource
from .sequences import ARCHIVES, SequenceDataset, SequenceSource

__all__ = [
    "DEFAULT_DATASET",
    "SPLITS",
    "SYSTEM_ROOTS",
    "dataset_names",
    "default_root",
    "fetch_dataset",
    "load_dataset",
    "system_roots",
]

DEFAULT_DATASET = "fashion-mnist"


class Source(Protocol):
    name: str

    def fetch(self, root: Path, splits: tuple[str, ...], download: bool) -> Path: ...

    def load(self, root: Path, split: str, download: bool) -> ImageDataset | SequenceDataset: ...


#: every named data set (``folder:PATH`` is handled apart)
SOURCES: dict[str, Source] = {
    "fashion-mnist": IdxSource(
        "fashion-mnist",
        "FashionMNIST",
        FASHION_MNIST_CLASSES,
        "fashion-mnist",
        "dataset-fashion-mnist",
    ),
    "mnist": IdxSource("mnist", "MNIST", MNIST_CLASSES, "mnist"),
    "cifar10": CifarSource(),
}
FOLDER_PREFIX = "folder:"


def absolute_name(name: str) -> str:
    """``folder:PATH`` with ``PATH`` made absolute (other names unchanged): a run records the
    data set it was trained on, and ``evaluate`` must find it from any directory."""
    if not name.startswith(FOLDER_PREFIX):
        return name
    path = Path(name[len(FOLDER_PREFIX) :]).expanduser()
    return FOLDER_PREFIX + str(path.absolute())


def dataset_names() -> list[str]:
    """The named data sets, and the folder form."""
    return [*SOURCES, f"{FOLDER_PREFIX}PATH", *(f"{a}:NAME" for a in ARCHIVES)]


def get_source(name: str) -> Source:
    if name.partition(":")[0] in ARCHIVES:
        return SequenceSource(name)
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown data set {name!r}; known: {', '.join(dataset_names())}"
        ) from None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UnknownNameError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


def load_dataset(
    name: str = DEFAULT_DATASET,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = True,
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    skip_bad_images: bool = False,
    max_bytes: int | None = None,
) -> ImageDataset | SequenceDataset:
    """Load one split of a data set into memory, checked (see the module docstring).

    ``root`` is the data directory (default ``$CONVZOO_DATA`` or ``~/.cache/convzoo``);
    ``download=False`` never touches the network. ``channels``, ``image_size``,
    ``skip_bad_images`` and ``max_bytes`` apply to ``folder:PATH`` sets only
    (:func:`convzoo.data.folder.load_folder`).
    """
    _check_split(split)
    if name.startswith(FOLDER_PREFIX):
        from .folder import load_folder

        return load_folder(
            name[len(FOLDER_PREFIX) :],
            split,
            channels=channels,
            image_size=image_size,
            skip_bad_images=skip_bad_images,
            max_bytes=max_bytes,
        )
    source = get_source(name)
    given = {
        "channels": channels,
        "image_size": image_size,
        "skip_bad_images": skip_bad_images or None,
        "max_bytes": max_bytes,
    }
    if extra := [k for k, v in given.items() if v is not None]:
        raise ConvzooError(f"{', '.join(extra)} only apply to folder: data sets, not {name}")
    return source.load(Path(root).expanduser() if root else default_root(), split, download)


def fetch_dataset(
    name: str = DEFAULT_DATASET, root: str | os.PathLike | None = None, download: bool = True
) -> Path:
    """Make sure both splits of ``name`` are in the data directory; the folder holding them."""
    if name.startswith(FOLDER_PREFIX):
        raise ConvzooError(f"{name}: image folders are read where they are; nothing to fetch")
    source = get_source(name)
    return source.fetch(Path(root).expanduser() if root else default_root(), SPLITS, download)
