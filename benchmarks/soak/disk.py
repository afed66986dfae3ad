"""A full disk: every file a run writes fails for want of space (a 4 MB tmpfs filled as the
run begins that write): exit 74, one line, no partial file, the rest whole, and the resume
ends bitwise equal to an uninterrupted run; evaluate and data fetch/info alike.

    sudo python benchmarks/soak/disk.py      (mounting a tmpfs needs root)
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from common import (
    CHOOSE,
    IDX_FILES,
    Outcome,
    Part,
    convzoo,
    idx_bytes,
    one_line_problem,
    part_main,
    partial_files,
    train_args,
    train_ok,
    write_folder,
)
from kills import Victim

SAVE_POINTS = [
    ("config.json", 1),
    ("checkpoint.pt", 1),
    ("checkpoint.pt", 3),
    ("checkpoint.pt", 6),
    ("best.safetensors", 1),  # a second write happens only if validation improves
    ("history.csv", 1),
    ("curves.png", 2),
    ("model.safetensors", 1),
    ("confusion.png", 1),
    ("metrics.json", 1),
]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(where: Path) -> Path:
    """Write zeros into ``where`` until the file system has no byte left."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, bytes(size)):
                    pass
    finally:
        os.close(fd)
    return filler


def stopped(v: Victim, timeout: float = 600) -> bool:
    """Until ``v``'s process has stopped itself (state T); False if it ended instead."""
    stat = Path(f"/proc/{v.proc.pid}/stat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and v.proc.poll() is None:
        with contextlib.suppress(OSError):
            if stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return True
        time.sleep(0.005)
    return False


def whole(run_dir: Path) -> list[str]:
    """The files of a run directory that do not read back whole."""
    from PIL import Image

    from convzoo.io import load_checkpoint, load_weights

    bad = []
    for p in run_dir.iterdir():
        try:
            if p.suffix == ".pt":
                load_checkpoint(p)
            elif p.suffix == ".safetensors":
                load_weights(p)
            elif p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix == ".png":
                with Image.open(p) as im:
                    im.load()
        except Exception as e:
            bad.append(f"{p.name}: {e}")
    return bad


def save_point(part: Part, folder: Path, work: Path, reference: Path, name: str, k: int) -> None:
    what = f"{name} #{k}"
    with tmpfs(work / f"fs-{name}-{k}", "4m") as fs:
        run_dir = fs / "run"
        # the run stops itself as it begins the write (a stop sent from here could come after
        # a small last file such as metrics.json is already written, on a busy machine)
        argv = train_args(folder, run_dir, *CHOOSE, epochs=2)
        v = Victim(argv, work / "disk.phases", SOAK_STOP_AT=f"save-begin {name}#{k}")
        if not stopped(v):
            part.check(False, f"{what}: the run never wrote it: {v.finish()[1][-200:]}")
            return
        filler = fill(fs)
        v.proc.send_signal(signal.SIGCONT)
        code, err = v.finish()
        problem = one_line_problem(Outcome(code, "", err, 0.0), (str(run_dir),))
        part.check(problem is None, f"{what}: {problem}")
        part.check(code == 74, f"{what}: exit {code}, expected 74: {err.strip()[:200]}")
        part.check("No space left on device" in err, f"{what}: not said: {err.strip()[:200]}")
        if (run_dir / "checkpoint.pt").exists():
            says = f"resume with convzoo train --resume {run_dir}" in err
            part.check(says, f"{what}: does not say how to resume: {err.strip()[:200]}")
        part.check(not partial_files(run_dir), f"{what}: {partial_files(run_dir)} left")
        bad = whole(run_dir) if run_dir.exists() else []
        part.check(not bad, f"{what}: files not whole: {bad}")
        filler.unlink()
        argv = ["train", "--resume", str(run_dir)] if (run_dir / "config.json").exists() else (
            train_args(folder, run_dir, "--auto-resume", *CHOOSE, epochs=2)
        )  # fmt: skip
        o = convzoo(*argv, timeout=300)
        part.check(o.code == 0, f"{what}: the resume failed: {o.stderr.strip()[-300:]}")
        if o.code == 0:
            part.same_run(reference, run_dir, what)
        print(f"  {what}: exit {code}: {err.strip()[:160]}", flush=True)


def other_writers(part: Part, folder: Path, work: Path, reference: Path) -> None:
    """evaluate's PNG, data fetch's decompression and data info's PNG on a full disk."""
    import numpy as np

    with tmpfs(work / "fs-other", "4m") as fs:
        run = shutil.copytree(reference, fs / "run")
        gz = work / "sys" / "fashion-mnist"
        gz.mkdir(parents=True, exist_ok=True)
        for name in IDX_FILES:
            zeros = np.zeros((1000, 28, 28) if "images" in name else (1000,))
            (gz / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(zeros), mtime=0))
        filler = fill(fs)
        cases = {
            "evaluate": (["evaluate", run, "--weights", "last"], {}),
            "data fetch": (
                ["data", "fetch", "fashion-mnist", "--data-dir", fs / "data"],
                {"CONVZOO_SYSTEM_DATA": str(work / "sys")},
            ),
            "data info": (["data", "info", f"folder:{folder}", "--out", fs], {}),
        }
        for what, (argv, extra) in cases.items():
            o = convzoo(*argv, timeout=300, **extra)
            problem = one_line_problem(o, (str(fs),))
            part.check(problem is None and o.code == 74, f"{what}: exit {o.code}: {problem}")
            part.check(not partial_files(fs), f"{what}: {partial_files(fs)} left")
            print(f"  {what} on a full disk: exit {o.code}: {o.stderr.strip()[:160]}")
        filler.unlink()


def body(part: Part, work: Path, args) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        part.notes["skipped"] = "mounting a tmpfs needs root: run this part as root"
        print(f"disk: skipped ({part.notes['skipped']})")
        return
    folder = write_folder(work / "imgs", n_train=620, n_test=40)
    reference = work / "reference"
    train_ok(*train_args(folder, reference, *CHOOSE, epochs=2))
    for name, k in SAVE_POINTS:
        save_point(part, folder, work, reference, name, k)
    other_writers(part, folder, work, reference)


def main(argv: list[str] | None = None) -> Part:
    return part_main("disk", __doc__, argv, body)


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
