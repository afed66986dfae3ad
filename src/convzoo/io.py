"""Files that must never be half-written or unsafely read.

Every file a run writes goes through :func:`atomic_write`: written to a temporary file in the
same directory, flushed and fsynced, then moved over the target with ``os.replace`` (atomic on
POSIX), and the directory entry fsynced. A crash at any moment leaves either the old file or
the new one, never a torn one. Checkpoints are read only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as _st_load
from safetensors.torch import safe_open
from safetensors.torch import save as _st_bytes

from .errors import CheckpointError, StorageError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left as it was. A write
    the file system refuses (a full disk, a read-only or missing place) is a
    :class:`StorageError` naming the file and saying that the previous one is intact.
    ``suffix``: the temporary name's ending, for writers that insist on one (``.pt2``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise storage_error(path, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        cause = _os_error(e)
        if cause is not None and not isinstance(e, StorageError):
            raise storage_error(path, cause) from None
        raise


def _os_error(e: BaseException | None) -> OSError | None:
    """The OSError behind ``e``: itself, or one a library wrapped (torch.save reports a failed
    write of its zip writer as a RuntimeError whose context is the OSError)."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def storage_error(path: Path, e: OSError) -> StorageError:
    """One line for a write the file system refused, saying what is left of ``path``."""
    reason = e.strerror or type(e).__name__
    kept = f"the previous {path.name} is intact" if path.is_file() else "nothing was written"
    fix = "free some space and try again" if e.errno in _FULL else "write somewhere else"
    return StorageError(f"cannot write {path}: {reason}; {kept}; {fix}")


#: errno values of a full disk or quota
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a binary file that atomically becomes ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` of a dict of tensors and plain values, atomically."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Always ``weights_only=True``: a file whose pickle would run code (or build any object that
    is not a tensor or plain container) is refused with :class:`CheckpointError`; there is no
    unsafe fallback.
    """
    state = _torch_load(
        path,
        map_location,
        what="checkpoint",
        trust="only load checkpoints you trust and that convzoo wrote",
        fix="delete it or resume from another run",
    )
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a convzoo checkpoint (found {type(state).__name__})")
    return state


def _torch_load(path: str | os.PathLike, map_location: Any, *, what: str, trust: str, fix: str):
    """``torch.load(weights_only=True)`` with every failure turned into one clear line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns (many lines) of unusual pickle protocols
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it holds more than tensors and plain values "
            f"({_torch_reason(e)}); nothing was run "
            f"(convzoo loads checkpoints with torch.load(weights_only=True) only); {trust}"
        ) from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        OverflowError,
        MemoryError,
    ) as e:
        raise CheckpointError(
            f"cannot read {what} {path}: it is truncated or not a PyTorch file "
            f"({type(e).__name__}); {fix}"
        ) from None


def _torch_reason(e: Exception) -> str:
    """torch's own reason for refusing a pickle, without its advice to load the file unsafely or
    to allow-list what it calls: the line of its message before the documentation link."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reason = lines[-2] if len(lines) > 1 else lines[0] if lines else type(e).__name__
    return reason.removeprefix("WeightsUnpickler error: ").split(" Please use")[0].rstrip(".")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file from anywhere (torchvision's ``resnet18-f37072fd.pth``,
    a ``.safetensors`` file, a convzoo ``checkpoint.pt``), keyed by parameter name.

    ``.safetensors`` files are read as data; any other file with ``torch.load(weights_only=True)``
    only, so a pickle that would run code is refused before anything runs. Usual wrappers are
    taken off: ``{"state_dict": ...}``, ``{"model": ...}``, a convzoo checkpoint's trainer state,
    and the ``module.`` prefix that ``DataParallel``/DDP add.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_weights(path)[0]
    state = _torch_load(
        path,
        "cpu",
        what="weights file",
        trust="only load weights you trust",
        fix="download it again",
    )
    for key in ("trainer", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            if key == "trainer":
                state = state.get("model", state)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path} holds no state dict (found {type(state).__name__})")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(state) or not all(isinstance(k, str) for k in tensors):
        raise CheckpointError(f"{path} is not a state dict: it maps names to other things")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def save_weights(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> None:
    """Weights as safetensors, with ``metadata`` (JSON) under the key ``convzoo``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = {"convzoo": json.dumps(metadata)}
    atomic_write(path, lambda f: f.write(_st_bytes(tensors, metadata=meta)))


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and convzoo metadata of a safetensors file (metadata ``{}`` when absent)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = _st_load(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"cannot read weights {path}: truncated or not a safetensors file ({e})"
        ) from None
    try:
        meta = json.loads(raw["convzoo"]) if "convzoo" in raw else {}
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path} has unreadable convzoo metadata") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has unreadable convzoo metadata (not a JSON object)")
    return tensors, meta
