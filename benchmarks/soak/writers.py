"""Two writers on one ``--out``: against a live run the same command, ``--auto-resume`` and
``--resume`` are refused and the run ends bitwise equal; of two racing starts one trains; a dead
process's lock does not block; a finished run is refused as a new ``--out``.

    python benchmarks/soak/writers.py [--rounds 5] [--seed 0]
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from common import (
    Part,
    convzoo,
    env,
    one_line_problem,
    part_main,
    rng,
    train_args,
    train_ok,
    write_folder,
)
from kills import Victim


def start(argv: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "convzoo", *map(str, argv)]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )


def refused(part: Part, what: str, argv: list[str], run_dir: Path, words: str) -> None:
    o = convzoo(*argv, timeout=300)
    problem = one_line_problem(o, (str(run_dir),))
    ok = problem is None and o.code == 2 and words in o.stderr
    part.check(ok, f"{what}: exit {o.code}, {problem or o.stderr.strip()[:200]}")


def while_running(part: Part, folder: Path, work: Path, reference: Path, r, k: int) -> None:
    run_dir = work / f"live{k}"
    v = Victim(train_args(folder, run_dir, epochs=3), work / f"live{k}.phases")
    v.wait_for("step", r.randint(1, 20))
    # the live run is held still (SIGSTOP: alive, its lock held) while the others try: on a
    # busy machine each of them takes seconds to start, and the run would end before them
    v.proc.send_signal(signal.SIGSTOP)
    try:
        in_use = "is in use by another convzoo process (pid"
        same = train_args(folder, run_dir, epochs=3)
        refused(part, f"round {k}: same --out", same, run_dir, in_use)
        auto = train_args(folder, run_dir, "--auto-resume", epochs=3)
        refused(part, f"round {k}: --auto-resume", auto, run_dir, in_use)
        refused(part, f"round {k}: --resume", ["train", "--resume", run_dir], run_dir, in_use)
    finally:
        v.proc.send_signal(signal.SIGCONT)
    code, err = v.finish()
    part.check(code == 0, f"round {k}: the live run failed: {err.strip()[-300:]}")
    part.same_run(reference, run_dir, f"round {k}")


def race(part: Part, folder: Path, work: Path, reference: Path, r, k: int) -> None:
    run_dir = work / f"race{k}"
    argv = train_args(folder, run_dir, epochs=3)
    first = start(argv)
    time.sleep(r.uniform(0, 0.05))
    second = start(argv)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    part.check(codes == [0, 2], f"race {k}: exit codes {codes}: {[e[-200:] for _, e in outs]}")
    loser = outs[[first.returncode, second.returncode].index(2)] if 2 in codes else ("", "")
    said = loser[1].strip()
    part.check(
        "in use by another convzoo process" in said or "already holds a run" in said,
        f"race {k}: the refused run said {said[:200]}",
    )
    part.same_run(reference, run_dir, f"race {k}")


def stale_lock(part: Part, folder: Path, work: Path, reference: Path, r, k: int) -> None:
    run_dir = work / f"stale{k}"
    v = Victim(train_args(folder, run_dir, epochs=3), work / f"stale{k}.phases")
    v.wait_for("save-end checkpoint.pt", r.randint(1, 4))
    v.proc.kill()
    v.proc.communicate()
    o = convzoo("train", "--resume", run_dir, timeout=600)
    part.check(o.code == 0, f"stale {k}: the resume was refused: {o.stderr.strip()[:200]}")
    part.same_run(reference, run_dir, f"stale {k}")


def body(part: Part, work: Path, args) -> None:
    folder = write_folder(work / "imgs", n_train=200, n_test=80)
    reference = work / "reference"
    train_ok(*train_args(folder, reference, epochs=3))
    r = rng(args.seed, "writers")
    for k in range(args.rounds):
        while_running(part, folder, work, reference, r, k)
        race(part, folder, work, reference, r, k)
        stale_lock(part, folder, work, reference, r, k)
        print(f"  round {k + 1}: {len(part.failures)} failures so far", flush=True)
    finished = train_args(folder, reference, epochs=3)
    refused(part, "a finished run as --out", finished, reference, "already holds a run")


def main(argv: list[str] | None = None) -> Part:
    return part_main("writers", __doc__, argv, body, rounds=5, seed=0)


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
