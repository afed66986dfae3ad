"""The file plumbing under the named data sets: the data directory, packaged copies,
atomic installs, downloads with a timeout, and the checks every reader shares.

Every failure is a one-line :class:`~convzoo.errors.DataError` naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import socket
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ..catalog import SPLITS  # noqa: F401  (every named data set has them)
from ..errors import DataError, StorageError
from ..io import storage_error

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


def download_reason(download: bool) -> str | None:
    """Why downloading is off, or ``None`` when it is allowed."""
    if not download:
        return "download disabled"
    if os.environ.get("CONVZOO_OFFLINE", "") not in ("", "0"):
        return "CONVZOO_OFFLINE is set"
    return None


def one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    # torchvision's urlopen calls take no timeout; a dead mirror would otherwise hang for minutes
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"cannot create the data directory {path} ({one_line(e)}); set CONVZOO_DATA or "
            "--data-dir to a writable folder"
        ) from None
    return path


def install(src: Path, dst: Path, max_bytes: int | None = None) -> None:
    """Copy ``src`` (decompressing ``.gz``) to ``dst`` atomically: temp file, then replace.

    A damaged source is a :class:`DataError` naming it, a write the disk refuses a
    :class:`StorageError`; ``max_bytes`` stops a ``.gz`` that expands beyond what it should
    (a few MB of gzip can expand to terabytes)."""
    writable_dir(dst.parent)
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
            f"{src}: cannot read it ({one_line(e)}); the copy is damaged: replace it "
            "or delete it and fetch the data again"
        ) from None


def move_into(src_dir: Path, dst_dir: Path, names: list[str]) -> None:
    writable_dir(dst_dir)
    for name in names:
        if (src_dir / name).exists():
            os.replace(src_dir / name, dst_dir / name)


def download_into(fetch: Callable[[Path], None], root: Path) -> str | None:
    """Run ``fetch(tmp_dir)`` (a torchvision download into a temporary folder of ``root``);
    ``None`` on success, else the reason in one line. The temporary folder always goes, so a
    failed or interrupted download leaves nothing behind."""
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=writable_dir(root)))
    try:
        # torchvision prints what it extracts on stdout; keep stdout for our results
        with socket_timeout(DOWNLOAD_TIMEOUT_S), contextlib.redirect_stdout(sys.stderr):
            fetch(tmp)
        return None
    except Exception as e:  # any network, mirror or checksum failure: reported, never raised
        return one_line(e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_labels(labels: torch.Tensor, num_classes: int, where: Path | str, fix: str) -> None:
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise DataError(f"{where}: label {bad} is outside 0..{num_classes - 1}; {fix}")


def torchvision_dataset(name: str) -> type:
    """torchvision's data set class ``name``, imported only when needed (see the module doc)."""
    import torchvision.datasets

    return getattr(torchvision.datasets, name)
