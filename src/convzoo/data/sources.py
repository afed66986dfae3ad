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

IDX files (Fashion-MNIST, MNIST) are checked (magic and size against the header) and then read
by our own few lines, not torchvision's ``read_image_file``: once checked, the reading is one
``np.fromfile``, while importing torchvision costs 1 s on the 2-core CPU (half of what ``import
convzoo`` took while it did) and ``import convzoo`` took 6.2 s on the GPU machine then, in a
time-to-accuracy run aiming at 15 s. So torchvision is only imported to download, and to read
CIFAR-10. Around the readers we add the checks they lack
(images = labels, labels in range, CIFAR checksums named per file) and turn every failure into
a one-line :class:`~convzoo.errors.DataError` that names the file and the fix.
Loading Fashion-MNIST's training split from the decompressed files takes about 0.1 s, so the
tensors are not cached beyond the files themselves.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import shutil
import socket
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..errors import (
    ConvzooError,
    DataError,
    DataNotFoundError,
    StorageError,
    UnknownNameError,
)
from ..io import storage_error
from .dataset import ImageDataset
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
SPLITS = ("train", "test")
#: where packaged copies live (one sub-folder per data set); ``$CONVZOO_SYSTEM_DATA`` replaces it
SYSTEM_ROOTS: tuple[str, ...] = ("/usr/share/datasets",)
#: seconds one network operation of a download (a connect, one read) may wait before the
#: download is given up: a live mirror answers in well under a second, and a machine without
#: internet must not stall set-up (a black-holed route costs this once per mirror)
DOWNLOAD_TIMEOUT_S = 5.0


def default_root() -> Path:
    """The data directory: ``$CONVZOO_DATA`` or ``~/.cache/convzoo``."""
    return Path(os.environ.get("CONVZOO_DATA") or "~/.cache/convzoo").expanduser()


def system_roots() -> tuple[Path, ...]:
    """Folders searched for packaged copies (``$CONVZOO_SYSTEM_DATA`` overrides)."""
    env = os.environ.get("CONVZOO_SYSTEM_DATA")
    roots = SYSTEM_ROOTS if env is None else tuple(p for p in env.split(os.pathsep) if p)
    return tuple(Path(p) for p in roots)


def _download_reason(download: bool) -> str | None:
    """Why downloading is off, or ``None`` when it is allowed."""
    if not download:
        return "download disabled"
    if os.environ.get("CONVZOO_OFFLINE", "") not in ("", "0"):
        return "CONVZOO_OFFLINE is set"
    return None


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torchvision's urlopen calls take no timeout; a dead mirror would otherwise hang for minutes
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"cannot create the data directory {path} ({_one_line(e)}); set CONVZOO_DATA or "
            "--data-dir to a writable folder"
        ) from None
    return path


