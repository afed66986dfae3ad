"""Start-up: how long a whole `convzoo` process takes to answer, against the goals (a usage
error <= 0.5 s, `--help` of any command <= 0.5 s, `convzoo models` <= 2 s).

Each case is the median of --runs whole processes, `python -m convzoo` and the `convzoo` entry
point (where it is installed beside this Python), run in turns. The first line names the
machine and its load: other work on the cores shows in these figures.

    PYTHONPATH=src python benchmarks/bench_startup.py           # ~1 min
    PYTHONPATH=src python benchmarks/bench_startup.py --against /tmp/old/src  # before/after
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("models", "data", "augment", "train", "evaluate", "lr-find", "finetune", "explain")
COMMANDS += ("export", "reproduce", "bench", "summary", "predict")
#: (label, arguments, goal in seconds, exit status)
CASES = [
    ("usage error: train --epochs 0", ["train", "--epochs", "0"], 0.5, 2),
    ("usage error: evaluate (no RUN)", ["evaluate"], 0.5, 2),
    ("models", ["models"], 2.0, 0),
    *((f"{c} --help", [c, "--help"], 0.5, 0) for c in COMMANDS),
]


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next((s.split(":", 1)[1].strip() for s in lscpu if s.startswith("Model name")), "?")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load}, Python {sys.version.split()[0]}"


def entry_points(against: str | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (command, environment); ``against``: another checkout's src, timed in turn."""
    here = dict(os.environ)
    found = {"python -m convzoo": ([sys.executable, "-m", "convzoo"], here)}
    script = Path(sys.executable).parent / "convzoo"
    if script.is_file() or shutil.which("convzoo"):
        found["convzoo"] = ([str(script if script.is_file() else shutil.which("convzoo"))], here)
    if against:
        before = {**here, "PYTHONPATH": against}
        found[f"before ({against})"] = found["python -m convzoo"][0], before
    return found


def seconds(cmd: list[str], env: dict[str, str], status: int) -> float:
    """Wall time of one process; NaN when it exits otherwise than ``status`` (a crash)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    return time.perf_counter() - start if done.returncode == status else math.nan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="processes per case and entry point")
    p.add_argument("--against", default=None, metavar="SRC", help="also time this src folder")
    args = p.parse_args(argv)
    entries = entry_points(args.against)
    print(machine())
    print(f"median of {args.runs} whole processes per cell\n")
    print(f"| case | {' | '.join(entries)} | goal | |\n|---|{'---:|' * len(entries)}---:|---|")
    failed = 0
    for label, case, goal, status in CASES:
        times: dict[str, list[float]] = {name: [] for name in entries}
        for _ in range(args.runs):  # the entry points in turns: load changes hit all alike
            for name, (cmd, env) in entries.items():
                times[name].append(seconds(cmd + case, env, status))
        medians = [statistics.median(t) for t in times.values()]
        ok = all(m <= goal for name, m in zip(entries, medians) if not name.startswith("before"))
        # NaN: the command failed (the old `bench` outside a checkout)
        failed += not ok
        cells = " | ".join("failed" if math.isnan(m) else f"{m:.2f} s" for m in medians)
        print(f"| {label} | {cells} | <= {goal:g} s | {'pass' if ok else 'FAIL'} |", flush=True)
    print(f"\n{len(CASES) - failed} of {len(CASES)} cases within their goal")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
