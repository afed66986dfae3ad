"""``convzoo data fetch``: get a data set the cheapest way that works, and say which in one line.

This is set-up's data step (``make setup`` runs it), the only code that may install a system
package. In order, first hit wins:

1. the data directory already holds it: nothing is downloaded or installed;
2. a packaged copy (``/usr/share/datasets``): decompressed into the data directory;
3. a download through torchvision's mirrors (fails within seconds offline, see
   :data:`~convzoo.data.files.DOWNLOAD_TIMEOUT_S`);
4. the data set's Debian package, where apt may be used (:mod:`.system_package`), then step 2;
5. otherwise a one-line :class:`~convzoo.errors.DataError` naming the exact command to run.

Steps 1-3 are :func:`~convzoo.data.sources.fetch_dataset`'s; this module only adds the order,
the report and step 4, which ``$CONVZOO_OFFLINE`` turns off like a download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConvzooError, DataError, DataNotFoundError
from .files import SPLITS, default_root, download_reason, system_roots
from .sources import DEFAULT_DATASET, FILES_PREFIXES, get_source
from .system_package import Host, apt_install, plan_apt_install

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
    install: bool = True,
    host: Host | None = None,
) -> Fetched:
    """Make sure both splits of ``name`` are in the data directory (see the module docstring);
    ``install=False`` stops before the package step. ``host`` is the machine apt runs on."""
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
    try:
        folder = source.fetch(root, SPLITS, download=download)
        return Fetched(folder, f"{name}: downloaded through torchvision's mirrors into {folder}")
    except DataNotFoundError as e:
        missing = e
    package = getattr(source, "package", None)
    if package is None or not install or download_reason(True) is not None:
        raise missing
    return _install_package(name, package, root, missing, host)


def _install_package(
    name: str, package: str, root: Path, missing: DataNotFoundError, host: Host | None
) -> Fetched:
    host = host or Host()  # looked up here, so a test can replace the real machine
    plan = plan_apt_install(package, host)
    if not plan.allowed:
        if plan.debian:
            how = f"run `{plan.instruction}`, then `convzoo data fetch {name}`"
        else:  # no apt here: only the download is left
            how = f"connect this machine to the internet and run `convzoo data fetch {name}` again"
        raise DataError(
            f"{name} not found (searched {missing.searched}) and not downloaded "
            f"({missing.reason}); {how}"
        )
    ran = apt_install(plan, host)
    try:
        folder = get_source(name).fetch(root, SPLITS, download=False)
    except DataNotFoundError as e:  # e.g. $CONVZOO_SYSTEM_DATA hides /usr/share/datasets
        raise DataError(f"installed {package} ({ran}), but {e}") from None
    return Fetched(
        folder,
        f"{name}: not downloadable ({missing.reason}), so installed Debian package {package} "
        f"({ran}) and copied it into {folder}",
    )