def _install(src: Path, dst: Path, max_bytes: int | None = None) -> None:
    """Copy ``src`` (decompressing ``.gz``) to ``dst`` atomically: temp file, then replace.

    A damaged source is a :class:`DataError` naming it, a write the disk refuses a
    :class:`StorageError`; ``max_bytes`` stops a ``.gz`` that expands beyond what it should
    (a few MB of gzip can expand to terabytes)."""
    _writable_dir(dst.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    except OSError as e:
        raise storage_error(dst, e) from None
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in _chunks(src):
                out.write(chunk)
                if max_bytes is not None and out.tell() > max_bytes:
                    raise DataError(
                        f"{src}: it expands to more than the {max_bytes:,} bytes its header "
                        "announces; the copy is damaged: replace it or delete it and fetch the "
                        "data again"
                    )
        os.replace(tmp, dst)
    except OSError as e:  # reading errors are DataErrors by now: this is the disk
        raise storage_error(dst, e) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _chunks(src: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of ``src`` (decompressed if ``.gz``), any reading failure a DataError."""
    opener = gzip.open if src.suffix == ".gz" else open
    try:
        with opener(src, "rb") as f:
            while chunk := f.read(size):
                yield chunk
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"{src}: cannot read it ({_one_line(e)}); the copy is damaged: replace it "
            "or delete it and fetch the data again"
        ) from None


def _move_into(src_dir: Path, dst_dir: Path, names: list[str]) -> None:
    _writable_dir(dst_dir)
    for name in names:
        if (src_dir / name).exists():
            os.replace(src_dir / name, dst_dir / name)


def _download(fetch: Callable[[Path], None], root: Path) -> str | None:
    """Run ``fetch(tmp_dir)`` (a torchvision download into a temporary folder of ``root``);
    ``None`` on success, else the reason in one line. The temporary folder always goes, so a
    failed or interrupted download leaves nothing behind."""
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=_writable_dir(root)))
    try:
        # torchvision prints what it extracts on stdout; keep stdout for our results
        with _socket_timeout(DOWNLOAD_TIMEOUT_S), contextlib.redirect_stdout(sys.stderr):
            fetch(tmp)
        return None
    except Exception as e:  # any network, mirror or checksum failure: reported, never raised
        return _one_line(e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_labels(labels: torch.Tensor, num_classes: int, where: Path | str, fix: str) -> None:
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise DataError(f"{where}: label {bad} is outside 0..{num_classes - 1}; {fix}")


# -- IDX sets (Fashion-MNIST, MNIST) ----------------------------------------------------------
#: IDX magic numbers of unsigned-byte tensors, by rank (images: 3, labels: 1)
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}


def idx_problem(path: Path, ndim: int) -> str | None:
    """What is wrong with an IDX file of unsigned bytes and rank ``ndim``, or ``None``.

    torchvision's reader only ``assert``s the magic number and fails obscurely on a short file,
    so we check the magic and that the size matches the header before handing it over."""
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    kind = "image" if ndim == 3 else "label"
    magic = int.from_bytes(head[:4], "big") if len(head) >= 4 else None
    if magic != _IDX_MAGIC[ndim] or len(head) < 4 + 4 * ndim:
        found = "no header" if magic is None else f"magic {magic:#010x}"
        return f"not an IDX {kind} file: {found}, expected {_IDX_MAGIC[ndim]:#010x}"
    expected = len(head) + math.prod(struct.unpack(f">{ndim}I", head[4:]))
    size = path.stat().st_size
    if size != expected:
        state = "truncated" if size < expected else "too long"
        return f"{state} IDX {kind} file: {size:,} bytes, its header says {expected:,}"
    return None


def idx_size(path: Path, ndim: int) -> int:
    """The size in bytes an IDX file (or its ``.gz``) announces in its header; a header that
    is not an IDX one announces at most 1 MiB (enough to be read and refused)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4 + 4 * ndim)
    except (OSError, EOFError, zlib.error):
        return 1 << 20
    if len(head) < 4 + 4 * ndim or int.from_bytes(head[:4], "big") != _IDX_MAGIC[ndim]:
        return 1 << 20
    return len(head) + math.prod(struct.unpack(f">{ndim}I", head[4:]))


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """The unsigned bytes of an IDX file that :func:`idx_problem` passed, shaped as its header
    says (what torchvision's ``read_sn3_pascalvincent_tensor`` does for this type)."""
    with open(path, "rb") as f:
        dims = struct.unpack(f">{ndim}I", f.read(4 + 4 * ndim)[4:])
        data = np.fromfile(f, dtype=np.uint8)
    return torch.from_numpy(data.reshape(dims))


def _tv_dataset(name: str) -> type:
    """torchvision's data set class ``name``, imported only when needed (see the module doc)."""
    import torchvision.datasets

    return getattr(torchvision.datasets, name)


#: the class names torchvision's FashionMNIST and MNIST give (a test checks they still do)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES = tuple(
    f"{i} - {w}"
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
)


def _ndim(fname: str) -> int:
    return 3 if "-images-" in fname else 1


class Source(Protocol):
    name: str

    def fetch(self, root: Path, splits: tuple[str, ...], download: bool) -> Path: ...

    def load(self, root: Path, split: str, download: bool) -> ImageDataset | SequenceDataset: ...


