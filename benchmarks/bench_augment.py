"""Batched per-sample augmentation: ours (convzoo.data.augment) against kornia.augmentation,
which also draws parameters per image, on the CPU.

    PYTHONPATH=src python benchmarks/bench_augment.py [--batches 100] [--threads 2]

Two pipelines on batches of 256: hflip + padded crop on 1 x 28 x 28 (Fashion-MNIST), and
RandomResizedCrop + ColorJitter on 3 x 32 x 32 (CIFAR-10). Kornia is timed with both of its
cropping modes ("slice": a crop per image, "resample": one batched warp) and its faster one is
the reference. Prints batches/s and our speed-up; every pipeline is also checked to give
images of the right shape in [0, 1] that differ across the batch.
"""

from __future__ import annotations

import argparse
import os
import time

import kornia.augmentation as K
import torch
from torch import nn

from convzoo.data.augment import parse_augment

BATCH = 256


def rate(fn, x: torch.Tensor, batches: int, warmup: int = 10, repeats: int = 3) -> float:
    """Batches per second of ``fn(x)``: the best of ``repeats`` runs of ``batches`` calls after
    ``warmup`` calls (the best, because the 2 shared cores only ever slow a run down)."""
    for _ in range(warmup):
        fn(x)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(batches):
            fn(x)
        best = min(best, time.perf_counter() - t)
    return batches / best


def check(y: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert y.shape == shape, (y.shape, shape)
    assert y.min() >= 0 and y.max() <= 1 + 1e-6
    assert not torch.equal(y[0], y[1]) or not torch.equal(y[1], y[2])  # per-image parameters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cases = [
        (
            "hflip + crop(pad 4), 1x28x28",
            (BATCH, 1, 28, 28),
            "hflip,crop:4",
            lambda mode: nn.Sequential(
                K.RandomHorizontalFlip(p=0.5),
                K.RandomCrop((28, 28), padding=4, cropping_mode=mode),
            ),
        ),
        (
            "RandomResizedCrop + ColorJitter(.4,.4,.4,.1), 3x32x32",
            (BATCH, 3, 32, 32),
            "rrc:32,jitter:0.4:0.4:0.4:0.1",
            lambda mode: nn.Sequential(
                K.RandomResizedCrop((32, 32), cropping_mode=mode),
                K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0),
            ),
        ),
    ]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, load {load}"
    )
    print(f"{'pipeline':<52} {'ours b/s':>9} {'kornia b/s':>11} {'ratio':>7}")
    for name, shape, spec, build_kornia in cases:
        x = torch.rand(shape)
        ours = parse_augment(spec)
        g = torch.Generator().manual_seed(0)
        check(ours(x, g), shape)
        ours_rate = rate(lambda x, ours=ours, g=g: ours(x, g), x, args.batches)
        kornia_rates = {}
        for mode in ("slice", "resample"):
            aug = build_kornia(mode)
            with torch.no_grad():
                check(aug(x), shape)
                kornia_rates[mode] = rate(aug, x, args.batches)
        best = max(kornia_rates, key=kornia_rates.get)
        detail = ", ".join(f"{m} {r:.1f}" for m, r in kornia_rates.items())
        print(
            f"{name:<52} {ours_rate:>9.1f} {kornia_rates[best]:>11.1f} "
            f"{ours_rate / kornia_rates[best]:>6.1f}x   (kornia {detail})"
        )


if __name__ == "__main__":
    with torch.no_grad():
        main()
