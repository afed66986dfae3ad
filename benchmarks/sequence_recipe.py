"""Why the fast recipe's sequence settings are what they are: one change per row, on validation.

Trains ``resnet1d`` with ``--recipe fast`` (its sequence settings,
``convzoo.train.recipes.FAST_SEQUENCES``) and one change per row on UCR sets, for a few seeds,
and prints the VALIDATION figures of the kept epoch: the loss and the accuracy, averaged over
sets and seeds. Without ``--folds`` each run sets aside a stratified 20% validation split of
the training split (the recipe itself now trains on the whole split) and is judged on it. Each
seed draws another such split, so the seeds average over splits as well as over
initialisations: the shipped training splits are tiny (36-200 series), one split of 7-40
series says little. Rows are compared, and the recipe decided, on those figures alone; the
test accuracy of the same weights is printed for the record, never to choose.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/sequence_recipe.py   # ~1 h, busy
    PYTHONPATH=src python benchmarks/sequence_recipe.py --rows "fast;batch 8" --seeds 1

``--folds K`` judges each row by stratified K-fold cross-validation of the training split
instead: every training series is held out once, from runs that never saw it, so a set of 36
series is judged on 36 rather than on 7. A row keeping the picked epoch carves its own 20%
validation split out of the other K-1 folds to pick it; a row keeping the last epoch trains on
all K-1 folds. The held-out fold plays the part of the test set inside each run, and the test
split itself is never loaded.
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
#: a row's key (not a TrainConfig field) for which epoch it is judged by: "best" (the epoch a
#: 20% validation split picks by its loss, the recipe until the 5-fold rows) or "last"
KEEP = "keep"
#: a row's key for the values a set is loaded with: "znorm" (each series z-normalised) or
#: "stored" (the file's values); absent: the archive's rule (convzoo.data.sequences.ZNORM)
VALUES = "values"
#: a row's key for how varying lengths become one: "pad" (zeros at the end, as loading does)
#: or "resample" (each series stretched to the longest by linear interpolation)
FIT = "fit"
#: a row's key for a batch size that follows the training set's size: "n/10" is the rule of
#: Ismail Fawaz et al. 2019, min(N // 10, 16) for N training series (ArrowHead 3, OSULeaf 16)
BATCH_RULE = "batch_rule"
#: the validation split that picks the "best" epoch (and judges rows without --folds)
VAL_SPLIT = 0.2
#: what every row starts from on top of the recipe: no augmentation, as the recipe has it, so
#: that a row measures the same thing should the recipe's augmentation ever change
BASE: dict[str, Any] = {"augment": ""}
#: row name -> the change against the recipe without augmentation (TrainConfig fields)
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
    "batch 8, keep the last": {"batch_size": 8, KEEP: "last"},
    "batch 8, 80 epochs, keep the last": {"batch_size": 8, "epochs": 80, KEEP: "last"},
    # augmentation on top of the last-epoch rule (measured above only with the picked epoch)
    "window crop 0.9, keep the last": {"augment": "crop:0.9", KEEP: "last"},
    "scale,jitter, keep the last": {"augment": "scale:0.8-1.2,jitter:0.05", KEEP: "last"},
    # the multivariate sets' values (UEA stores them unnormalised) and length rule
    "z-normalised, keep the last": {VALUES: "znorm", KEEP: "last"},
    "stored values, keep the last": {VALUES: "stored", KEEP: "last"},
    "stored values, --normalize, keep the last": {
        VALUES: "stored",
        "normalize": True,
        KEEP: "last",
    },
    "z-normalised, resampled, keep the last": {VALUES: "znorm", FIT: "resample", KEEP: "last"},
    "stored values, --normalize, resampled, keep the last": {
        VALUES: "stored",
        FIT: "resample",
        "normalize": True,
        KEEP: "last",
    },
    # the long sets resampled (area-averaged) to fewer steps: the work of a step is
    # proportional to the length, and OSULeaf (427) and ACSF1 (1,460) miss 2 minutes
    "256 steps, keep the last": {"image_size": 256, KEEP: "last"},
    "512 steps, keep the last": {"image_size": 512, KEEP: "last"},
    # bf16 autocast: a resnet1d training step 1.6x (427 steps) to 2.5x (1,460) faster than fp32
    # on an AMX Xeon (benchmarks/threads_step.py, 2026-12-02); does it cost accuracy?
    "bf16, keep the last": {"precision": "bf16", KEEP: "last"},
    # varying lengths stretched as the UCR 2018 archive's adjusted copies are, rather than
    # zero-padded (PickupGestureWiimoteZ: 29-361 steps, median 141)
    "bf16, resampled, keep the last": {"precision": "bf16", FIT: "resample", KEEP: "last"},
    # twice the steps for the same epochs: ACSF1 and PickupGestureWiimoteZ end 40 epochs at a
    # training loss of 0.5-0.8 (GunPoint 0.05)
    "bf16, batch 8, keep the last": {"precision": "bf16", "batch_size": 8, KEEP: "last"},
    "bf16, batch n/10, keep the last": {"precision": "bf16", BATCH_RULE: "n/10", KEEP: "last"},
    # a higher peak of the one-cycle schedule: ACSF1 ends its 280 steps at a training loss of
    # 0.53-0.57 with the peak at 1e-3
    "bf16, lr 3e-3, keep the last": {"precision": "bf16", "lr": 3e-3, KEEP: "last"},
    "bf16, lr 1e-2, keep the last": {"precision": "bf16", "lr": 1e-2, KEEP: "last"},
    # does ACSF1 (80 training series a fold, 8 a class) want more steps or more variety?
    "bf16, 80 epochs, keep the last": {"precision": "bf16", "epochs": 80, KEEP: "last"},
    "bf16, scale,jitter, keep the last": {
        "precision": "bf16",
        "augment": "scale:0.8-1.2,jitter:0.05",
        KEEP: "last",
    },
    # the other way: lr 1e-2 and 3e-3 held out fewer ACSF1 series than 1e-3; and Keras'
    # glorot_uniform init (Fawaz et al.'s), weights 1.7x PyTorch's default, which makes
    # Adam's steps smaller relative to the weights, as a lower lr would
    "bf16, lr 3e-4, keep the last": {"precision": "bf16", "lr": 3e-4, KEEP: "last"},
    "bf16, xavier init, keep the last": {"precision": "bf16", "init": "xavier", KEEP: "last"},
    # scale,jitter held out 4 more ACSF1 series of 100 (seed 0) but 7 fewer OSULeaf ones of
    # 200 (fp32): which of the two does which?
    "bf16, scale, keep the last": {"precision": "bf16", "augment": "scale:0.8-1.2", KEEP: "last"},
    "bf16, jitter, keep the last": {"precision": "bf16", "augment": "jitter:0.05", KEEP: "last"},
    # label smoothing, last measured with the picked epoch only (0.1: +0.3 points on one split)
    "bf16, scale, label smoothing 0.1, keep the last": {
        "precision": "bf16",
        "augment": "scale:0.8-1.2",
        "label_smoothing": 0.1,
        KEEP: "last",
    },
    # without the last, short batch of an epoch (2-4 series of GunPoint's, ArrowHead's,
    # PickupGestureWiimoteZ's and ACSF1's whole training splits: batch-norm statistics of 2)
    "bf16, scale, drop last, keep the last": {
        "precision": "bf16",
        "augment": "scale:0.8-1.2",
        "drop_last": True,
        KEEP: "last",
    },
    # the recipe as it now ships (scaling) with Keras' glorot init on top
    "bf16, scale, xavier init, keep the last": {
        "precision": "bf16",
        "augment": "scale:0.8-1.2",
        "init": "xavier",
        KEEP: "last",
    },
    # far more steps: ACSF1 ends 40 epochs (280 steps) at a training loss of 0.56, where
    # Fawaz et al. train 1,500 epochs; do 5x the steps hold out more series?
    "bf16, scale, 200 epochs, keep the last": {
        "precision": "bf16",
        "augment": "scale:0.8-1.2",
        "epochs": 200,
        KEEP: "last",
    },
    # --recipe best made cheaper for the long sets (ACSF1 1,460 steps, OSULeaf 427): half the
    # width (3.2x fewer FLOPs), runs of steps folded into channels (lossless, unlike area
    # resampling, which averages ACSF1's 4-step period away), or both
    **{
        f"bf16, scale, 200 epochs{name}, keep the last": {
            "precision": "bf16",
            "augment": "scale:0.8-1.2",
            "epochs": 200,
            "model_options": options,
            KEEP: "last",
        }
        for name, options in [
            (", width 32", {"width": 32}),
            (", fold 2", {"fold": 2}),
            (", fold 4", {"fold": 4}),
            (", width 32, fold 2", {"width": 32, "fold": 2}),
            (", width 32, fold 4", {"width": 32, "fold": 4}),
            (", width 32, fold 3", {"width": 32, "fold": 3}),
            (", width 32, fold 8", {"width": 32, "fold": 8}),
        ]
    },
    "bf16, no weight decay, keep the last": {
        "precision": "bf16",
        "weight_decay": 0.0,
        KEEP: "last",
    },
}


def folds(labels: Any, k: int, seed: int) -> list[Any]:
    """``k`` disjoint index tensors covering ``labels``, each class dealt round-robin in a
    seeded order, so every fold holds the same share of every class (within one series)."""
    import torch

    g = torch.Generator().manual_seed(10_007 * seed + k)
    parts: list[list[int]] = [[] for _ in range(k)]
    start = 0  # each class continues dealing where the last one stopped: even fold sizes
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).flatten()
        for j, i in enumerate(members[torch.randperm(len(members), generator=g)].tolist()):
            parts[(start + j) % k].append(i)
        start += len(members)
    return [torch.tensor(sorted(p), dtype=torch.long) for p in parts]


def training_split(dataset: str, values: str | None = None, fit: str = "pad") -> Any:
    """The training split of ``dataset`` loaded with ``values`` and ``fit`` (see :data:`VALUES`
    and :data:`FIT`)."""
    import torch
    import torch.nn.functional as F

    from convzoo.data import sequences as seq

    normalize = None if values is None else values == "znorm"
    data = seq.load_sequences(dataset, "train", normalize=normalize)
    if fit == "pad":
        return data
    trimmed = seq.trim_missing_end(seq.read_ts(Path(data.source)).series, data.source)
    stretched = [
        F.interpolate(
            seq.series_tensor([x], x.shape[1], normalize=data.znorm),
            size=data.length,
            mode="linear",
            align_corners=True,
        )[0]
        for x in trimmed
    ]
    return seq.SequenceDataset(
        torch.stack(stretched),
        data.labels,
        data.classes,
        name=dataset,
        source=data.source,
        znorm=data.znorm,
    )


def run_folds(dataset: str, change: dict[str, Any], seed: int, k: int) -> dict[str, Any]:
    """The row judged on held-out folds of the training split: pooled accuracy and mean loss
    of the kept weights over the ``k`` runs (each series held out once)."""
    import torch

    from convzoo.train.run import resolve_config, train

    change = dict(change)
    keep = change.pop(KEEP, "best")
    data = training_split(dataset, change.pop(VALUES, None), change.pop(FIT, "pad"))
    if change.pop(BATCH_RULE, None) == "n/10":  # N: the series a fold's run trains on
        change["batch_size"] = max(1, min(len(data) * (k - 1) // k // 10, 16))
    wall, cpu = time.perf_counter(), time.process_time()
    correct, loss, epochs = 0.0, 0.0, []
    for held in folds(data.labels, k, seed):
        rest = torch.ones(len(data), dtype=torch.bool)
        rest[held] = False
        pair = (data.subset(torch.nonzero(rest).flatten()), data.subset(held, split="test"))
        split = VAL_SPLIT if keep == "best" else 0  # "last": all k - 1 folds train
        over = dict(dataset=dataset, model="resnet1d", seed=seed, device="cpu", test_every=0)
        cfg = resolve_config({**over, "val_split": split, **change})
        result = train(cfg, data=pair, save=False, stdout=io.StringIO())
        correct += result.metrics["test_acc"] * len(held)
        loss += result.metrics["test_loss"] * len(held)
        epochs.append(result.history.chosen_epoch)
    return {
        "dataset": dataset,
        "seed": seed,
        "folds": k,
        "val_loss": loss / len(data),  # held-out folds: the validation figures of this row
        "val_acc": correct / len(data),
        "epochs": epochs,
        "test_acc": math.nan,  # never loaded
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "load": os.getloadavg()[0],
    }


def run(dataset: str, change: dict[str, Any], seed: int) -> dict[str, Any]:
    from convzoo.train.run import resolve_config, train

    change = dict(change)
    keep = change.pop(KEEP, "best")
    over = dict(dataset=dataset, model="resnet1d", seed=seed, device="cpu", val_split=VAL_SPLIT)
    cfg = resolve_config({**over, **change})
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


def _key(r: dict[str, Any]) -> tuple[str, str, int]:
    return r["row"], r["dataset"], r["seed"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=SETS)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--rows", default=";".join(ROWS), help="row names separated by ';'")
    p.add_argument("--folds", type=int, default=0, help="judge rows by K-fold cross-validation")
    p.add_argument("--jsonl", default=None, help="append every run here (and skip those done)")
    args = p.parse_args(argv)
    if args.folds == 1 or args.folds < 0:
        p.error(f"--folds must be 0 (one 20% split) or at least 2, got {args.folds}")
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
                key = (name, ds, seed, args.folds)
                old = [r for r in done if (*_key(r), r.get("folds", 0)) == key]
                if old:
                    r = old[0]
                elif args.folds:
                    r = {"row": name, **run_folds(ds, {**BASE, **ROWS[name]}, seed, args.folds)}
                else:
                    r = {"row": name, **run(ds, {**BASE, **ROWS[name]}, seed)}
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
