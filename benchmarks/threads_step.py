"""One training step with 1 or 2 threads, fp32 or bf16 autocast: how a cell of ``convzoo
reproduce`` should use a small shared CPU.

Times ``steps`` training steps (SGD, cross-entropy) of a zoo model on random images after
``warmup`` steps, for each (threads, precision) pair, in one process, and prints the median
step time and its ratio to the first pair (fp32 on all the process's threads), with the load
average. The decision it informs: ``convzoo reproduce --profile cpu`` trains two one-thread
cells at once rather than one two-thread cell (``reproduce/runner.py``), and results are in
benchmarks/RESULTS.md ("Threads and bf16 on the busy CPU").

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/threads_step.py --size 32
    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/threads_step.py --model resnet1d \
        --size 1460 --batch-size 16     # a series model: size is the length (ACSF1's)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn


def step_times(model: str, size: int, batch: int, bf16: bool, steps: int, warmup: int) -> list:
    from convzoo.models import create_model, get_model_entry

    torch.manual_seed(0)
    net = create_model(model)
    images = get_model_entry(model).spatial_dims == 2
    if bf16 and images:  # as the fast recipe trains: bf16 autocast with channels_last
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    # a sequence model (resnet1d, ...) takes N x 1 x size series, no channels-last layout
    x = torch.rand(batch, 1, size, size) if images else torch.randn(batch, 1, size)
    x = x.contiguous(memory_format=torch.channels_last) if bf16 and images else x
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    cores = torch.get_num_threads()
    base = None
    from convzoo.models import get_model_entry

    unit = "px" if get_model_entry(args.model).spatial_dims == 2 else "steps long"
    print(
        f"{args.model} @{args.size} {unit}, batch {args.batch_size}, median of {args.steps} steps"
    )
    for threads in sorted({cores, 1}, reverse=True):
        torch.set_num_threads(threads)
        for bf16 in (False, True):
            times = step_times(
                args.model, args.size, args.batch_size, bf16, args.steps, args.warmup
            )
            med = statistics.median(times)
            base = base or med
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            print(
                f"{threads} thread(s) {'bf16' if bf16 else 'fp32'}: {1000 * med:7.0f} ms a step "
                f"(min {1000 * min(times):.0f}, max {1000 * max(times):.0f}), "
                f"{base / med:.2f}x the first row's speed; load {load}",
                flush=True,
            )


if __name__ == "__main__":
    main()
