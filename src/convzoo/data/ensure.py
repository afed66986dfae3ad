"""``convzoo data fetch``: get a data set the cheapest way that works, and say which in one line.

This is set-up's data step (``make setup`` runs it, and installs the Debian package where it
fails: the library installs nothing). In order, first hit wins:

1. the data directory already holds it: nothing is downloaded or installed;
2. a packaged copy (``/usr/share/datasets``): decompressed into the data directory;
3. a download through torchvision's mirrors (fails within seconds offline, see
   :data:`~convzoo.data.files.DOWNLOAD_TIMEOUT_S`);
4. otherwise a one-line :class:`~convzoo.errors.DataNotFoundError` naming the command to run.

The steps are :func:`~convzoo.data.sources.fetch_dataset`'s; this module adds the order and
the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConvzooError, DataNotFoundError
from .files import SPLITS, default_root, system_roots
from .sources import DEFAULT_DATASET, FILES_PREFIXES, get_source

__all__ = ["Fetched", "ensure_dataset"]


@dataclass(frozen=True)
class Fetched:
    """Where the files are and what was done to put them there (one line)."""

    folder: Path
    line: str


def _listing(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def ensure_dataset(
    name: str = DEFAULT_DATASET,
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> Fetched:
    """Make sure both splits of ``name`` are in the data directory (see the module docstring)."""
    if name.startswith(FILES_PREFIXES):
        raise ConvzooError(f"{name}: image folders are read where they are; nothing to fetch")
    source = get_source(name)
    root = Path(root).expanduser() if root else default_root()
    folder = source.folder(root)  # type: ignore[attr-defined]  # every named source has one
    before = _listing(folder)
    try:
        folder = source.fetch(root, SPLITS, download=False)
    except DataNotFoundError:
        pass
    else:
        if _listing(folder) == before:
            return Fetched(folder, f"{name}: already in {folder}; nothing downloaded or installed")
        roots = ", ".join(str(r) for r in system_roots())
        return Fetched(folder, f"{name}: copied from the packaged copy in {roots} into {folder}")
    folder = source.fetch(root, SPLITS, download=download)
    return Fetched(folder, f"{name}: downloaded through torchvision's mirrors into {folder}")
