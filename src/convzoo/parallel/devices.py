"""``--devices cpu,cpu`` / ``cuda:0,cuda:1``: a device list, checked to exist here."""

from __future__ import annotations

import torch

from ..errors import ParallelError
from ..runtime import resolve_device


def parse_devices(spec: str) -> list[torch.device]:
    """Comma-separated devices; a device may repeat (``cpu,cpu``: two replicas on the CPU).

    Every entry must exist (``cuda:3`` on a machine with two GPUs is refused) and all must be
    of one type: autocast and the gradient scaler work per device type.
    """
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ParallelError(
            f"--devices {spec!r} names no device; use e.g. cpu,cpu or cuda:0,cuda:1"
        )
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = []
    for name in names:
        try:
            d = torch.device(name)
        except RuntimeError:
            d = torch.device("meta")  # refused below with the list of accepted names
        if d.type == "cuda" and (gpus == 0 or (d.index or 0) >= gpus):
            have = "no GPU" if gpus == 0 else f"{gpus} GPU(s), cuda:0 to cuda:{gpus - 1}"
            raise ParallelError(
                f"--devices {spec} names {name}, but this machine has {have}"
                + (" (cpu,cpu runs the same code on the CPU)" if gpus == 0 else "")
            )
        d = resolve_device(name)  # unknown or unsupported names: resolve_device's one line
        if d.type == "cuda" and d.index is None:
            d = torch.device("cuda", torch.cuda.current_device())
        devices.append(d)
    types = sorted({d.type for d in devices})
    if len(types) > 1:
        raise ParallelError(
            f"--devices {spec!r} mixes {' and '.join(types)} devices; list devices of one type"
        )
    return devices
