"""Where and in which precision to run: ``--device`` and ``--precision`` resolved once."""

from __future__ import annotations

import contextlib
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
    itself within the first epoch. No effect on the CPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


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
