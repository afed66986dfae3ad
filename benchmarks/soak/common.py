"""What the soak parts share: the CLI run in the suite's environment (no download, one OpenMP
thread so weights compare bitwise), its judging, the small data and runs, and the record.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
#: the lock file every run directory gets (train/runlock.py); not a partial file
LOCK_NAME = ".convzoo.lock"
#: what a write interrupted mid-way leaves: io.atomic_path's and data.sources' temporary files
PARTIAL_PATTERNS = (".*.tmp", ".*.part", ".fetch-*")
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def env(**extra: str) -> dict[str, str]:
    """The environment of every convzoo process of the suite."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "CONVZOO_SYSTEM_DATA": "",
        "CONVZOO_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@dataclass
class Outcome:
    """One finished (or killed) process: exit code, its output, how long it ran."""

    code: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


def convzoo(*args: Any, timeout: float = 120, cwd: Path | None = None, **env_extra) -> Outcome:
    """``python -m convzoo ARGS`` to its end (killed after ``timeout`` seconds: a hang)."""
    cmd = [sys.executable, "-m", "convzoo", *map(str, args)]
    t = time.perf_counter()
    try:
        r = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env(**env_extra)
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr or ""
        return Outcome(None, out, err, time.perf_counter() - t, timed_out=True)
    return Outcome(r.returncode, r.stdout, r.stderr, time.perf_counter() - t)


def one_line_problem(o: Outcome, names: tuple[str, ...] = ()) -> str | None:
    """What is wrong with how a process ended: ``None`` for a success (exit 0, no traceback) or
    a refusal (a non-zero exit and exactly one line on stderr, naming one of ``names`` when
    given)."""
    if o.timed_out:
        return "no answer in time (hang)"
    if "Traceback" in o.stderr:
        return "traceback: " + o.stderr.strip().splitlines()[-1][:200]
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    if o.code == 0:  # a success may warn (a skipped image, other class names)
        return None
    if len(lines) != 1:
        return f"exit {o.code} with {len(lines)} lines on stderr: {' | '.join(lines)[:300]}"
    if names and not any(n in lines[0] for n in names):
        return f"the line names none of {names}: {lines[0][:200]}"
    return None


def partial_files(*folders: Path) -> list[str]:
    """Temporary files a write left behind anywhere under ``folders``."""
    found: list[str] = []
    for folder in folders:
        if folder.is_dir():
            for pattern in PARTIAL_PATTERNS:
                found += [str(p) for p in folder.rglob(pattern)]
    return found


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Name -> (size, mtime) of the files of ``folder`` (the lock file left out)."""
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and p.name != LOCK_NAME
    }


# -- data and runs ------------------------------------------------------------------------------
def write_folder(root: Path, n_train: int = 200, n_test: int = 80, size: int = 16) -> Path:
    """A learnable 4-class image folder of PNGs (train/ and test/): class c brightens its
    own band of rows, plus noise; seeded, so every call writes the same files."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            c = i % 4
            img = rng.integers(0, 60, (size, size), dtype=np.uint8)
            img[c * size // 4 : (c + 1) * size // 4] += 150
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


def idx_bytes(values: Any) -> bytes:
    """An IDX file (Fashion-MNIST's format) holding the uint8 array ``values``."""
    import numpy as np

    head = bytes([0, 0, 8, values.ndim]) + np.array(values.shape, ">u4").tobytes()
    return head + values.astype(np.uint8).tobytes()


#: a validation split large enough to choose the kept epoch on (own images choose on >= 500)
CHOOSE = ("--val-split", "500")


def train_args(folder: Path, out: Path, *extra: Any, epochs: int = 2) -> list[str]:
    """``convzoo train`` of a small speednet on ``folder`` (fast recipe: a validation split,
    best.safetensors; flips; batch norm with its refresh), checkpoints every 2 steps."""
    return [
        "train", "--dataset", f"folder:{folder}", "--epochs", str(epochs), "-o", "width=8",
        "--batch-size", "16", "--device", "cpu", "--ckpt-every", "2", "--out", str(out),
        *map(str, extra),
    ]  # fmt: skip


def train_ok(*args: Any) -> None:
    """A run every case is compared with: it must succeed."""
    o = convzoo(*args, timeout=600)
    if o.code != 0:
        raise SystemExit(f"the uninterrupted run failed: {o.stderr}")


def same_weights(a: Path, b: Path) -> list[str]:
    """The weight files whose tensors differ, bitwise, between run directories ``a`` and ``b``."""
    import torch
    from safetensors.torch import load_file

    differ = []
    for name in ("model.safetensors", "best.safetensors"):
        if name == "best.safetensors" and not (a / name).exists() and not (b / name).exists():
            continue  # both kept their last epoch (own images choose on >= 500 validation ones)
        if not ((a / name).exists() and (b / name).exists()):
            differ.append(f"{name} missing")
            continue
        ta, tb = load_file(str(a / name)), load_file(str(b / name))
        if ta.keys() != tb.keys() or not all(torch.equal(ta[k], tb[k]) for k in ta):
            differ.append(name)
    return differ


def history_losses(run_dir: Path) -> list[str]:
    """The loss and accuracy columns of history.csv (times left out: they differ)."""
    lines = (run_dir / "history.csv").read_text().splitlines()
    head = lines[0].split(",")
    keep = [i for i, h in enumerate(head) if h in ("epoch", "loss", "train_acc", "val_acc")]
    return [",".join(row.split(",")[i] for i in keep) for row in lines]


# -- results ------------------------------------------------------------------------------------
@dataclass
class Part:
    """What one part of the suite tried and what failed."""

    name: str
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, what: str) -> bool:
        self.cases += 1
        if not ok:
            self.failures.append(what)
            print(f"  FAIL {what}", flush=True)
        return ok

    def same_run(self, reference: Path, run_dir: Path, what: str) -> bool:
        differ = same_weights(reference, run_dir)
        return self.check(not differ, f"{what}: {differ} differ from the uninterrupted run's")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rng(seed: int, salt: str) -> random.Random:
    return random.Random(f"{seed}-{salt}")


def part_main(
    name: str, doc: str, argv: list[str] | None, body: Callable[..., None], **options: Any
) -> Part:
    """A part's command line (``--work`` and ``options``: flag -> default, or a type for no
    default), its run ``body(part, work, args)``, timed, and its summary line."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp one)")
    for flag, default in options.items():
        flag = "--" + flag.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true")
        elif isinstance(default, type):
            p.add_argument(flag, type=default, default=None)
        else:
            p.add_argument(flag, type=type(default), default=default)
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix=f"soak-{name}-"))
    part, t = Part(name), time.perf_counter()
    body(part, work, args)
    part.seconds = time.perf_counter() - t
    print(f"{name}: {part.cases} checks, {len(part.failures)} failures, {part.seconds:.0f} s")
    return part
