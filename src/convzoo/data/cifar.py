"""CIFAR-10, read by torchvision (its batches are pickles), checked file by file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError, DataNotFoundError
from .dataset import ImageDataset
from .files import (
    SPLITS,
    check_labels,
    download_into,
    download_reason,
    move_into,
    one_line,
    torchvision_dataset,
)


@dataclass(frozen=True)
class CifarSource:
    """CIFAR-10 read by torchvision's ``CIFAR10``. Its batches are pickles, which torchvision
    only unpickles after their MD5 checksums match the published ones, so a foreign file is
    never executed; we name the file whose checksum fails."""

    name: str = "cifar10"

    @property
    def tv_class(self) -> type:
        return torchvision_dataset("CIFAR10")

    def folder(self, root: Path) -> Path:
        return root / self.tv_class.base_folder

    def _files(self) -> list[tuple[str, str]]:
        c = self.tv_class
        return [*c.train_list, *c.test_list, (c.meta["filename"], c.meta["md5"])]

    def fetch(self, root: Path, splits: tuple[str, ...] = SPLITS, download: bool = True) -> Path:
        folder = self.folder(root)
        names = [f for f, _ in self._files()]
        missing = [f for f in names if not (folder / f).exists()]
        reason = download_reason(download)
        if missing and reason is None:

            def get(tmp: Path) -> None:
                self.tv_class(tmp, train=True, download=True)
                move_into(self.folder(tmp), folder, missing)

            reason = download_into(get, root) or "the download lacked them"
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
            raise DataError(f"{folder}: unreadable ({one_line(e)}); {fix}") from None
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # N x 3 x 32 x 32
        labels = torch.tensor(ds.targets, dtype=torch.int64)
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images):,} images but {len(labels):,} labels; {fix}")
        check_labels(labels, len(ds.classes), folder, fix)
        return ImageDataset(
            images, labels, list(ds.classes), name=self.name, split=split, source=str(folder)
        )
