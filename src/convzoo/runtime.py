"""Where and how to run: ``--device``, and ``--precision`` with the memory format chosen by
timing the candidates on this machine (:func:`choose_execution`)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the last measurement stored wins
    fcntl = None  # type: ignore[assignment]

import torch
from torch import nn

from .catalog import PRECISIONS
from .errors import ConvzooError


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


def tune_backends(device: torch.device, deterministic: bool = False) -> None:
    """On a GPU, let cuDNN time its convolution algorithms once per input shape and keep the
    fastest (``cudnn.benchmark``): the zoo trains fixed shapes, so the one-off timing pays for
    itself within the first epoch.

    ``deterministic`` (``--deterministic``, asked for by the user; it stays on for the rest of
    the process): the same arithmetic from the same state on a GPU too, so that runs repeat and
    resumes end bitwise equal there as they do on the CPU. torch's deterministic kernels (an
    op that has none is named in a warning), cuDNN's deterministic algorithms without
    benchmarking, and the fixed cuBLAS workspace they need (``CUBLAS_WORKSPACE_CONFIG``, unless
    set). Slower on a GPU; the CPU's kernels are deterministic already."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic


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


@dataclass(frozen=True)
class Execution:
    """How a run computes: its autocast precision and memory format, and why (one line)."""

    precision: Precision
    channels_last: bool
    reason: str

    @property
    def label(self) -> str:
        return label(self.precision.name, self.channels_last)


def label(precision: str, channels_last: bool) -> str:
    return f"{precision} {'channels_last' if channels_last else 'NCHW'}"


#: images per calibration step: the settings rank the same at 16 as at the recipes' 128-256
#: (benchmarks/RESULTS.md, "Settings chosen by measurement"), at a sixteenth of the time
CALIBRATION_BATCH = 16
#: timed steps per setting after an untimed one (oneDNN builds its kernels in the first) ...
CALIBRATION_STEPS = 3
#: ... or fewer once a setting has taken this many CPU seconds (the 224-px networks)
CALIBRATION_SECONDS = 0.5


def cache_dir() -> Path:
    """Where measured settings are kept: ``$CONVZOO_CACHE``, else ``~/.cache/convzoo``."""
    return Path(os.environ.get("CONVZOO_CACHE") or "~/.cache/convzoo").expanduser()


