"""Two writers on one ``--out``: while a run trains, the same command, ``--auto-resume`` and
``--resume`` are refused in one line and the run ends bitwise equal to an uninterrupted one;
of two identical starts exactly one trains; a dead process's lock does not block; a finished
run is refused as a new ``--out``.

    python benchmarks/soak/writers.py [--rounds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Part, convzoo, env, one_line_problem, rng, same_files, train_args, write_folder
from kills import Victim

FINAL = ("model.safetensors", "best.safetensors")


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
    differ = same_files(reference, run_dir, FINAL)
    part.check(not differ, f"round {k}: {differ} differ from the uninterrupted run's")


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
    differ = same_files(reference, run_dir, FINAL)
    part.check(not differ, f"race {k}: {differ} differ from the uninterrupted run's")


def stale_lock(part: Part, folder: Path, work: Path, reference: Path, r, k: int) -> None:
    run_dir = work / f"stale{k}"
    v = Victim(train_args(folder, run_dir, epochs=3), work / f"stale{k}.phases")
    v.wait_for("save-end checkpoint.pt", r.randint(1, 4))
    v.proc.kill()
    v.proc.communicate()
    o = convzoo("train", "--resume", run_dir, timeout=600)
    part.check(o.code == 0, f"stale {k}: the resume was refused: {o.stderr.strip()[:200]}")
    differ = same_files(reference, run_dir, FINAL)
    part.check(not differ, f"stale {k}: {differ} differ from the uninterrupted run's")


def main(argv: list[str] | None = None) -> Part:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="soak-writers-"))
    part, t = Part("writers"), time.perf_counter()
    folder = write_folder(work / "imgs", n_train=200, n_test=80)
    reference = work / "reference"
    o = convzoo(*train_args(folder, reference, epochs=3), timeout=600)
    if o.code != 0:
        raise SystemExit(f"the uninterrupted run failed: {o.stderr}")
    r = rng(args.seed, "writers")
    for k in range(args.rounds):
        while_running(part, folder, work, reference, r, k)
        race(part, folder, work, reference, r, k)
        stale_lock(part, folder, work, reference, r, k)
        print(f"  round {k + 1}: {len(part.failures)} failures so far", flush=True)
    finished = train_args(folder, reference, epochs=3)
    refused(part, "a finished run as --out", finished, reference, "already holds a run")
    part.seconds = time.perf_counter() - t
    print(f"writers: {part.cases} checks, {len(part.failures)} failures, {part.seconds:.0f} s")
    return part


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
