"""Running the cells of a table: skip what is done, resume what was cut, say how long is left.

Every cell is ``convzoo train --auto-resume --out DIR/runs/<cell> ...`` run as its own process
(by default): the command in the report is then literally the one that ran, memory and threads
are given back between cells, and a cell that dies takes nothing else with it. A cell is done
when its run directory holds every file a finished run writes; a cell with a checkpoint but no
final files resumes from it (``--auto-resume``); so ``convzoo reproduce`` started again after
any interruption, ``kill -9`` included, goes on where it stopped and never trains a finished
cell again. ``DIR/reproduce.json`` keeps the profile, each cell's command, wall time and the
machine's load, for the report; ``DIR/logs/<cell>.log`` keeps each cell's output.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import io
import json
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConvzooError
from ..io import atomic_write_json
from .profiles import Cell, Profile

STATE = "reproduce.json"
#: what every finished run directory holds (``confusion.png`` is written last; a run with a
#: validation split also keeps ``best.safetensors``)
FINISHED = ("model.safetensors", "history.csv", "metrics.json", "confusion.png")


def load_average() -> str:
    """``/proc/loadavg``'s 1-, 5- and 15-minute figures (empty where there is none)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def is_done(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run (every file the end of a run writes)."""
    return all((run_dir / name).exists() for name in FINISHED)


def cell_command(cell: Cell, run_dir: Path, device: str, data_dir: str | None) -> list[str]:
    """The ``convzoo train`` arguments of a cell (after ``convzoo``)."""
    args = ["train", "--auto-resume", "--out", str(run_dir), "--device", device, *cell.args()]
    return args + (["--data-dir", data_dir] if data_dir else [])


