"""Data loading on the CPU: our DeviceLoader + batched augmentation against the book's path
(torchvision ``FashionMNIST`` with per-sample transforms in a ``DataLoader`` with 4 workers),
side by side in one run, on the real Fashion-MNIST.

    PYTHONPATH=src python benchmarks/bench_data.py [--batches 50] [--no-rss]

(a) batches of 256 with horizontal flip + RandomCrop(28, padding=4): target >= 10x the book;
(b) batches of 256 resized to 224 px: target at least as fast as the book's Resize(224);
(c) peak RSS of one full training epoch at 224 px through our loader, in a fresh process:
    target <= 2 GB.

Each rate is batches/s over a fixed number of batches after a warm-up (the book's workers are
started and their queues filled first, which if anything flatters the book). The cores are
shared, so each figure is the best of two runs; ours is timed with 2 intra-op threads and
with 1, the book's workers use 1 each (PyTorch's DataLoader sets that).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms as T

from convzoo.data import DeviceLoader, fetch_dataset, load_dataset, parse_augment
from convzoo.data.sources import default_root

BATCH = 256
WORKERS = 4  # the book's load_data_fashion_mnist
# PyTorch warns that 4 workers exceed 2 cores; that is the book's setting, measured as such
warnings.filterwarnings("ignore", message="This DataLoader will create")


def rate(make: callable, warmup: int, batches: int, repeats: int = 2) -> float:
    """Batches per second: the best of ``repeats`` passes, each over ``batches`` batches of a
    fresh iterator after ``warmup`` batches."""
    best = float("inf")
    for _ in range(repeats):
        it = iter(make())
        for _ in range(warmup):
            next(it)
        t = time.perf_counter()
        for _ in range(batches):
            x, _y = next(it)[:2]
        best = min(best, time.perf_counter() - t)
        del it
    assert x.dtype == torch.float32 and x.shape[0] == BATCH
    return batches / best


def book_loader(transform: Iterable) -> DataLoader:
    data = torchvision.datasets.FashionMNIST(
        str(default_root()), train=True, transform=T.Compose(transform), download=False
    )
    return DataLoader(data, BATCH, shuffle=True, num_workers=WORKERS)


def ours_rate(make: callable, warmup: int, batches: int) -> dict[int, float]:
    """Our loader's rate with 2 intra-op threads (the default here) and with 1: on shared
    cores, two threads that wait on each other at every op can lose far more than they gain."""
    out = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        out[threads] = rate(make, warmup, batches)
    torch.set_num_threads(2)
    return out


def report(name: str, ours: dict[int, float], book: float, target: str) -> None:
    print(
        f"{name:<34} ours {ours[2]:8.1f} b/s  book {book:6.1f} b/s  "
        f"ratio {ours[2] / book:6.1f}x  (target {target}); ours with 1 thread "
        f"{ours[1]:.1f} b/s = {ours[1] / book:.1f}x"
    )


def rss_child() -> None:
    """One full epoch at 224 px through DeviceLoader; prints peak RSS (GB) and seconds."""
    torch.set_num_threads(2)
    train = load_dataset("fashion-mnist", "train")
    loader = DeviceLoader(
        train, BATCH, shuffle=True, augment=parse_augment("hflip,crop:4"), image_size=224
    )
    t = time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch.y)
    seconds = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
    print(f"{peak_gb:.3f} {seconds:.1f} {n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--no-rss", action="store_true", help="skip (c), the full epoch")
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        return rss_child()
    torch.set_num_threads(2)
    fetch_dataset("fashion-mnist")  # the files in torchvision's layout, for both paths
    t = time.perf_counter()
    train = load_dataset("fashion-mnist", "train")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}; "
        f"Fashion-MNIST train loaded in {time.perf_counter() - t:.2f} s from {train.source}; "
        f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )

    # (a) flip + padded crop at 28 px
    aug = parse_augment("hflip,crop:4")
    ours = ours_rate(
        lambda: DeviceLoader(train, BATCH, shuffle=True, augment=aug), 5, args.batches * 4
    )
    flip_crop = [T.RandomHorizontalFlip(), T.RandomCrop(28, padding=4), T.ToTensor()]
    book = rate(lambda: book_loader(flip_crop), 2 * WORKERS, args.batches)
    report("(a) hflip + crop(pad 4), 28 px", ours, book, ">= 10x")

    # (b) resized to 224 px
    ours = ours_rate(
        lambda: DeviceLoader(train, BATCH, shuffle=True, image_size=224), 2, args.batches
    )
    book = rate(lambda: book_loader([T.Resize(224), T.ToTensor()]), 2 * WORKERS, args.batches)
    report("(b) resize to 224 px", ours, book, ">= 1x")

    # (c) peak memory of a full epoch at 224 px, in a fresh process
    if not args.no_rss:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child"], capture_output=True, text=True, check=True
        ).stdout.split()
        peak, seconds, n = float(out[0]), float(out[1]), int(out[2])
        print(
            f"(c) full epoch at 224 px (hflip + crop): peak RSS {peak:.2f} GB, "
            f"{n:,} images in {seconds:.0f} s  (target <= 2 GB)"
        )


if __name__ == "__main__":
    main()
