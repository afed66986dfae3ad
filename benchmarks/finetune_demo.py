"""Fine-tuning vs training from scratch, on real Fashion-MNIST, in one command.

    PYTHONPATH=src python benchmarks/finetune_demo.py    # 3-5 minutes on 2 cores

1. Pretrain ``speednet`` on Fashion-MNIST classes 0-4 (T-shirt/top, Trouser, Pullover, Dress,
   Coat): all 30,000 training images, 3 epochs of the ``fast`` recipe.
2. For each seed and each ``--shots`` count, draw that many training images of each of
   classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) and train on exactly those images,
   for the same epochs and batch size:
   - fine-tuned from step 1 with ``convzoo.finetune`` (the ``finetune`` recipe, new head), once
     with the chapter's head learning rate x10 (our default) and once with x1;
   - from scratch with the ``fast`` recipe, at each of ``--scratch-lr``; the table keeps the
     rate with the best mean test accuracy, which can only favour training from scratch.
3. Every network is tested once, on all 5,000 test images of classes 5-9. The table gives mean
   ± standard deviation [range] over the seeds and the per-seed gain of fine-tuning.

The two tasks share no class, so what transfers is the features (edges, textures, shapes),
not the labels. Fashion-MNIST comes from ``convzoo.load_dataset`` (the Debian package's copy
when present, ``--data-dir`` otherwise). The pretrained run is kept in
``--out`` and reused by later invocations.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import torch

import convzoo
from convzoo.data import ImageDataset, apply_subset, load_dataset
from convzoo.inference import evaluate_model
from convzoo.io import load_weights
from convzoo.train import resolve_config, train

#: both arms train this long on the few-shot set (10 images of 5 classes: 5 steps per epoch)
EPOCHS = 20
BATCH_SIZE = 10
#: the from-scratch baseline tries these peak learning rates (the fast recipe's is 0.2) and
#: keeps the best on the test set for each seed, which can only favour it
SCRATCH_LRS = [0.02, 0.05, 0.2]


def test_accuracy(model: torch.nn.Module, test: ImageDataset, image_size: int, norm) -> float:
    """Accuracy on ``test`` with the input size and normalization the model trained with."""
    meta = dict(
        image_size=image_size,
        mean=norm[0],
        std=norm[1],
        in_channels=test.in_channels,
        num_classes=test.num_classes,
    )
    return evaluate_model(model, meta, test, device="cpu")["acc"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="convzoo's data folder (default: as train)")
    p.add_argument("--model", default="speednet")
    p.add_argument("--pretrain", default="classes=0-4", help="subset to pretrain on")
    p.add_argument("--target", default="classes=5-9", help="classes to transfer to")
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--shots", type=int, nargs="+", default=[5, 10, 50], help="images per class")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=EPOCHS, help="for both arms")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="for both arms")
    p.add_argument("--freeze", type=int, default=0, help="stages to freeze when fine-tuning")
    p.add_argument(
        "--head-lr-mult",
        type=float,
        nargs="+",
        default=[10.0, 1.0],
        help="fine-tune once per value (10: the chapter's recipe and our default)",
    )
    p.add_argument(
        "--scratch-lr",
        type=float,
        nargs="+",
        default=SCRATCH_LRS,
        help="learning rates tried from scratch; the best per seed is reported",
    )
    p.add_argument("--out", default="runs/finetune-demo", help="where the pretrained run goes")
    args = p.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    quiet = io.StringIO()
    t0 = time.perf_counter()

    full_train = load_dataset("fashion-mnist", "train", root=args.data_dir)
    full_test = load_dataset("fashion-mnist", "test", root=args.data_dir)
    pretrained = Path(args.out) / "pretrain"
    if not (pretrained / "model.safetensors").exists():
        cfg = resolve_config(
            dict(
                model=args.model,
                epochs=args.pretrain_epochs,
                subset=args.pretrain,
                augment="",
                out=str(pretrained),
                dataset=full_train.name,
            ),
            "fast",
        )
        data = (apply_subset(full_train, cfg.subset), apply_subset(full_test, cfg.subset))
        r = train(cfg, data=data, stdout=quiet)
        print(
            f"pretrained {args.model} on {args.pretrain} ({len(data[0]):,} images, "
            f"{cfg.epochs} epochs, fast recipe): test acc {r.metrics['test_acc']:.4f} "
            f"({r.metrics['elapsed_s']:.0f} s) -> {pretrained}",
            flush=True,
        )
    else:
        print(f"using the pretrained run in {pretrained} (delete it to pretrain again)")
    source = load_weights(pretrained / "model.safetensors")[1]

    rows = []
    for shots in args.shots:
        tuned: dict[str, list[float]] = {f"head x{m:g}": [] for m in args.head_lr_mult}
        scratch: dict[float, list[float]] = {lr: [] for lr in args.scratch_lr}
        for seed in args.seeds:
            subset = f"{args.target},shots={shots},seed={seed}"
            train_data = apply_subset(full_train, subset)
            test_data = apply_subset(full_test, subset)
            # the same images, epochs and batch size for every arm; tested once at the end
            common = dict(epochs=args.epochs, batch_size=args.batch_size, seed=seed, augment="")
            for mult, accs in zip(args.head_lr_mult, tuned.values()):
                ft = convzoo.finetune(
                    pretrained,
                    (train_data, None),
                    freeze=args.freeze,
                    head_lr_mult=mult,
                    verbose=False,
                    **common,
                )
                norm = (source["mean"], source["std"])
                accs.append(test_accuracy(ft.model, test_data, source["image_size"], norm))
            for lr, accs in scratch.items():
                cfg = resolve_config(
                    dict(model=args.model, subset=subset, drop_last=False, lr=lr, **common), "fast"
                )
                r = train(cfg, data=(train_data, None), save=False, stdout=quiet)
                accs.append(test_accuracy(r.model, test_data, 28, train_data.stats()))
            print(
                f"{shots:>3} images/class, seed {seed}:  fine-tuned "
                + ", ".join(f"{k} {v[-1]:.4f}" for k, v in tuned.items())
                + "  from scratch "
                + ", ".join(f"lr {lr:g} {v[-1]:.4f}" for lr, v in scratch.items()),
                flush=True,
            )
        best = max(scratch, key=lambda lr: statistics.mean(scratch[lr]))
        rows.append((shots, list(tuned.values()), best, scratch[best]))

    heads = [f"fine-tuned, head lr x{m:g}" for m in args.head_lr_mult]
    print(
        f"\n{args.model} pretrained on Fashion-MNIST {args.pretrain} ({args.pretrain_epochs} "
        f"epochs), then trained on {args.target} from few images per class ({args.epochs} "
        f"epochs, batch {args.batch_size}); test accuracy on all {len(test_data):,} test images "
        f"of {args.target}, mean ± std [min-max] over seeds {', '.join(map(str, args.seeds))}. "
        f"Fine-tuned: the finetune recipe (base lr 0.01, cosine); from scratch: the fast recipe "
        f"at the best (on the test set) of lr {', '.join(f'{x:g}' for x in args.scratch_lr)}; "
        f"gain: fine-tuned (first column) minus from scratch on the same images, per seed."
    )
    print(f"| images per class | {' | '.join(heads)} | from scratch (lr) | gain |")
    print("|---|" + "---|" * (len(heads) + 2))
    for shots, tuned_accs, lr, sc in rows:
        gains = [a - b for a, b in zip(tuned_accs[0], sc)]
        wins = sum(g > 0 for g in gains)
        print(
            f"| {shots} | {' | '.join(_stat(a) for a in tuned_accs)} | {_stat(sc)} ({lr:g}) | "
            f"{statistics.mean(gains):+.3f} ± {_std(gains):.3f} ({wins}/{len(gains)} seeds) |"
        )
    print(
        f"\n{time.perf_counter() - t0:.0f} s in all; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    return 0


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _stat(values: list[float]) -> str:
    mean, std = statistics.mean(values), _std(values)
    return f"{mean:.3f} ± {std:.3f} [{min(values):.3f}-{max(values):.3f}]"


if __name__ == "__main__":
    sys.exit(main())
