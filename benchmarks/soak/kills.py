"""Kills: one small training run SIGKILLed 50 times, each kill followed by a resume, ending with
weights bitwise equal to an uninterrupted run's; then SIGTERM and SIGINT, each a clean
checkpoint, one line and the documented exit status (143, 130).

    python benchmarks/soak/kills.py [--kills 50] [--signals 10] [--seed 0]

The run is ``convzoo train`` of a small speednet on a 4-class image folder (fast recipe: a
validation split and best.safetensors, flips, batch norm and its refresh, a checkpoint every 2
steps). Each process is ``victim.py``, the real CLI with phase marks, so that every kill is
known to have landed at start-up, in a step, in an evaluation or inside a save (and a
temporary file of ``io.atomic_path`` seen on disk right after the kill proves the latter).
The moment of each kill is drawn (seeded) from five kinds: a random delay after the process
starts, during start-up, after the k-th step, inside the first evaluation, at the j-th save.
Each restart is ``convzoo train --resume RUN`` or the first command again with
``--auto-resume`` (drawn); after every kill the checkpoint on disk must load.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    Outcome,
    Part,
    convzoo,
    env,
    history_losses,
    one_line_problem,
    rng,
    same_files,
    train_args,
    write_folder,
)

HERE = Path(__file__).resolve().parent
VICTIM = HERE / "victim.py"
EPOCHS = 10
FINAL = ("model.safetensors", "best.safetensors", "metrics.json")
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

    def sleep(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            time.sleep(0.0005)
        return True

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


def timing(folder: Path, work: Path) -> dict[str, float]:
    """Start-up and total seconds of one run, from its phase marks (for drawing delays)."""
    v = Victim(train_args(folder, work / "timing", epochs=EPOCHS), work / "timing.phases")
    code, err = v.finish()
    if code != 0:
        raise SystemExit(f"timing run failed: {err}")
    lines = [line.split(" ", 2) for line in v.phases.read_text().splitlines()]
    t0 = float(lines[0][0])
    first_step = next(float(t) for t, _, m in lines if m == "step")
    return {"startup": first_step - t0, "total": float(lines[-1][0]) - t0}


def kill_once(v: Victim, mode: str, r, times: dict[str, float]) -> bool:
    """Wait for the moment ``mode`` names, then SIGKILL; False if the run ended first."""
    alive = {
        "any": lambda: v.sleep(r.uniform(0, times["total"])),
        "start-up": lambda: v.sleep(r.uniform(0, times["startup"])),
        "steps": lambda: v.wait_for("step", r.randint(1, 6)) and v.sleep(r.uniform(0, 0.01)),
        "evaluation": lambda: v.wait_for("eval-begin") and v.sleep(r.uniform(0, 0.02)),
        "save": lambda: v.wait_for("save-begin", r.randint(1, 3)),
    }[mode]()
    if not alive:
        return False
    v.proc.send_signal(signal.SIGKILL)
    v.proc.communicate()
    return True


def checkpoint_step(run_dir: Path) -> tuple[int, int] | None:
    """(epoch, global step) of the checkpoint on disk, which must load; None if none yet."""
    from convzoo.io import load_checkpoint

    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return None
    state = load_checkpoint(path)["trainer"]
    return int(state["epoch"]), int(state["global_step"])


def restart_argv(run_dir: Path, folder: Path, r) -> list[str]:
    if (run_dir / "config.json").exists() and r.random() < 0.5:
        return ["train", "--resume", str(run_dir)]
    return train_args(folder, run_dir, "--auto-resume", epochs=EPOCHS)


def choose_mode(r, progress: int, total_steps: int, kills_left: int) -> str:
    """A kind of moment; near the end, one that cannot finish the run before its kill."""
    if total_steps - progress < 4 * kills_left:
        return r.choice(["start-up", "save"])
    return r.choices(["any", "start-up", "steps", "evaluation", "save"], [2, 2, 3, 1, 3])[0]


def kills(part: Part, folder: Path, work: Path, reference: Path, n: int, seed: int) -> None:
    times = timing(folder, work)
    total_steps = checkpoint_step(work / "timing")[1]
    r = rng(seed, "kills")
    run_dir, landed, inside_save = work / "killed", {}, 0
    for k in range(n):
        progress = (checkpoint_step(run_dir) or (0, 0))[1]
        mode = "save" if k == 0 else choose_mode(r, progress, total_steps, n - k)
        v = Victim(restart_argv(run_dir, folder, r), work / "victim.phases")
        if not kill_once(v, mode, r, times):
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
        print(f"  kill {k + 1:2d}: {mode:<10} landed in {phase:<28} checkpoint {at} tmp {tmp}")
    code, err = Victim(restart_argv(run_dir, folder, r), work / "victim.phases").finish()
    part.check(code == 0, f"the last resume failed: {err.strip()[-300:]}")
    finish_checks(part, run_dir, reference, "killed run")
    part.notes.update(
        kills=n, landed=landed, kills_with_tmp_file=inside_save, steps_in_run=total_steps
    )


def finish_checks(part: Part, run_dir: Path, reference: Path, what: str) -> None:
    differ = same_files(reference, run_dir, ("model.safetensors", "best.safetensors"))
    part.check(not differ, f"{what}: {differ} differ from the uninterrupted run's")
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
            disk = (checkpoint_step(run_dir)[0] + 1, step_in_epoch(run_dir))
            said = (int(m.group(1)), int(m.group(2)))
            part.check(said == disk, f"signal {k + 1}: said {said}, on disk {disk}")
        print(f"  {signum.name} {k + 1}: exit {code}: {err.strip()[:150]}")
    code, err = Victim(restart_argv(run_dir, folder, r), work / "signal.phases").finish()
    part.check(code == 0, f"the resume after the signals failed: {err.strip()[-300:]}")
    finish_checks(part, run_dir, reference, "signalled run")


def step_in_epoch(run_dir: Path) -> int:
    from convzoo.io import load_checkpoint

    return int(load_checkpoint(run_dir / "checkpoint.pt")["trainer"]["step"])


def main(argv: list[str] | None = None) -> Part:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--signals", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp one)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="soak-kills-"))
    part = Part("kills")
    t = time.perf_counter()
    folder = write_folder(work / "imgs", n_train=400, n_test=400)
    reference = work / "reference"
    ref = convzoo(*train_args(folder, reference, epochs=EPOCHS), timeout=600)
    if ref.code != 0:
        raise SystemExit(f"the uninterrupted run failed: {ref.stderr}")
    if args.kills:
        kills(part, folder, work, reference, args.kills, args.seed)
    if args.signals:
        # a suite started in the background (``cmd &`` in a script, nohup) ignores SIGINT, and
        # so would every run it starts (convzoo leaves an ignored SIGINT ignored): give the runs
        # the default a terminal's Ctrl-C meets (exec turns this handler into SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signals(part, folder, work, reference, args.signals, args.seed)
    part.seconds = time.perf_counter() - t
    print(f"kills: {part.cases} checks, {len(part.failures)} failures, {part.seconds:.0f} s")
    return part


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