@dataclass(frozen=True)
class IdxSource:
    """An MNIST-format set (IDX files), downloaded by torchvision's class ``tv_name``."""

    name: str
    tv_name: str
    classes: tuple[str, ...]
    #: sub-folder of each system root holding the ``.gz`` files
    system_dir: str
    #: Debian package that installs them, if any
    package: str | None = None

    def folder(self, root: Path) -> Path:
        return root / self.tv_name / "raw"

    def files(self, split: str) -> tuple[str, str]:
        prefix = "train" if split == "train" else "t10k"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    def _fix(self) -> str:
        return f"delete it and get it again (`convzoo data fetch {self.name}`)"

    def _candidates(self, root: Path, fname: str) -> list[Path]:
        raw = self.folder(root)
        out = [raw / f"{fname}.gz"]
        for sys_root in system_roots():
            out += [sys_root / self.system_dir / f"{fname}.gz", sys_root / self.system_dir / fname]
        return out

    def fetch(self, root: Path, splits: tuple[str, ...] = SPLITS, download: bool = True) -> Path:
        """Put the files of ``splits`` into the data directory; the folder holding them."""
        raw = self.folder(root)
        needed = [f for s in splits for f in self.files(s)]
        missing = []
        for fname in needed:
            if (raw / fname).exists():
                continue
            src = next((p for p in self._candidates(root, fname) if p.is_file()), None)
            if src is None:
                missing.append(fname)
                continue
            _install(src, raw / fname, idx_size(src, _ndim(fname)))
            if problem := idx_problem(raw / fname, _ndim(fname)):
                # the source itself is damaged: name it and keep nothing of it
                os.unlink(raw / fname)
                again = f" (`apt-get install --reinstall {self.package}`)" if self.package else ""
                raise DataError(f"{src}: damaged ({problem}); replace it{again}")
        reason = _download_reason(download)
        if missing and reason is None:

            def get(tmp: Path) -> None:
                _tv_dataset(self.tv_name)(tmp, train=True, download=True)
                _move_into(self.folder(tmp), raw, missing)

            reason = _download(get, root) or "the download lacked them"
            missing = [f for f in missing if not (raw / f).exists()]
        if missing:
            places = ", ".join([str(raw)] + [str(r / self.system_dir) for r in system_roots()])
            how = f"`apt-get install {self.package}`, or " if self.package else ""
            raise DataNotFoundError(
                f"{self.name} not found (searched {places}) and not downloaded "
                f"({reason}); get it with {how}`convzoo data fetch {self.name}` when online",
                searched=places,
                reason=reason,
            )
        return raw

    def load(self, root: Path, split: str, download: bool = True) -> ImageDataset:
        raw = self.fetch(root, (split,), download)
        image_file, label_file = (raw / f for f in self.files(split))
        fix = self._fix()
        for path in (image_file, label_file):
            if problem := idx_problem(path, _ndim(path.name)):
                raise DataError(f"{path}: {problem}; {fix}")
        try:
            images = read_idx(image_file, 3)
        except (OSError, RuntimeError, ValueError) as e:
            raise DataError(f"{image_file}: unreadable ({_one_line(e)}); {fix}") from None
        try:
            labels = read_idx(label_file, 1).long()
        except (OSError, RuntimeError, ValueError) as e:
            raise DataError(f"{label_file}: unreadable ({_one_line(e)}); {fix}") from None
        if len(images) != len(labels):
            raise DataError(
                f"{image_file} holds {len(images):,} images but {label_file} holds "
                f"{len(labels):,} labels; delete both and get them again "
                f"(`convzoo data fetch {self.name}`)"
            )
        classes = list(self.classes)
        _check_labels(labels, len(classes), label_file, fix)
        return ImageDataset(
            images.unsqueeze(1), labels, classes, name=self.name, split=split, source=str(raw)
        )


# -- CIFAR-10 ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CifarSource:
    """CIFAR-10 read by torchvision's ``CIFAR10``. Its batches are pickles, which torchvision
    only unpickles after their MD5 checksums match the published ones, so a foreign file is
    never executed; we name the file whose checksum fails."""

    name: str = "cifar10"

    @property
    def tv_class(self) -> type:
        return _tv_dataset("CIFAR10")

    def folder(self, root: Path) -> Path:
        return root / self.tv_class.base_folder

    def _files(self) -> list[tuple[str, str]]:
        c = self.tv_class
        return [*c.train_list, *c.test_list, (c.meta["filename"], c.meta["md5"])]

    def fetch(self, root: Path, splits: tuple[str, ...] = SPLITS, download: bool = True) -> Path:
        folder = self.folder(root)
        names = [f for f, _ in self._files()]
        missing = [f for f in names if not (folder / f).exists()]
        reason = _download_reason(download)
        if missing and reason is None:

            def get(tmp: Path) -> None:
                self.tv_class(tmp, train=True, download=True)
                _move_into(self.folder(tmp), folder, missing)

            reason = _download(get, root) or "the download lacked them"
            missing = [f for f in missing if not (folder / f).exists()]
        if missing:
            raise DataNotFoundError(
                f"{self.name} not found (searched {folder}) and not downloaded ({reason}); get "
                f"it with `convzoo data fetch {self.name}` when online",
                searched=str(folder),
                reason=reason,
            )
        return folder

    def load(self, root: Path, split: str, download: bool = True) -> ImageDataset:
        folder = self.fetch(root, (split,), download)
        fix = f"delete it and get it again (`convzoo data fetch {self.name}`)"
        try:
            ds = self.tv_class(root, train=split == "train", download=False)
        except RuntimeError:  # "not found or corrupted": find which file
            from torchvision.datasets.utils import check_integrity

            for fname, md5 in self._files():
                if not check_integrity(str(folder / fname), md5):
                    raise DataError(
                        f"{folder / fname}: checksum mismatch (truncated or corrupt); {fix}"
                    ) from None
            raise
        except Exception as e:  # checksums matched but the content does not parse
            raise DataError(f"{folder}: unreadable ({_one_line(e)}); {fix}") from None
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # N x 3 x 32 x 32
        labels = torch.tensor(ds.targets, dtype=torch.int64)
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images):,} images but {len(labels):,} labels; {fix}")
        _check_labels(labels, len(ds.classes), folder, fix)
        return ImageDataset(
            images, labels, list(ds.classes), name=self.name, split=split, source=str(folder)
        )


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
