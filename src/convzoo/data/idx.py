"""MNIST-format sets (IDX files): Fashion-MNIST and MNIST.

The files are checked (magic and size against the header) and then read by our own few lines,
not torchvision's ``read_image_file``: once checked, the reading is one ``np.fromfile``, while
importing torchvision costs 1 s on the 2-core CPU (half of what ``import convzoo`` took while
it did) and ``import convzoo`` took 6.2 s on the GPU machine then, in a time-to-accuracy run
aiming at 15 s. torchvision is only imported to download.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, DataNotFoundError
from .dataset import ImageDataset
from .files import (
    SPLITS,
    check_labels,
    download_into,
    download_reason,
    install,
    move_into,
    one_line,
    system_roots,
    torchvision_dataset,
)

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
            install(src, raw / fname, idx_size(src, _ndim(fname)))
            if problem := idx_problem(raw / fname, _ndim(fname)):
                # the source itself is damaged: name it and keep nothing of it
                os.unlink(raw / fname)
                again = f" (`apt-get install --reinstall {self.package}`)" if self.package else ""
                raise DataError(f"{src}: damaged ({problem}); replace it{again}")
        reason = download_reason(download)
        if missing and reason is None:

            def get(tmp: Path) -> None:
                torchvision_dataset(self.tv_name)(tmp, train=True, download=True)
                move_into(self.folder(tmp), raw, missing)

            reason = download_into(get, root) or "the download lacked them"
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
            raise DataError(f"{image_file}: unreadable ({one_line(e)}); {fix}") from None
        try:
            labels = read_idx(label_file, 1).long()
        except (OSError, RuntimeError, ValueError) as e:
            raise DataError(f"{label_file}: unreadable ({one_line(e)}); {fix}") from None
        if len(images) != len(labels):
            raise DataError(
                f"{image_file} holds {len(images):,} images but {label_file} holds "
                f"{len(labels):,} labels; delete both and get them again "
                f"(`convzoo data fetch {self.name}`)"
            )
        classes = list(self.classes)
        check_labels(labels, len(classes), label_file, fix)
        return ImageDataset(
            images.unsqueeze(1), labels, classes, name=self.name, split=split, source=str(raw)
        )
