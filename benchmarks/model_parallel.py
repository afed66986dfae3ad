"""Model and pipeline parallelism against one device, on this machine's CPU, in one run.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/model_parallel.py [--model speednet] [--quick]

Trains ``benchmarks/parallel_check.py``'s job (synthetic 28 px images, batch 256, the last of
2 epochs timed) with: ``single``, ``model`` on ``cpu,cpu`` (plain, and 4 micro-batches), and
``pipeline`` as 2 gloo processes under torchrun (GPipe and 1F1B with 4 micro-batches, GPipe
with 8); every process has one thread. Prints examples/sec and the ratio to ``single``
measured in the same run (first and again last, to show the drift of the shared machine), the
load before and after, and what each device holds: its parts' parameters and the activation
it sends per example.

On a CPU this is not meant to be faster: ``cpu,cpu`` is one device listed twice (the same
arithmetic plus copies), and the pipeline's two processes use two cores where ``single`` uses
one, minus the bubble and the messages between them. The point of splitting
a network is memory per device (the table's second part); the speed of real devices is
measured by ``benchmarks/gpu_parallel.sh``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "benchmarks" / "parallel_check.py"

#: (label, strategy arguments, processes); every process has 1 thread: on the 2 shared cores two
#: threads of one process stall each other at every parallel region whenever another user's
#: work takes a core (measured 100-700 examples/sec for the same run at load 6-12)
CASES = [
    ("single", ["--strategy", "single"], 1),
    ("model cpu,cpu", ["--strategy", "model", "--devices", "cpu,cpu"], 1),
    ("model cpu,cpu, 4 micro-batches",
     ["--strategy", "model", "--devices", "cpu,cpu", "--microbatches", "4"], 1),
    ("pipeline, GPipe, 4 micro-batches", ["--strategy", "pipeline", "--microbatches", "4"], 2),
    ("pipeline, 1F1B, 4 micro-batches",
     ["--strategy", "pipeline", "--microbatches", "4", "--pipeline-schedule", "1f1b"], 2),
    ("pipeline, GPipe, 8 micro-batches", ["--strategy", "pipeline", "--microbatches", "8"], 2),
    ("single (again, for the drift)", ["--strategy", "single"], 1),
]  # fmt: skip
REFERENCE = "single"


def run_case(args: list[str], procs: int, out: Path, common: list[str]) -> float:
    """examples/sec of the last epoch, as parallel_check prints it."""
    launch = [sys.executable]
    if procs > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
    cmd = [*launch, str(CHECK), *args, "--device", "cpu", "--out", str(out), *common]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    found = re.search(r"RESULT .*: ([\d,]+) examples/sec", proc.stdout)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return float(found.group(1).replace(",", ""))


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def split_table(model: str) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from convzoo.models import create_model
    from convzoo.parallel.split import plan_split

    with torch.device("meta"):
        net = create_model(model)
    return plan_split(net, (1, 28, 28), 2).table(["device 0", "device 1"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="speednet")
    p.add_argument("--quick", action="store_true", help="20 steps an epoch instead of 50")
    p.add_argument("--out", default=None, help="run directories (default: a temp dir)")
    args = p.parse_args(argv)
    import tempfile

    out = Path(args.out or tempfile.mkdtemp(prefix="model-parallel-"))
    steps = 20 if args.quick else 50
    common = ["--model", args.model, "--epochs", "2", "--train-size", str(256 * steps)]
    print(f"load before: {loadavg()}  (model {args.model}, {steps} steps of 256 an epoch)")
    speeds = {}
    for i, (label, case, procs) in enumerate(CASES):
        speeds[label] = run_case(case, procs, out / f"case{i}", common)
        print(f"  {label}: {speeds[label]:,.0f} examples/sec", flush=True)
    print(f"load after: {loadavg()}\n")
    ref = speeds[REFERENCE]
    print(f"| case | processes (1 thread each) | examples/sec | vs {REFERENCE} |")
    print("|---|---:|---:|---:|")
    for label, _, procs in CASES:
        print(f"| {label} | {procs} | {speeds[label]:,.0f} | {speeds[label] / ref:.2f} |")
    print("\nwhat each device holds (the 2-way split both strategies use):")
    print(split_table(args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
