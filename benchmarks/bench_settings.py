"""Which precision and memory format trains each zoo network fastest on this CPU, and whether
``--precision auto`` (``convzoo.runtime.choose_execution``) picks it: full training steps of
each candidate, taking turns, then a fresh calibration and its pick's share of the fastest.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/bench_settings.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
from torch import nn

#: (model, input side or series length, batch): the fast recipe's sizes and batches
CASES = [
    ("speednet", 28, 256),
    ("lenet", 28, 256),
    ("lenet_bn", 28, 256),
    ("resnet18", 96, 256),
    ("googlenet", 96, 256),
    ("densenet", 96, 256),
    ("alexnet", 224, 256),
    ("vgg11", 224, 256),
    ("nin", 224, 256),
    ("resnet1d", 1460, 16),
]


def step_rates(model: str, size: int, batch: int, pairs: list, steps: int) -> dict[str, list]:
    """Examples per second of each (precision, channels_last) pair, one list of steps each."""
    from convzoo.models import create_model, get_model_entry
    from convzoo.runtime import Precision, label

    images = get_model_entry(model).spatial_dims == 2
    shape = (batch, 1, size, size) if images else (batch, 1, size)
    x, y = torch.rand(shape), torch.randint(0, 10, (batch,))
    runs = []
    for name, cl in pairs:
        torch.manual_seed(0)
        fmt = torch.channels_last if cl else torch.contiguous_format
        net = create_model(model, **({} if model != "vgg11" else {"width_ratio": 4}))
        net = net.to(memory_format=fmt)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        runs.append(
            (label(name, cl), Precision(name, "cpu"), net, opt, x.contiguous(memory_format=fmt))
        )
    rates: dict[str, list] = {r[0]: [] for r in runs}
    for step in range(1 + steps):
        for key, prec, net, opt, inputs in runs:
            start = time.perf_counter()
            with prec.autocast():
                loss = nn.functional.cross_entropy(net(inputs).float(), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step:
                rates[key].append(batch / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated subset of: " + ",".join(c[0] for c in CASES))
    p.add_argument("--steps", type=int, default=3, help="timed steps per setting")
    p.add_argument("--batch-scale", type=float, default=1.0, help="scale every batch (smoke)")
    args = p.parse_args(argv)
    from convzoo.models import create_model, get_model_entry
    from convzoo.runtime import candidates, choose_execution, describe_machine

    os.environ["CONVZOO_CACHE"] = tempfile.mkdtemp()  # calibrate afresh, keep the user's cache
    wanted = args.models.split(",") if args.models else [c[0] for c in CASES]
    print(describe_machine())
    print("| network | input | batch | " + " | ".join(["settings: examples/s (median of steps)"])
          + " | auto picks | its speed / fastest |")  # fmt: skip
    print("|---|---|---:|---|---|---:|")
    for model, size, batch in CASES:
        if model not in wanted:
            continue
        batch = max(2, int(batch * args.batch_scale))
        images = get_model_entry(model).spatial_dims == 2
        pairs = candidates("auto", None, images)
        rates = {
            k: statistics.median(v)
            for k, v in step_rates(model, size, batch, pairs, args.steps).items()
        }
        net = create_model(model, **({} if model != "vgg11" else {"width_ratio": 4}))
        shape = (1, size, size) if images else (1, size)
        pick = choose_execution(net, shape, torch.device("cpu")).label
        best = max(rates.values())
        shown = ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
        print(
            f"| {model} | {size} | {batch} | {shown} | {pick} | {rates[pick] / best:.2f} |",
            flush=True,
        )
    print(describe_machine().split("; ")[-1])


if __name__ == "__main__":
    sys.exit(main())
