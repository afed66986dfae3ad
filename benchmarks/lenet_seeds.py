"""The book's LeNet and convzoo's ``--recipe d2l`` LeNet over N seeds each, on this machine.

Per seed, interleaved (so that the machine's load falls on both alike), two processes:

- **book**: the published ``d2l`` package (``pip install --no-deps d2l==1.0.3``), untouched:
  ``d2l.load_data_fashion_mnist(256)`` and ``d2l.train_ch6(net, ..., 10, 0.9, cpu)`` on
  ``d2l.LeNet()`` after ``torch.manual_seed(seed)``. The package's LeNet has lazy layers: one
  forward materialises them first, so that ``train_ch6``'s Xavier init (exact type test) sees
  ``Conv2d`` and ``Linear``, as in the book's editions that printed the figures. Its data root
  is ``../data`` from the working directory: the script runs it in a folder beside the IDX
  files ``reference_d2l.prepare_fashion_mnist`` decompressed, so nothing is downloaded.
- **ours**: ``convzoo train --recipe d2l --model lenet --seed S --epochs 10``.

Each side's last-epoch test accuracy goes to the JSON file; ``convzoo.reproduce.compare_runs``
(Welch's two-sample t-test, means within one point) gives the verdict that ``convzoo
reproduce`` prints beside the book's figure, from the book side's accuracies recorded in
``convzoo/reproduce/book.py``.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/lenet_seeds.py --seeds 0-7 \\
        --json benchmarks/lenet-seeds.json      # ~2 + 1.5 min a seed on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BOOK_CHILD = """
import os, sys, torch
from d2l import torch as d2l
seed, epochs = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(seed)
net = d2l.LeNet()
net(torch.zeros(1, 1, 28, 28))  # materialise the lazy layers (the book's apply_init)
train_iter, test_iter = d2l.load_data_fashion_mnist(256)
d2l.train_ch6(net, train_iter, test_iter, epochs, 0.9, torch.device("cpu"))
print("RESULT", d2l.evaluate_accuracy_gpu(net, test_iter))
"""


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def run_book(seed: int, epochs: int, data_root: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp) / "work"
        cwd.mkdir()
        (Path(tmp) / "data").symlink_to(data_root)  # d2l's root is "../data"
        out = subprocess.run(
            [sys.executable, "-c", BOOK_CHILD, str(seed), str(epochs)],
            cwd=cwd, capture_output=True, text=True, check=True,
        )  # fmt: skip
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return float(line.split()[1])


def run_ours(seed: int, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "convzoo", "train", "--recipe", "d2l", "--model", "lenet",
             "--seed", str(seed), "--epochs", str(epochs), "--out", tmp],
            check=True, capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
        return float(json.loads((Path(tmp) / "metrics.json").read_text())["test_acc"])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 0,3,5")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from reference_d2l import prepare_fashion_mnist

    data_root = prepare_fashion_mnist().resolve()
    result: dict = {"epochs": args.epochs, "book": {}, "ours": {}, "seconds": {}}
    for seed in _seeds(args.seeds):
        for side in ("book", "ours"):
            t0 = time.perf_counter()
            if side == "book":
                result[side][seed] = run_book(seed, args.epochs, data_root)
            else:
                result[side][seed] = run_ours(seed, args.epochs)
            result["seconds"][f"{side}-{seed}"] = round(time.perf_counter() - t0, 1)
            print(f"seed {seed} {side}: test acc {result[side][seed]:.4f} "
                  f"({result['seconds'][f'{side}-{seed}']:.0f} s)", flush=True)  # fmt: skip
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
