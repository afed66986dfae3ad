"""Where and in which precision to run: ``--device`` and ``--precision`` resolved once."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from dataclasses import dataclass

import torch

from .errors import ConvzooError

#: ``--precision`` values (``auto``: see :func:`resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class DeviceError(ConvzooError):
    """A device that does not exist here."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (a GPU when present), ``cpu``, ``cuda`` or ``cuda:N``, checked to exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} asked for, but this machine has no CUDA GPU; use --device cpu"
            )
        n = torch.cuda.device_count()
        if device.index is not None and device.index >= n:
            raise DeviceError(f"device {spec!r} does not exist: this machine has {n} GPU(s)")
    elif device.type != "cpu":
        raise DeviceError(f"device type {device.type!r} is not supported; use cpu or cuda")
    return device


def tune_backends(device: torch.device) -> None:
    """On a GPU, let cuDNN time its convolution algorithms once per input shape and keep the
    fastest (``cudnn.benchmark``): the zoo trains fixed shapes, so the one-off timing pays for
    itself within the first epoch. On the CPU, :func:`keep_freed_memory`."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        keep_freed_memory()


#: glibc's ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: the largest block glibc will serve from its heap rather than map (its maximum on 64 bits)
HEAP_BLOCK_MAX = 32 * 2**20


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep the memory a training step frees for the next step, instead of
    handing it back to the system and faulting it in again, zeroed, page by page.

    Why: a CPU step allocates and frees the same activation and gradient buffers every time.
    glibc maps blocks over its threshold (128 KB, adjusted upwards as blocks are freed) and
    unmaps them on free, and trims its heap's free top. Serving every block up to 32 MB from the
    heap and never trimming it took the main job (``convzoo train``, 2 epochs, 2-core CPU) from
    3.5-3.7 million page faults and 44 s to 0.46 million and 39 s, for 5-10% more peak memory;
    AlexNet at 224 px, whose larger blocks are still mapped, is unchanged (benchmarks/RESULTS.md,
    "the main job"). Mapping no block at all saved no more time and cost AlexNet 50% more
    memory. The PyTorch CPU tuning guides get the same by preloading jemalloc or tcmalloc;
    this needs no library. Process-wide and kept once set; a ``MALLOC_*`` setting or malloc
    tunable the user exported wins. Returns whether it is in effect (not on other C libraries
    or systems)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if not sys.platform.startswith("linux") or "glibc.malloc" in tunables:
        return False
    if any(key.startswith("MALLOC_") for key in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's; musl has none
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    )


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX-512 BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


@dataclass(frozen=True)
class Precision:
    name: str  #: fp32 | bf16 | fp16
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def needs_scaler(self) -> bool:
        return self.name == "fp16"


def resolve_precision(spec: str, device: torch.device) -> Precision:
    """``auto``: bf16 on GPUs that have it (else fp16), bf16 on CPUs with native bf16 (measured
    2x+ faster for the zoo's CNNs, benchmarks/RESULTS.md), otherwise fp32."""
    if spec == "auto":
        if device.type == "cuda":
            spec = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            spec = "bf16" if cpu_supports_bf16() else "fp32"
    if spec not in PRECISIONS[1:]:
        raise ConvzooError(f"unknown precision {spec!r}; use {', '.join(PRECISIONS)}")
    if spec == "fp16" and device.type == "cpu":
        raise ConvzooError("fp16 needs a GPU; on the CPU use --precision bf16 or fp32")
    return Precision(spec, device.type)
