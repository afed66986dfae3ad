"""Why the fast recipe's sequence settings are what they are: one change per row, on validation.

Trains ``resnet1d`` with ``--recipe fast`` (its sequence settings,
``convzoo.train.recipes.FAST_SEQUENCES``) and one change per row on UCR sets, for a few seeds,
and prints the VALIDATION figures of the kept epoch: the loss (the recipe's monitor) and the
accuracy, averaged over sets and seeds. Each seed also draws another validation split (20% of
the training split, stratified), so the seeds average over splits as well as over
initialisations: the shipped training splits are tiny (36-200 series), one split of 7-40
series says little. Rows are compared, and the recipe decided, on those figures alone; the
test accuracy of the same weights is printed for the record, never to choose.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/sequence_recipe.py   # ~1 h, busy
    PYTHONPATH=src python benchmarks/sequence_recipe.py --rows "fast;batch 8" --seeds 1
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

#: the cheap sets (seconds an epoch); OSULeaf and ACSF1 cost 10-100x more per epoch
SETS = ["ucr:GunPoint", "ucr:ArrowHead", "ucr:ItalyPowerDemand", "ucr:PickupGestureWiimoteZ"]
#: a row's key (not a TrainConfig field) for which epoch it is judged by: "best" (the epoch the
#: recipe's monitor picks, as shipped) or "last"
KEEP = "keep"
#: row name -> the change against the recipe (TrainConfig fields)
ROWS: dict[str, dict[str, Any]] = {
    "fast": {},
    "batch 8": {"batch_size": 8},
    "lr 3e-3": {"lr": 3e-3},
    "nesterov sgd lr 0.05": {"optimizer": "nesterov", "lr": 0.05, "weight_decay": 5e-4},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "crop:0.9,scale,jitter": {"augment": "crop:0.9,scale:0.8-1.2,jitter:0.05"},
    "scale,jitter": {"augment": "scale:0.8-1.2,jitter:0.05"},
    "20 epochs": {"epochs": 20},
    "80 epochs": {"epochs": 80},
    # the same runs, judged by the LAST epoch's validation figures instead of the epoch the
    # validation loss picks (which flatters the picked rows: chosen and judged on the same
    # series); better here means training on the whole split and keeping the last weights,
    # no split to choose on, is the better protocol for these tiny sets
    "keep the last epoch": {KEEP: "last"},
    "80 epochs, keep the last": {"epochs": 80, KEEP: "last"},
    "160 epochs, keep the last": {"epochs": 160, KEEP: "last"},
}


def run(dataset: str, change: dict[str, Any], seed: int) -> dict[str, Any]:
    from convzoo.train.run import resolve_config, train

    change = dict(change)
    keep = change.pop(KEEP, "best")
    cfg = resolve_config(dict(dataset=dataset, model="resnet1d", seed=seed, device="cpu", **change))
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(cfg, save=False, stdout=io.StringIO())
    kept = result.history.records[-1] if keep == "last" else result.history.best(cfg.monitor)
    return {
        "dataset": dataset,
        "seed": seed,
        "val_loss": kept["val_loss"],
        "val_acc": kept["val_acc"],
        "epoch": int(kept["epoch"]),
        # reported only; the last epoch's test figure is its weights' (tested every epoch)
        "test_acc": kept["test_acc"] if keep == "last" else result.metrics["test_acc"],
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=SETS)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--rows", default=";".join(ROWS), help="row names separated by ';'")
    p.add_argument("--jsonl", default=None, help="append every run here (and skip those done)")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(";")]
    path = Path(args.jsonl) if args.jsonl else None
    done = [json.loads(x) for x in path.read_text().splitlines()] if path and path.exists() else []
    print(f"resnet1d, fast recipe, sets {', '.join(args.sets)}, {args.seeds} seed(s), CPU")
    heads = ("val loss", "val acc", "test acc")
    print(f"{'change':<24} " + " ".join(f"{h:>8}" for h in heads) + f" {'wall s':>7} {'load':>5}")
    base = None
    for name in rows:
        runs = []
        for ds in args.sets:
            for seed in range(args.seeds):
                old = [r for r in done if (r["row"], r["dataset"], r["seed"]) == (name, ds, seed)]
                r = old[0] if old else {"row": name, **run(ds, ROWS[name], seed)}
                if path and not old:
                    with path.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                runs.append(r)
        loss = statistics.mean(r["val_loss"] for r in runs)
        acc = statistics.mean(r["val_acc"] for r in runs)
        test = statistics.mean(r["test_acc"] for r in runs)
        wall = statistics.mean(r["wall_s"] for r in runs)
        base = base if base is not None else loss
        delta = "" if math.isclose(loss, base) else f" ({loss - base:+.3f})"
        print(
            f"{name:<24} {loss:>8.4f} {acc:>8.4f} {test:>8.4f} {wall:>7.1f} "
            f"{statistics.mean(r['load'] for r in runs):>5.1f}{delta}",
            flush=True,
        )


if __name__ == "__main__":
    main()
