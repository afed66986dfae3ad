"""Files that must never be half-written or unsafely read.

Every file a run writes goes through :func:`atomic_write`: written to a temporary file in the
same directory, flushed and fsynced, then moved over the target with ``os.replace`` (atomic on
POSIX), and the directory entry fsynced. A crash at any moment leaves either the old file or
the new one, never a torn one. Checkpoints are read only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import errno
import io
import json
import os
import pickle
import pickletools
import re
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
            f"refused to load {path}: {refusal_reason(path, str(e))}; nothing was run "
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


def refusal_reason(path: Path, message: str) -> str:
    """What the weights-only unpickler refused in ``path``, in words: the function its pickle
    would call (found by reading the pickle's instructions, which runs nothing), else the
    instruction or global torch names."""
    if name := _forbidden_global(path):
        return f"its pickle would call {name} (code, not a tensor or a plain value)"
    if m := re.search(r"GLOBAL ([\w.]+)", message):
        return f"its pickle would call {m.group(1)} (code, not a tensor or a plain value)"
    if m := re.search(r"Unsupported operand (\d+)", message):
        op = pickletools.code2op.get(chr(int(m.group(1))))
        what = op.name if op is not None else m.group(1)
        return f"its pickle uses the instruction {what}, which loading weights does not allow"
    return "it holds objects other than tensors and plain values"


def _forbidden_global(path: Path) -> str | None:
    """The first ``module.name`` that a pickle in ``path`` imports and torch's weights-only
    loading does not allow (read with :mod:`pickletools`, never unpickled)."""
    try:
        allowed = set(torch._weights_only_unpickler._get_allowed_globals())
    except Exception:  # a private helper of torch: without it, name any non-torch global
        allowed = set()
    for data in _pickles(path):
        for name in _globals(data):
            if name not in allowed if allowed else not name.startswith("torch."):
                return name
    return None


def _pickles(path: Path, limit: int = 64 << 20) -> Iterator[bytes]:
    """The pickle streams of a file: the ``.pkl`` entries of a zip (torch's format), or the
    file itself (torch's legacy format, a raw pickle)."""
    with contextlib.suppress(OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.filename.endswith(".pkl") and info.file_size <= limit:
                        yield z.read(info)
            return
        with open(path, "rb") as f:
            yield f.read(limit)


def _globals(data: bytes) -> Iterator[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL / INST in one or more pickles."""
    strings: list[str] = []  # the strings pushed so far, for STACK_GLOBAL
    memo: dict[int, str] = {}
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):  # Python 2 names, as unpickling maps them
                    module, _, name = str(arg).partition(" ")
                    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
                    yield f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    yield f"{strings[-2]}.{strings[-1]}"
                elif isinstance(arg, str) and ("UNICODE" in op.name or "STRING" in op.name):
                    strings.append(str(arg))
                elif op.name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    strings.append(memo[int(arg)])
        except (ValueError, TypeError, IndexError, KeyError, OverflowError):
            return  # not (or no longer) a pickle


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
