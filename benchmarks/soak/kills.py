"""Kills: a small run SIGKILLed again and again (seeded moments: start-up, a step, an evaluation,
a save), each followed by a resume; every checkpoint and the end bitwise equal to the
uninterrupted run's. Then SIGTERM/SIGINT: a checkpoint, one line, exit 143 / 130.

    python benchmarks/soak/kills.py [--kills 50] [--signals 10] [--seed 0]
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    CHOOSE,
    Outcome,
    Part,
    env,
    history_losses,
    one_line_problem,
    part_main,
    rng,
    train_args,
    write_folder,
)

HERE = Path(__file__).resolve().parent
VICTIM = HERE / "victim.py"
EPOCHS = 10
INTERRUPTED = re.compile(
    r"^convzoo: interrupted: checkpoint at epoch (\d+) step (\d+) kept in (\S+); "
    r"resume with convzoo train --resume (\S+)$"
)


class Victim:
    """One ``victim.py`` process and its phase marks."""

    def __init__(self, argv: list[str], phases: Path, **extra_env: str) -> None:
        phases.write_text("")
        self.phases = phases
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(VICTIM), *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env(SOAK_PHASES=str(phases), **extra_env),
        )

    def marks(self) -> list[str]:
        return [line.split(" ", 2)[2] for line in self.phases.read_text().splitlines()]

    def wait_for(self, what: str, count: int = 1, timeout: float = 120) -> bool:
        """Until the ``count``-th mark starting with ``what``; False if the process ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(m.startswith(what) for m in self.marks()) >= count:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.0005)
        return False

    def until(self, seconds: float, steps: int) -> bool:
        """Wait ``seconds`` or until the process begins its ``steps``-th step, whichever is
        first; False if the process ended."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            if sum(m == "step" for m in self.marks()) >= steps:
                return True
            time.sleep(0.0005)
        return self.proc.poll() is None

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def phase_of(marks: list[str]) -> str:
    """What the process was doing at the kill: its last mark, in words."""
    steps = [m for m in marks if m == "step"]
    last = marks[-1] if marks else "start"
    if not steps and not last.startswith("save-begin"):
        return "start-up"
    if last.startswith("save-begin"):
        return "save " + last.split(" ", 1)[1]
    if last == "eval-begin":
        return "evaluation"
    if last.startswith("exit"):
        return "exited"
    return "steps"  # between steps, inside one, or the callbacks after an evaluation


@dataclass
class Reference:
    """The uninterrupted run: its folder, timings for drawing delays, its length in steps, and
    its state at every checkpoint (global step -> a copy of that checkpoint.pt)."""

    run_dir: Path
    startup: float
    total_s: float
    steps: int
    steps_per_epoch: int
    checkpoints: dict[int, Path]


def reference_run(folder: Path, work: Path) -> Reference:
    keep = work / "reference-checkpoints"
    keep.mkdir(parents=True, exist_ok=True)
    run_dir = work / "reference"
    v = Victim(
        train_args(folder, run_dir, *CHOOSE, epochs=EPOCHS),
        work / "reference.phases",
        SOAK_KEEP_CHECKPOINTS=str(keep),
    )
    code, err = v.finish(timeout=600)
    if code != 0:
        raise SystemExit(f"the uninterrupted run failed: {err}")
    lines = [line.split(" ", 2) for line in v.phases.read_text().splitlines()]
    t0 = float(lines[0][0])
    first_step = next(float(t) for t, _, m in lines if m == "step")
    checkpoints = {checkpoint_step(p)[1]: p for p in keep.glob("*.pt")}
    steps = checkpoint_step(run_dir)[1]
    return Reference(
        run_dir, first_step - t0, float(lines[-1][0]) - t0, steps, steps // EPOCHS, checkpoints
    )


def kill_once(v: Victim, mode: str, r, ref: Reference, budget: int) -> bool:
    """Wait for the moment ``mode`` names, then SIGKILL; False if the run ended first. The
    process begins at most ``budget`` steps (at least its first) before the kill."""
    cap = max(budget, 1)
    alive = {
        "any": lambda: v.until(r.uniform(0, ref.total_s), cap),
        "start-up": lambda: v.until(r.uniform(0, ref.startup), 1),
        "steps": lambda: (
            v.wait_for("step", r.randint(1, min(6, cap))) and v.until(r.uniform(0, 0.01), cap)
        ),
        "evaluation": lambda: v.wait_for("eval-begin") and v.until(r.uniform(0, 0.02), cap),
        # the j-th save of any file comes by the j-th checkpoint, at most 2 j steps in
        "save": lambda: v.wait_for("save-begin", r.randint(1, max(1, min(3, budget // 2)))),
    }[mode]()
    if not alive:
        return False
    v.proc.send_signal(signal.SIGKILL)
    v.proc.communicate()
    return True


def checkpoint_step(path: Path) -> tuple[int, int, int] | None:
    """(epoch, global step, step in the epoch) of the checkpoint (a file, or a run directory's
    checkpoint.pt), which must load; None if there is none yet."""
    from convzoo.io import load_checkpoint

    path = path / "checkpoint.pt" if path.is_dir() else path
    if not path.exists():
        return None
    state = load_checkpoint(path)["trainer"]
    return int(state["epoch"]), int(state["global_step"]), int(state["step"])


#: what makes a checkpoint's state. Left out: its history (it holds the epochs' timings) and
#: python's ``random`` state, which convzoo saves but neither seeds nor draws from (each process
#: starts it from the OS); torch's generator, which steps draw from, is compared.
STATE = ("model", "optimizer", "scheduler", "scaler", "epoch", "step", "global_step", "sums")


def state_differs(path: Path, reference: Path | None) -> list[str]:
    """The parts of the trainer state in checkpoint ``path`` that differ from ``reference``'s,
    tensors compared bitwise."""
    from convzoo.io import load_checkpoint

    if reference is None:
        return ["no checkpoint at that step in the uninterrupted run"]
    a, b = load_checkpoint(path)["trainer"], load_checkpoint(reference)["trainer"]
    differ = [k for k in STATE if not _equal(a.get(k), b.get(k))]
    return differ + ([] if _equal(a["rng"]["torch"], b["rng"]["torch"]) else ["rng.torch"])


def _equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def restart_argv(run_dir: Path, folder: Path, r) -> list[str]:
    if (run_dir / "config.json").exists() and r.random() < 0.5:
        return ["train", "--resume", str(run_dir)]
    return train_args(folder, run_dir, "--auto-resume", *CHOOSE, epochs=EPOCHS)


def choose_mode(r, budget: int, steps_to_eval: int, first: bool) -> str:
    """A kind of moment that lands within ``budget`` steps of the resumed process."""
    if budget < 1:
        return "start-up"  # no step to spare: killed by its first step at the latest
    if first and budget >= 2:
        return "save"  # a checkpoint on disk from the first kill on
    modes = {"any": 2, "start-up": 2, "steps": 3}
    if steps_to_eval <= budget:
        modes["evaluation"] = 1
    if budget >= 2:
        modes["save"] = 3
    return r.choices(list(modes), list(modes.values()))[0]


def kills(part: Part, folder: Path, work: Path, ref: Reference, n: int, seed: int) -> None:
    r = rng(seed, "kills")
    run_dir, landed, inside_save, compared, fresh, before = work / "killed", {}, 0, 0, 0, None
    for k in range(n):
        progress = (checkpoint_step(run_dir) or (0, 0))[1]
        budget = (ref.steps - progress) // (n - k)  # its share of the steps left
        steps_to_eval = ref.steps_per_epoch - progress % ref.steps_per_epoch
        mode = choose_mode(r, budget, steps_to_eval, first=k == 0)
        v = Victim(restart_argv(run_dir, folder, r), work / "victim.phases")
        if not kill_once(v, mode, r, ref, budget):
            part.check(False, f"kill {k + 1}: the run ended before its kill ({mode})")
            break
        phase = phase_of(v.marks())
        tmp = [p.name for p in run_dir.glob(".*.tmp")]
        inside_save += bool(tmp)
        landed[phase] = landed.get(phase, 0) + 1
        try:
            at = checkpoint_step(run_dir)
            ok = True
        except Exception as e:  # a torn checkpoint: the one thing that must never happen
            at, ok = None, False
            print(f"  checkpoint after kill {k + 1}: {e}")
        part.check(ok, f"kill {k + 1} ({mode}, {phase}): the checkpoint does not load")
        back = at is not None and before is not None and at[1] < before[1]
        part.check(not back, f"kill {k + 1}: the checkpoint went back from {before} to {at}")
        if at is not None:
            differ = state_differs(run_dir / "checkpoint.pt", ref.checkpoints.get(at[1]))
            part.check(not differ, f"kill {k + 1}: checkpoint of step {at[1]}: {differ} differ")
            compared += 1
            fresh += at != before  # written by the process just killed
        before = at
        print(f"  kill {k + 1:2d}: {mode:<10} landed in {phase:<28} checkpoint {at} tmp {tmp}")
    last = Victim(restart_argv(run_dir, folder, r), work / "victim.phases")
    code, err = last.finish()
    part.check(code == 0, f"the last resume failed: {err.strip()[-300:]}")
    left, trained = ref.steps - (before or (0, 0))[1], sum(m == "step" for m in last.marks())
    part.check(trained == left, f"the last resume trained {trained} steps, not the {left} left")
    finish_checks(part, run_dir, ref.run_dir, "killed run")
    part.notes.update(kills_planned=n, kills=sum(landed.values()), landed=landed)
    part.notes.update(kills_with_tmp_file=inside_save, checkpoints_compared=compared)
    part.notes.update(checkpoints_new=fresh, steps_in_run=ref.steps)


def finish_checks(part: Part, run_dir: Path, reference: Path, what: str) -> None:
    if not part.check((run_dir / "metrics.json").exists(), f"{what}: it never finished"):
        return
    part.same_run(reference, run_dir, what)
    same_history = history_losses(reference) == history_losses(run_dir)
    part.check(same_history, f"{what}: history.csv's losses differ")
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (reference, run_dir)]
    keys = ("test_acc", "test_loss", "best_epoch")
    part.check(all(metrics[0][k] == metrics[1][k] for k in keys), f"{what}: metrics.json differs")
    part.check(not list(run_dir.glob(".*.tmp")), f"{what}: temporary files left")


def signals(part: Part, folder: Path, work: Path, reference: Path, n: int, seed: int) -> None:
    """SIGTERM and SIGINT in turn, each at a drawn step or evaluation; then the run ends."""
    r = rng(seed, "signals")
    run_dir = work / "signalled"
    for k in range(n):
        signum = (signal.SIGTERM, signal.SIGINT)[k % 2]
        v = Victim(restart_argv(run_dir, folder, r), work / "signal.phases")
        at = r.choice(["step", "step", "eval-begin"])
        if not v.wait_for(at, r.randint(1, 8) if at == "step" else 1):
            part.check(False, f"signal {k + 1}: the run ended first")
            break
        v.proc.send_signal(signum)
        code, err = v.finish()
        expected = 128 + signum
        problem = one_line_problem(Outcome(code, "", err, 0.0))
        part.check(problem is None, f"signal {k + 1} ({signum.name}): {problem}")
        part.check(code == expected, f"signal {k + 1}: exit {code}, expected {expected}")
        m = INTERRUPTED.match(err.strip())
        part.check(m is not None, f"signal {k + 1}: unexpected line {err.strip()[:200]}")
        if m:
            epoch, _, step = checkpoint_step(run_dir)
            disk = (epoch + 1, step)
            said = (int(m.group(1)), int(m.group(2)))
            part.check(said == disk, f"signal {k + 1}: said {said}, on disk {disk}")
        print(f"  {signum.name} {k + 1}: exit {code}: {err.strip()[:150]}")
    code, err = Victim(restart_argv(run_dir, folder, r), work / "signal.phases").finish()
    part.check(code == 0, f"the resume after the signals failed: {err.strip()[-300:]}")
    finish_checks(part, run_dir, reference, "signalled run")


def body(part: Part, work: Path, args) -> None:
    folder = write_folder(work / "imgs", n_train=900, n_test=400)
    ref = reference_run(folder, work)
    if args.kills:
        kills(part, folder, work, ref, args.kills, args.seed)
    if args.signals:
        # a suite started in the background (``cmd &`` in a script, nohup) ignores SIGINT, and
        # so would every run it starts (convzoo leaves an ignored SIGINT ignored): give the runs
        # the default a terminal's Ctrl-C meets (exec turns this handler into SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signals(part, folder, work, ref.run_dir, args.signals, args.seed)


def main(argv: list[str] | None = None) -> Part:
    return part_main("kills", __doc__, argv, body, kills=50, signals=10, seed=0)


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
