"""The chapter's networks on real time series, beside the published ResNet results.

Trains ``lenet1d``, ``fcn1d`` and ``resnet1d`` with the fast recipe (its sequence settings:
``convzoo.train.recipes.FAST_SEQUENCES``) on every UCR/UEA set the installed ``aeon`` ships,
for several seeds. The recipe trains on the whole training split and keeps its last epoch:
nothing is chosen per run, so nothing needs a validation split; the recipe itself (the epoch
count, keeping the last epoch rather than the one a 20% split picks) was chosen by 5-fold
cross-validation on the training splits (``benchmarks/sequence_recipe.py --folds 5``). The
test split is evaluated once per run, at its end, and only reported.

Published: Ismail Fawaz et al., "Deep learning for time series classification: a review"
(2019), their ResNet (Keras, 1,500 epochs of Adam, the best epoch by *training* loss, the
whole training split, 400-2,000 s per set on a GPU), from their repository's
``results/results-ucr-128.csv`` (UCR 2018) and ``results-mts.csv`` (Baydogan's multivariate
archive): the first iteration, as the issue quotes it, and the mean of their 5 (10 for the
multivariate sets) iterations.

Every run is appended to a JSON-lines file as it ends (``--jsonl``), so an interrupted
benchmark continues where it stopped; ``--write`` puts the table into ``benchmarks/RESULTS.md``.
Times: wall-clock seconds on this machine under the load printed beside them, and the
process's CPU seconds (both threads together): on 2 free cores a run takes about CPU / 2.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/sequences.py --write  # hours
    PYTHONPATH=src python benchmarks/sequences.py --sets ucr:GunPoint --seeds 1     # minutes
    PYTHONPATH=src python benchmarks/sequences.py --epochs 200 --models resnet1d \
        --jsonl benchmarks/sequences-200-epochs.jsonl     # another schedule, its own file
    PYTHONPATH=src python benchmarks/sequences.py --recipe best --models resnet1d \
        --jsonl benchmarks/sequences-best.jsonl           # another recipe, its own file
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
UNIVARIATE = [
    "ucr:GunPoint",
    "ucr:ArrowHead",
    "ucr:OSULeaf",
    "ucr:ItalyPowerDemand",
    "ucr:ACSF1",
    "ucr:PickupGestureWiimoteZ",
]
MULTIVARIATE = ["uea:BasicMotions", "uea:JapaneseVowels"]
MODELS = ["lenet1d", "fcn1d", "resnet1d"]
#: ResNet test accuracy (first iteration, mean over the iterations) from hfawaz/dl-4-tsc
PUBLISHED: dict[str, tuple[float, float]] = {
    "ucr:GunPoint": (0.9933, 0.9907),
    "ucr:ArrowHead": (0.8629, 0.8377),
    "ucr:OSULeaf": (0.9793, 0.9802),
    "ucr:ItalyPowerDemand": (0.9660, 0.9615),
    "ucr:ACSF1": (0.9300, 0.9160),
    "ucr:PickupGestureWiimoteZ": (0.7200, 0.7040),
    "uea:JapaneseVowels": (0.9865, 0.9914),  # Baydogan's copy, 10 iterations
}
#: the issue's target: each set trained within this (seconds)
BUDGET_S = 120.0
SECTION = "## Time series: the 1-D networks on the UCR/UEA sets"


def run(
    dataset: str, model: str, seed: int, epochs: int | None = None, recipe: str = "fast"
) -> dict[str, Any]:
    """One training run with ``recipe`` (``epochs``: its own unless given); the figures of the
    epoch it keeps."""
    import torch

    from convzoo.runtime import resolve_precision
    from convzoo.train.run import resolve_config, train

    # test_every=0: the test split is evaluated once, at the end, with the kept weights
    over = dict(dataset=dataset, model=model, seed=seed, device="cpu", test_every=0, recipe=recipe)
    cfg = resolve_config({**over, **({"epochs": epochs} if epochs else {})})
    assert cfg.val_split == 0, "the benchmark runs the recipe as shipped: the last epoch"
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(cfg, save=False, stdout=io.StringIO())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "epochs": cfg.epochs,
        "recipe": recipe,
        "model_options": cfg.model_options,
        "precision": resolve_precision(cfg.precision, torch.device("cpu")).name,
        "augment": cfg.augment,
        "kept_epoch": result.history.chosen_epoch,
        "train_loss": result.history.records[-1]["loss"],
        "test_acc": result.metrics["test_acc"],  # reported only
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def read_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.mean(values) if values else math.nan


def spread(values: list[float]) -> str:
    return (
        f"{mean(values):.3f} ± {statistics.stdev(values):.3f}"
        if len(values) > 1
        else (f"{mean(values):.3f}" if values else "-")
    )


def summarize(runs: list[dict[str, Any]], sets: list[str]) -> dict[str, dict[str, Any]]:
    """Per set: test accuracy per network, resnet1d's times, the time of the networks run."""
    out: dict[str, dict[str, Any]] = {}
    for ds in sets:
        mine = [r for r in runs if r["dataset"] == ds]
        if not mine:
            continue
        seeds = sorted({r["seed"] for r in mine})
        by_seed = [[r for r in mine if r["seed"] == s] for s in seeds]
        models = {r["model"] for r in mine}  # the networks this benchmark ran on the set
        complete = [group for group in by_seed if len(group) == len(models)]
        res = [r for r in mine if r["model"] == "resnet1d"]
        out[ds] = {
            "seeds": len(seeds),
            "acc": {m: [r["test_acc"] for r in mine if r["model"] == m] for m in MODELS},
            "wall": [r["wall_s"] for r in res],
            "cpu": [r["cpu_s"] for r in res],
            "all_wall": [sum(r["wall_s"] for r in g) for g in complete],
            "load": [r["load_before"] for r in mine] + [r["load_after"] for r in mine],
        }
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The Markdown table (and the univariate means) of :func:`summarize`."""
    head = (
        "| set | published ResNet (iter. 1 / mean) | resnet1d | fcn1d | lenet1d "
        "| resnet1d run: wall s (CPU s / 2) | < 2 min | networks run: wall s |\n"
        "|---|---:|---:|---:|---:|---:|:-:|---:|"
    )
    lines = [head]
    for ds, s in summary.items():
        pub = PUBLISHED.get(ds)
        pub_text = f"{pub[0]:.3f} / {pub[1]:.3f}" if pub else "-"
        wall, cpu = mean(s["wall"]), mean(s["cpu"])
        lines.append(
            f"| {ds} | {pub_text} | {spread(s['acc']['resnet1d'])} | {spread(s['acc']['fcn1d'])} "
            f"| {spread(s['acc']['lenet1d'])} "
            f"| {wall:.0f} ({cpu / 2:.0f}) | {'yes' if wall < BUDGET_S else 'no'} "
            f"| {mean(s['all_wall']):.0f} |"
        )
    uni = [ds for ds in summary if ds in UNIVARIATE]
    if uni:
        nets = {m: mean(mean(summary[ds]["acc"][m]) for ds in uni) for m in MODELS}
        res = nets["resnet1d"]
        first = mean(PUBLISHED[ds][0] for ds in uni)
        avg = mean(PUBLISHED[ds][1] for ds in uni)
        ours = ", ".join(f"{m} {v:.4f}" for m, v in nets.items() if not math.isnan(v))
        lines.append(
            f"\nMean over the {len(uni)} univariate sets: {ours}; "
            f"published ResNet {first:.4f} (first iteration), "
            f"{avg:.4f} (mean of 5). resnet1d - published: {100 * (res - first):+.1f} points "
            f"(first iteration), {100 * (res - avg):+.1f} (mean of 5)."
        )
    loads = [x for s in summary.values() for x in s["load"]]
    if loads:
        lines.append(f"Load average during the runs: {min(loads):.1f}-{max(loads):.1f}.")
    return "\n".join(lines)


def write_section(text: str, path: Path = HERE / "RESULTS.md") -> None:
    """Replace (or append) the section of RESULTS.md this script owns: from its heading to the
    next heading of the same level."""
    doc = path.read_text()
    start = doc.find(SECTION)
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = doc.find("\n## ", start + len(SECTION))
        end = len(doc) if end < 0 else end + 1
        doc = doc[:start] + text.rstrip("\n") + "\n" + ("\n" + doc[end:] if end < len(doc) else "")
    path.write_text(doc)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=UNIVARIATE + MULTIVARIATE)
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=None, help="instead of the recipe's (40)")
    p.add_argument("--recipe", default="fast", help="fast (default) or best")
    p.add_argument("--jsonl", default=str(HERE / "sequences.jsonl"), help="runs, one a line")
    p.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    p.add_argument("--table-only", action="store_true", help="only print (or write) the table")
    args = p.parse_args(argv)
    path = Path(args.jsonl)
    runs = read_runs(path)
    if args.epochs:  # a file of another schedule's runs is not this one's
        runs = [r for r in runs if r["epochs"] == args.epochs]
    runs = [r for r in runs if r.get("recipe", "fast") == args.recipe]
    done = {(r["dataset"], r["model"], r["seed"]) for r in runs}
    if not args.table_only:
        print(f"{'set':<28} {'model':<9} seed {'test acc':>8} {'wall s':>7} load")
        for ds in args.sets:
            for seed in range(args.seeds):
                for model in args.models:
                    if (ds, model, seed) in done:
                        continue
                    r = run(ds, model, seed, args.epochs, args.recipe)
                    with path.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                    runs.append(r)
                    print(
                        f"{ds:<28} {model:<9} {seed:>4} {r['test_acc']:>8.3f} "
                        f"{r['wall_s']:>7.1f} {r['load_before']:.1f}",
                        flush=True,
                    )
    text = table(summarize(runs, args.sets))
    print(text)
    if args.write:
        write_section(f"{SECTION}\n\n{text}\n")


if __name__ == "__main__":
    main()
