"""The book's code and convzoo's ``--recipe d2l``, whole processes side by side, alternating per
seed: test accuracy and wall time from process start to exit, fp32 both. The book side is the
published ``d2l`` package untouched (``train_ch6`` after ``torch.manual_seed(seed)``, data from
``reference_d2l.prepare_fashion_mnist``, nothing downloaded); ``convzoo/reproduce/book.py``
records the LeNet accuracies.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/book_runs.py --seeds 0-9 \
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

#: the book's learning rates (batch 256 for both)
BOOK_LR = {"lenet": 0.9, "lenet_bn": 1.0}

BOOK_CHILD = """
import sys, torch
sys.path.insert(0, sys.argv[4])
from d2l import torch as d2l
import book_nets
seed, epochs, model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.manual_seed(seed)
net = d2l.LeNet() if model == "lenet" else book_nets.lenet_bn()
book_nets.materialise(net, (1, 1, 28, 28))
train_iter, test_iter = d2l.load_data_fashion_mnist(256)
d2l.train_ch6(net, train_iter, test_iter, epochs, {lr}[model], torch.device("cpu"))
print("RESULT", d2l.evaluate_accuracy_gpu(net, test_iter))
""".replace("{lr}", repr(BOOK_LR))


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def run_book(seed: int, epochs: int, data_root: Path, model: str = "lenet") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp) / "work"
        cwd.mkdir()
        (Path(tmp) / "data").symlink_to(data_root)  # d2l's root is "../data"
        out = subprocess.run(
            [sys.executable, "-c", BOOK_CHILD, str(seed), str(epochs), model, str(HERE)],
            cwd=cwd, capture_output=True, text=True, check=True,
        )  # fmt: skip
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return float(line.split()[1])


def run_ours(seed: int, epochs: int, model: str = "lenet") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "convzoo", "train", "--recipe", "d2l", "--model", model,
             "--seed", str(seed), "--epochs", str(epochs), "--out", tmp],
            check=True, capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
        return float(json.loads((Path(tmp) / "metrics.json").read_text())["test_acc"])


def timed(model: str, epochs: int, seeds: list[int], data_root: Path, out: dict) -> dict:
    """Both sides for each seed, alternating; ``out`` gains accuracies and seconds."""
    for seed in seeds:
        for side in ("book", "ours"):
            t0 = time.perf_counter()
            if side == "book":
                acc = run_book(seed, epochs, data_root, model)
            else:
                acc = run_ours(seed, epochs, model)
            out.setdefault(side, {})[seed] = acc
            out.setdefault("seconds", {})[f"{side}-{seed}"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet", choices=tuple(BOOK_LR))
    p.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 0,3,5")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from reference_d2l import prepare_fashion_mnist

    data_root = prepare_fashion_mnist().resolve()
    result: dict = {"model": args.model, "epochs": args.epochs}
    for seed in _seeds(args.seeds):
        timed(args.model, args.epochs, [seed], data_root, result)
        for side in ("book", "ours"):
            print(f"seed {seed} {side}: test acc {result[side][seed]:.4f} "
                  f"({result['seconds'][f'{side}-{seed}']:.0f} s)", flush=True)  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
