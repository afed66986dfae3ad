"""Why the fast recipe is what it is: each choice switched off (or swapped) in turn.

Trains ``speednet`` (and, for the optimizer of networks without batch norm, the book's
sigmoid ``lenet``) on the real Fashion-MNIST with ``--recipe fast`` and one change per row,
for the same number of epochs and seeds, and prints training time and the VALIDATION accuracy
of the kept epoch (the recipe's 10% split of the training images) against the recipe as it
stands: rows are compared, and the recipe decided, on that figure alone. The test accuracy of
the same weights is printed beside it for the record, never to choose. Every value of
``convzoo.train.recipes.fast`` has its row here; the figures are recorded in
``benchmarks/RESULTS.md`` ("fast recipe ablation").

    PYTHONPATH=src python benchmarks/recipe_ablation.py                 # ~12 min on 2 cores
    PYTHONPATH=src python benchmarks/recipe_ablation.py --epochs 1 --rows 'fast;fp32'   # quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

#: row name -> the change against the fast recipe (TrainConfig fields)
ROWS: dict[str, dict[str, Any]] = {
    "fast": {},
    "sgd momentum, no nesterov": {"optimizer": "sgd"},
    "adamw lr 2e-3 wd 0.05": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05},
    "constant lr, no warm-up": {"schedule": "constant", "warmup": 0.0, "lr": 0.05},
    "cosine schedule": {"schedule": "cosine"},
    "no label smoothing": {"label_smoothing": 0.0},
    "no weight decay": {"weight_decay": 0.0},
    "normalized inputs": {"normalize": True},
    "no augmentation": {"augment": ""},
    "hflip + crop:2": {"augment": "hflip,crop:2"},
    "fp32": {"precision": "fp32", "channels_last": False},
    "bf16, no channels_last": {"channels_last": False},
    "batch 128, lr 0.1": {"batch_size": 128, "lr": 0.1},
    "batch 512, lr 0.4": {"batch_size": 512, "lr": 0.4},
    # a network without batch norm: the book's sigmoid LeNet gets AdamW (see FAST_OPTIMIZER)
    "lenet: fast (adamw 2e-3)": {"model": "lenet"},
    "lenet: nesterov lr 0.05": {
        "model": "lenet",
        "optimizer": "nesterov",
        "lr": 0.05,
        "weight_decay": 5e-4,
    },
    "lenet: no normalization": {"model": "lenet", "normalize": False},
    "lenet: nesterov lr 0.2": {
        "model": "lenet",
        "optimizer": "nesterov",
        "lr": 0.2,
        "weight_decay": 5e-4,
    },
}


def run(change: dict[str, Any], epochs: int, seed: int, data: Any) -> dict[str, float]:
    import convzoo

    change = dict(change)
    model = change.pop("model", "speednet")
    t = time.perf_counter()
    h = convzoo.fit(
        model,
        data,
        recipe="fast",
        epochs=epochs,
        seed=seed,
        verbose=False,
        device="cpu",
        **change,
    )
    kept = h.best("val_acc")  # the epoch the run keeps, chosen on validation data
    return {
        "val_acc": kept["val_acc"],
        "test_acc": kept["test_acc"],  # reported only
        "epoch": kept["epoch"],
        "train_s": sum(h.column("epoch_time_s")),
        "total_s": time.perf_counter() - t,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--rows", default=";".join(ROWS), help="row names separated by ';'")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from convzoo.data import load_dataset

    data = (load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test"))
    rows = [r.strip() for r in args.rows.split(";")]
    print(
        f"speednet (rows starting lenet: the book's lenet), Fashion-MNIST, {args.epochs} epochs, "
        f"{args.seeds} seed(s), CPU"
    )
    head = f"{'change':<28} {'val acc':>8} {'spread':>7} {'test acc':>9} {'train s':>8}"
    print(head + f" {'vs fast':>8}")
    results: dict[str, Any] = {}
    for name in rows:
        runs = [run(ROWS[name], args.epochs, s, data) for s in range(args.seeds)]
        val = [r["val_acc"] for r in runs]
        test = statistics.mean(r["test_acc"] for r in runs)
        secs = statistics.mean(r["train_s"] for r in runs)
        results[name] = {"runs": runs, "mean_val_acc": statistics.mean(val), "train_s": secs}
        base = results.get("fast")
        rel = f"{secs / base['train_s']:.2f}x" if base else ""
        print(
            f"{name:<28} {statistics.mean(val):>8.4f} {max(val) - min(val):>7.4f} "
            f"{test:>9.4f} {secs:>8.1f} {rel:>8}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