def machine_id() -> dict[str, object]:
    """What makes one machine's timings differ from another's."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_supports_bf16(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def describe_machine() -> str:
    """One line naming what speed figures depend on: CPU, instruction set, native bf16,
    cores, threads, torch, and the load average."""
    m = machine_id()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{m['cpu']}: {m['capability']}, native bf16 {'yes' if m['native_bf16'] else 'no'}, "
        f"{os.cpu_count()} cores, {m['threads']} threads, torch {m['torch']}; load {load}"
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def candidates(precision: str, channels_last: bool | None, images: bool) -> list[tuple[str, bool]]:
    """The (precision, channels_last) pairs worth timing on this CPU, within what was asked."""
    pairs = [("fp32", False), ("fp32", True)]
    if cpu_supports_bf16():  # emulated bf16 is 10-20x slower than fp32: never a candidate
        pairs += [("bf16", False), ("bf16", True)]
    if precision != "auto":
        pairs = [(precision, cl) for cl in (False, True)]
    if channels_last is not None or not images:
        pairs = [(p, bool(channels_last) and images) for p, _ in pairs]
    return list(dict.fromkeys(pairs))


def choose_execution(
    model: nn.Module,
    input_shape: tuple[int, ...],
    device: torch.device,
    precision: str = "auto",
    channels_last: bool | None = None,
) -> Execution:
    """The precision and memory format a run trains ``model`` with on ``device``.

    On a GPU: bf16 (else fp16) autocast with channels-last for ``auto``. On the CPU the settings
    that ``precision`` and ``channels_last`` leave open are timed, a few training steps of
    ``model`` on random ``input_shape`` inputs each, and the fastest is kept; the result is
    cached per machine and network in :func:`cache_dir`. Neither ``model`` nor the random
    number generators are changed."""
    images = len(input_shape) == 3
    if device.type != "cpu":
        chosen = resolve_precision(precision, device)
        cl = channels_last if channels_last is not None else chosen.dtype is not None
        return Execution(chosen, cl and images, "GPU: autocast with channels_last")
    pairs = candidates(precision, channels_last, images)
    if len(pairs) == 1:
        ((name, cl),) = pairs
        return Execution(resolve_precision(name, device), cl, "as asked")
    key = _cache_key(model, input_shape, pairs)
    rates, cached = _cached(key), True
    if rates is None:
        rates, cached = _store(key, _time_settings(model, input_shape, pairs)), False
    name, cl = max(pairs, key=lambda p: rates[label(*p)])
    shown = ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items())
    when = "measured before on this machine" if cached else "measured now"
    bf16 = "native bf16" if cpu_supports_bf16() else "no native bf16"
    cpu = f"{torch.backends.cpu.get_cpu_capability()}, {bf16}"
    why = f"fastest of {shown} on one thread ({cpu}; {when})"
    return Execution(resolve_precision(name, device), cl, why)


def _cache_key(model: nn.Module, input_shape: tuple[int, ...], pairs: list) -> str:
    # not the thread count: the candidates are timed on one thread whatever a run uses
    machine = {k: v for k, v in machine_id().items() if k != "threads"}
    text = json.dumps([machine, repr(model), list(input_shape), pairs], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cache_file() -> Path:
    return cache_dir() / "execution.json"


#: choices made in this process: a second run of the same network gets the same settings
_MEMO: dict[str, dict[str, float]] = {}


def _cached(key: str) -> dict[str, float] | None:
    if key in _MEMO:
        return _MEMO[key]
    try:
        rates = json.loads(_cache_file().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(rates, dict) and all(isinstance(v, (int, float)) for v in rates.values()):
        _MEMO[key] = rates
        return rates
    return None


def _store(key: str, rates: dict[str, float]) -> dict[str, float]:
    """Keep ``rates`` for the next run and return them, or the rates another process stored
    for the same network first: one machine's processes (a run and its resume, running at
    once) must not choose differently from two measurements that rank close settings apart.
    A cache that cannot be written only costs a new measurement next time."""
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "w") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            try:
                table = json.loads(path.read_text())
            except (OSError, ValueError):
                table = {}
            table = table if isinstance(table, dict) else {}
            rates = table.setdefault(key, rates)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(table, indent=1))
            os.replace(tmp, path)
    except OSError:
        pass
    _MEMO[key] = rates
    return rates


def _time_settings(
    model: nn.Module, input_shape: tuple[int, ...], pairs: list[tuple[str, bool]]
) -> dict[str, float]:
    """Training examples per CPU second of each (precision, channels_last) pair: forward, loss
    and backward on copies of ``model`` (its batch-norm statistics stay as they are).

    On one thread and by CPU time, taking each setting's fastest step in turn: a busy machine
    slows every setting alike instead of the one that ran while it was busy."""
    nets, inputs, spent = [], [], []
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.rand(CALIBRATION_BATCH, *input_shape)
        for _, cl in pairs:
            fmt = torch.channels_last if cl else torch.contiguous_format
            nets.append(copy.deepcopy(model).train().to(memory_format=fmt))
            inputs.append(x.contiguous(memory_format=fmt))
            spent.append([])
        torch.set_num_threads(1)
        try:
            for step in range(1 + CALIBRATION_STEPS):
                for i, (name, _) in enumerate(pairs):
                    if sum(spent[i]) > CALIBRATION_SECONDS:
                        continue
                    start = time.process_time()
                    with Precision(name, "cpu").autocast():
                        out = nets[i](inputs[i])
                    out.float().logsumexp(dim=1).mean().backward()
                    spent[i].append(time.process_time() - start if step else 0.0)
        finally:
            torch.set_num_threads(threads)
    return {
        label(*pair): CALIBRATION_BATCH / min(t for t in times[1:])
        for pair, times in zip(pairs, spent)
    }