def minutes(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` (released by the kernel however this process ends): two
    ``reproduce`` runs in one folder would train the same cell twice at once."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConvzooError(
                f"another convzoo reproduce is running in {out}; wait for it to finish or "
                f"choose another --out"
            ) from None
        yield


class State:
    """``DIR/reproduce.json``: the profile, every cell planned so far, each invocation."""

    def __init__(self, out: Path, profile: Profile) -> None:
        self.path = out / STATE
        data: dict[str, Any] = {"profile": profile.name, "cells": {}, "invocations": []}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                raise ConvzooError(
                    f"{self.path} is damaged; move the folder aside or choose another --out"
                ) from None
            if data.get("profile") != profile.name:
                raise ConvzooError(
                    f"{out} holds the {data.get('profile')!r} profile's table; continue it "
                    f"with --profile {data.get('profile')} or choose another --out"
                )
        self.data = data

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def cell(self, cell: Cell) -> dict[str, Any]:
        return self.data["cells"].setdefault(cell.name, {})


def run_subprocess(
    argv: list[str], log: TextIO, console: TextIO, jobs: int = 1
) -> tuple[int, float]:
    """Run ``python -m convzoo ARGV``; each output line goes to ``log`` and, indented, to
    ``console``. Returns the exit status and the CPU seconds the process used (on shared cores
    the wall time says how busy the machine was; the CPU time says what the cell cost).

    With ``jobs`` cells at once, each gets ``cores // jobs`` threads unless OMP_NUM_THREADS is
    set: on 2 busy CPU cores two one-thread cells trained resnet18@32 at 410 ms a step each
    where one two-thread cell took 600-1000 ms (a descheduled thread stalls the other at every
    parallel region; benchmarks/RESULTS.md)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    cmd = [sys.executable, "-m", "convzoo", *argv]
    # a SIGKILLed reproduce leaves no cell training: its next line meets the closed pipe
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                console.write("    " + line)
                console.flush()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, for its usage
            return proc.returncode, usage.ru_utime + usage.ru_stime
        except BaseException:  # Ctrl-C or a kill of this process: the cell stops with it
            proc.terminate()
            proc.wait()
            raise


class _Tee:
    """A text stream writing to a log file and, indented, to the console."""

    def __init__(self, log: TextIO, console: TextIO) -> None:
        self.log, self.console = log, console

    def write(self, text: str) -> int:
        self.log.write(text)
        self.console.write(text.replace("\n", "\n    ") if text.strip() else text)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.console.flush()

    def isatty(self) -> bool:
        return False


def run_in_process(
    cell: Cell, run_dir: Path, device: str, data_dir: str | None, log: TextIO, console: TextIO
) -> tuple[int, float]:
    """The same run in this process (``--in-process``: saves the start-up of a process per
    cell, which on a GPU machine is most of a small cell's time); exit status and CPU s."""
    before = _cpu_seconds()
    rc = _train_here(cell, run_dir, device, data_dir, log, console)
    return rc, _cpu_seconds() - before


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _train_here(cell, run_dir, device, data_dir, log, console) -> int:
    from ..train.run import resolve_config, train

    overrides = {**cell.overrides(), "out": str(run_dir), "device": device}
    if data_dir:
        overrides["data_dir"] = data_dir
    try:
        train(resolve_config(overrides), auto_resume=True, stdout=_Tee(log, console))
    except ConvzooError as e:
        print(f"convzoo: error: {e}", file=_Tee(log, console), flush=True)
        return e.exit_code
    return 0


def run_cells(
    profile: Profile,
    cells: list[Cell],
    out: Path,
    *,
    device: str = "auto",
    data_dir: str | None = None,
    in_process: bool = False,
    jobs: int | None = None,
    console: TextIO | None = None,
) -> list[str]:
    """Run every cell not yet done, in order, ``jobs`` at a time (default: the profile's; each
    its own process); returns the names of the cells that failed."""
    jobs = jobs or (1 if in_process else profile.jobs)
    if jobs < 1 or (jobs > 1 and in_process):
        raise ConvzooError("--jobs must be >= 1, and 1 with --in-process")
    console = console or sys.stdout
    out = Path(out)
    with locked(out):
        table = Table(out, profile, device, data_dir, in_process, jobs, console)
        todo = [cell for cell in cells if not table.plan(cell)]
        table.progress = Progress(profile.name, cells, console, jobs)
        for cell in cells:
            if cell not in todo:
                table.progress.skip(cell)
        if jobs == 1:  # in this thread: Ctrl-C reaches a cell trained in-process
            codes = [table.run(cell) for cell in todo]
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                codes = list(pool.map(table.run, todo))
        failed = [cell.name for cell, rc in zip(todo, codes) if rc != 0]
        table.close(failed)
        return failed


class Table:
    """The folder of a table while its cells run: the state file, logs and progress."""

    def __init__(self, out, profile, device, data_dir, in_process, jobs, console) -> None:
        self.out, self.device, self.data_dir = out, device, data_dir
        self.in_process, self.console = in_process, console
        self.state = State(out, profile)
        self.invocation = {
            "argv": sys.argv, "started": _now(), "load_start": load_average(), "jobs": jobs,
        }  # fmt: skip
        self.state.data["invocations"].append(self.invocation)
        self.lock = threading.Lock()  # state and console, shared by the jobs
        self.progress: Progress

    def run_dir(self, cell: Cell) -> Path:
        return self.out / "runs" / cell.name

    def argv(self, cell: Cell) -> list[str]:
        return cell_command(cell, self.run_dir(cell), self.device, self.data_dir)

    def plan(self, cell: Cell) -> bool:
        """Record the cell and its command; whether it is done already."""
        self.state.cell(cell).update(
            model=cell.model,
            recipe=cell.recipe,
            seed=cell.seed,
            budget=asdict(cell.budget),
            run_dir=str(Path("runs") / cell.name),
            command="convzoo " + shlex.join(self.argv(cell)),
        )
        return is_done(self.run_dir(cell))

    def run(self, cell: Cell) -> int:
        run_dir, record = self.run_dir(cell), self.state.cell(cell)
        log_path = self.out / "logs" / f"{cell.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.progress.start(cell, resuming=(run_dir / "checkpoint.pt").exists())
            record.update(load_start=load_average(), started=_now())
            self.state.save()
        t0 = time.perf_counter()
        # with several jobs at once their output would interleave: it goes to the logs only
        shown = self.console if self.progress.jobs == 1 else io.StringIO()
        with open(log_path, "a") as log:
            log.write(f"== {_now()} convzoo {shlex.join(self.argv(cell))}\n")
            log.flush()
            if self.in_process:
                rc, cpu = run_in_process(cell, run_dir, self.device, self.data_dir, log, shown)
            else:
                rc, cpu = run_subprocess(self.argv(cell), log, shown, self.progress.jobs)
        wall = time.perf_counter() - t0
        with self.lock:
            record.update(
                wall_s=record.get("wall_s", 0.0) + wall,  # every attempt, resumed ones too
                cpu_s=record.get("cpu_s", 0.0) + cpu,
                load_end=load_average(),
                finished=_now(),
                status="done" if rc == 0 and is_done(run_dir) else f"failed (exit {rc})",
                log=str(log_path.relative_to(self.out)),
            )
            self.state.save()
            self.progress.finish(cell, rc, run_dir, wall)
        return rc

    def close(self, failed: list[str]) -> None:
        self.invocation.update(ended=_now(), load_end=load_average())
        self.state.save()
        self.progress.summary(failed)


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


class Progress:
    """One line per cell: cells done and left, and the time left, from each cell's expected
    seconds scaled by how this machine has kept to them so far in this invocation."""

    def __init__(self, profile: str, cells: list[Cell], console: TextIO, jobs: int = 1) -> None:
        self.profile = profile
        self.jobs = jobs
        self.left = list(cells)
        self.total = len(cells)
        self.console = console
        self.spent = 0.0  # wall seconds of the cells run so far
        self.expected = 0.0  # what the profile expected for them

    def _say(self, text: str) -> None:
        print(f"[reproduce {self.profile}] {text}", file=self.console, flush=True)

    def time_left(self) -> float:
        scale = self.spent / self.expected if self.expected else 1.0
        return scale * sum(c.est_s for c in self.left) / self.jobs

    def skip(self, cell: Cell) -> None:
        self.left.remove(cell)
        self._say(f"{cell.name}: already done, skipped")

    def start(self, cell: Cell, resuming: bool) -> None:
        done = self.total - len(self.left)
        what = "resuming" if resuming else "training"
        self._say(
            f"{done}/{self.total} cells done, {len(self.left)} left, about "
            f"{minutes(self.time_left())} left | {what} {cell.model} {cell.recipe} seed "
            f"{cell.seed} ({cell.budget.describe(cell.model, cell.recipe)})"
        )

    def finish(self, cell: Cell, rc: int, run_dir: Path, wall: float) -> None:
        self.left.remove(cell)
        self.spent += wall
        self.expected += cell.est_s
        if rc == 0 and (run_dir / "metrics.json").exists():
            acc = json.loads((run_dir / "metrics.json").read_text()).get("test_acc")
            self._say(f"{cell.name}: done in {minutes(wall)}, test acc {acc:.4f}")
        else:
            self._say(f"{cell.name}: FAILED (exit {rc}) after {minutes(wall)}; see its log")

    def summary(self, failed: list[str]) -> None:
        if failed:
            self._say(f"{len(failed)} cell(s) failed: {', '.join(failed)}")
        else:
            self._say(f"all {self.total} cells done")
