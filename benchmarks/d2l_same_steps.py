"""Is ``convzoo train --recipe d2l`` the book's ``train_ch6``, step for step?

Trains a network twice from one seed on the same batches in the same order: once with
convzoo's ``train`` (its loader, trainer and ``--recipe d2l``), once with the book's
``train_ch6`` (``benchmarks/reference_d2l.py``, which draws its own Xavier weights after
``torch.manual_seed(seed)``, as convzoo's run does), fed the batches convzoo's loader made.
It prints the largest difference between the two final weights per tensor (0 everywhere:
bitwise the same run) and both networks' test accuracy, evaluated the book's way.

What this cannot compare is which permutation and which initial weights a seed draws: the
book's ``DataLoader`` shuffles from torch's global generator, convzoo from a generator seeded
per epoch (so a run resumes bitwise), and the two pick different, equally likely, draws.

    PYTHONPATH=src python benchmarks/d2l_same_steps.py --model lenet --epochs 1   # ~30 s
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import torch

from convzoo.data.dataset import LabelledData
from convzoo.train import train
from convzoo.train.run import open_strategy, resolve_config
from convzoo.train.setup import build_setup

HERE = Path(__file__).parent


def same_steps(
    model: str,
    seed: int,
    epochs: int,
    data: tuple[LabelledData, LabelledData] | None = None,
) -> dict[str, Any]:
    """Both runs; per weight tensor the largest absolute difference, the batch sizes trained,
    and each run's test accuracy (``evaluate_accuracy_gpu``). ``data``: default Fashion-MNIST."""
    cfg = resolve_config(
        dict(model=model, seed=seed, epochs=epochs, device="cpu", test_every=0), "d2l"
    )
    sys.path.insert(0, str(HERE))
    import book_nets
    import reference_d2l as ref  # the book's path, beside this file

    ours = train(cfg, data=data, save=False, stdout=io.StringIO()).model
    with open_strategy(cfg) as strategy:  # the same loader again, and the initial weights
        setup = build_setup(cfg, strategy, None, data, None)
    batches = []
    for epoch in range(cfg.epochs):
        setup.train_loader.set_epoch(epoch)
        batches += [(b.x, b.y) for b in setup.train_loader]
    torch.manual_seed(cfg.seed)  # as convzoo's run seeds; train_ch6 draws the Xavier weights
    book = book_nets.build(model, cfg.image_size)
    ref.train_ch6(book, batches, None, 1, cfg.lr, "cpu", evaluate=False, verbose=False)
    # the same parameters in the same order (the book's batch norm keeps no buffers)
    theirs = {n: p.detach() for (n, _), p in zip(ours.named_parameters(), book.parameters())}
    test = [(b.x, b.y) for b in setup.test_loader] if setup.test_loader is not None else []
    return {
        "max_abs_diff": {
            k: (ours.state_dict()[k] - v).abs().max().item() for k, v in theirs.items()
        },
        "moved": {k: not torch.equal(v, setup.model.state_dict()[k]) for k, v in theirs.items()},
        "batch_sizes": [len(y) for _, y in batches],
        "test_acc": {
            "convzoo": ref.evaluate_accuracy_gpu(ours, test) if test else None,
            "book": ref.evaluate_accuracy_gpu(book, test) if test else None,
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args(argv)
    out = same_steps(args.model, args.seed, args.epochs)
    for name, diff in out["max_abs_diff"].items():
        print(f"{name:28s} max |convzoo - book| {diff:.3e}")
    sizes = out["batch_sizes"]
    print(
        f"{len(sizes)} steps (batches of {sizes[0]}, the last of {sizes[-1]}); test acc "
        f"convzoo {out['test_acc']['convzoo']:.4f}, book {out['test_acc']['book']:.4f}"
    )
    same = not any(out["max_abs_diff"].values())
    print("bitwise the same run" if same else "the runs differ")
    return out


if __name__ == "__main__":
    main()
