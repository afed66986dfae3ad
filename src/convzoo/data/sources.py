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
from typing import TYPE_CHECKING, Any, Protocol

from ..catalog import DEFAULT_DATASET, FILES_PREFIXES
from ..errors import ConvzooError, UnknownNameError
from .cifar import CifarSource
from .dataset import ImageDataset
from .files import SPLITS, SYSTEM_ROOTS, default_root, system_roots
from .idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, IdxSource
from .sequences import ARCHIVES, SequenceDataset, SequenceSource

if TYPE_CHECKING:
    from .folder import FolderIndex

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
FOLDER_PREFIX, CSV_PREFIX = FILES_PREFIXES


def absolute_name(name: str) -> str:
    """``folder:PATH`` / ``csv:FILE`` with the path made absolute (other names unchanged): a
    run records the data set it was trained on, and ``evaluate`` must find it from anywhere."""
    if not name.startswith(FILES_PREFIXES):
        return name
    kind, _, path = name.partition(":")
    return f"{kind}:{Path(path).expanduser().absolute()}"


def dataset_names() -> list[str]:
    """The named data sets, and the folder and labels-file forms."""
    return [*SOURCES, f"{FOLDER_PREFIX}PATH", f"{CSV_PREFIX}FILE", *(f"{a}:NAME" for a in ARCHIVES)]


def index_files(name: str, split: str, **kwargs: Any) -> FolderIndex:
    """The index of ``split`` of ``folder:PATH`` or ``csv:FILE`` (keywords: channels,
    image_size, skip_bad_images)."""
    from .folder import index_folder
    from .labels_file import index_csv

    kind, _, path = name.partition(":")
    return (index_folder if kind + ":" == FOLDER_PREFIX else index_csv)(path, split, **kwargs)


def get_source(name: str) -> Source:
    if name.partition(":")[0] in ARCHIVES:
        return SequenceSource(name)
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown data set {name!r}{_files_hint(name)}; known: {', '.join(dataset_names())}"
        ) from None


def _files_hint(name: str) -> str:
    """`` (a folder: did you mean folder:NAME?)`` for a folder (``csv:`` for a .csv file)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return f" (a folder: did you mean {FOLDER_PREFIX}{name}?)"
    is_csv = path.is_file() and path.suffix.lower() == ".csv"
    return f" (a labels file: did you mean {CSV_PREFIX}{name}?)" if is_csv else ""


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
    in_memory: str = "auto",
) -> ImageDataset | SequenceDataset | FolderIndex:
    """Load one split of a data set, checked (see the module docstring).

    ``root`` is the data directory (default ``$CONVZOO_DATA`` or ``~/.cache/convzoo``);
    ``download=False`` never touches the network. ``channels``, ``image_size``,
    ``skip_bad_images`` and ``in_memory`` apply to ``folder:PATH`` and ``csv:FILE`` sets only
    (:mod:`convzoo.data.folder`): in memory when they fit, else a
    :class:`~convzoo.data.folder.FolderIndex` to stream.
    """
    _check_split(split)
    if name.startswith(FILES_PREFIXES):
        from .folder import place

        index = index_files(
            name, split, channels=channels, image_size=image_size, skip_bad_images=skip_bad_images
        )
        return place([index], in_memory)[0][0]
    source = get_source(name)
    given = {
        "channels": channels,
        "image_size": image_size,
        "skip_bad_images": skip_bad_images or None,
        "in_memory": None if in_memory == "auto" else in_memory,
    }
    if extra := [k for k, v in given.items() if v is not None]:
        raise ConvzooError(
            f"{', '.join(extra)} only apply to folder: and csv: data sets, not {name}"
        )
    return source.load(Path(root).expanduser() if root else default_root(), split, download)


def fetch_dataset(
    name: str = DEFAULT_DATASET, root: str | os.PathLike | None = None, download: bool = True
) -> Path:
    """Make sure both splits of ``name`` are in the data directory; the folder holding them."""
    if name.startswith(FILES_PREFIXES):
        raise ConvzooError(f"{name}: your own images are read where they are; nothing to fetch")
    source = get_source(name)
    return source.fetch(Path(root).expanduser() if root else default_root(), SPLITS, download)
