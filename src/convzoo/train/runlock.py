"""One writer per run directory: a lock that a run holds for its whole life.

Two runs pointed at the same ``--out``, or a ``--resume`` of a run that is still going, would
interleave their checkpoints and weights. Each run takes an exclusive ``flock`` on
``RUN/.convzoo.lock`` before it reads or writes anything there, and keeps it until it ends; the
other is refused in one line naming the holder. The kernel drops the lock when its process
dies, however it dies (SIGKILL included), so a crashed run never blocks its own resume (its
file stays, unlocked). A run that ends removes the file while it still holds the lock; whoever
locked the file just removed finds it gone from the folder and tries again on a new one.

``flock`` locks are local to one machine's kernel; on a network file system shared by several
machines use one ``--out`` per job.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import socket
from pathlib import Path

from ..errors import RunInUseError
from ..io import storage_error

LOCK_NAME = ".convzoo.lock"


class RunLock:
    """The lock of one run directory; a context manager (``with RunLock(run_dir): ...``)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (creating the file) or raise :class:`RunInUseError`."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise storage_error(self.path, e) from None
            if not _try_lock(fd):
                holder = _read(fd)
                os.close(fd)
                raise in_use(self.run_dir, holder)
            if _still_there(fd, self.path):
                break
            os.close(fd)  # removed by the run that ended meanwhile: lock the new file
        os.ftruncate(fd, 0)
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while locked: see the module's docstring
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_not_in_use(run_dir: str | os.PathLike) -> None:
    """Raise :class:`RunInUseError` if a live process holds ``run_dir``'s lock; creates
    nothing (a folder that is no run gets no lock file)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # no lock file: nobody holds it
    try:
        if not _try_lock(fd):
            raise in_use(Path(run_dir), _read(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def in_use(run_dir: Path, holder: str) -> RunInUseError:
    who = f" ({holder})" if holder else ""
    return RunInUseError(
        f"{run_dir} is in use by another convzoo process{who}: two runs must not write one "
        f"run directory; wait for it to end or stop it, or choose another --out"
    )


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _still_there(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the file ``fd`` opened."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    return ""
