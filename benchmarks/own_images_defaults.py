"""The defaults for your own images, decided on validation data of folder-style sets:

(a) mirror flips: the fast recipe (speednet) with and without ``hflip`` on sklearn's digits
    and on Fashion-MNIST, each written as a folder of PNGs and read with ``folder:PATH``
    (no CIFAR-10 or other photo set can be had offline here); the validation accuracy of
    the last epoch (20% of the training split), per seed.
(b) how small a validation split is too small to choose an epoch on: digits' training split
    less 300 held-out images; for each validation size, the held-out accuracy of the epoch the
    validation split chooses against that of the last epoch (the held-out images only judge;
    the test split is never read).

    PYTHONPATH=src python benchmarks/own_images_defaults.py [--seeds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> Path:
    from PIL import Image

    for i, (img, y) in enumerate(zip(images, labels)):
        folder = root / names[int(y)].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    return root


def digits_folder(root: Path) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * 255 / 16).round().astype(np.uint8)  # 0-16 -> 0-255
    return write_folder(root / "digits", images, d.target, [str(k) for k in range(10)])


def fashion_folder(root: Path, n: int) -> Path:
    from convzoo.data import load_dataset

    d = load_dataset("fashion-mnist", "train")
    return write_folder(root / "fashion", d.images[:n, 0].numpy(), d.labels[:n].numpy(), d.classes)


def flips(folder: Path, epochs: int, seeds: int) -> dict:
    import convzoo

    out = {}
    for aug in ("", "hflip"):
        accs = []
        for seed in range(seeds):
            h = convzoo.fit("speednet", f"folder:{folder}", epochs=epochs, augment=aug,
                            val_split=0.2, seed=seed, test_every=0, verbose=False)  # fmt: skip
            accs.append(h.records[-1]["val_acc"])
        out[aug or "none"] = accs
        print(f"  {folder.name} augment {aug or 'none'}: val acc {np.mean(accs):.4f} {accs}")
    return out


def val_sizes(folder: Path, sizes: list[int], epochs: int, seeds: int) -> dict:
    import convzoo
    from convzoo.data import load_dataset
    from convzoo.data.split import split_validation

    pool, held = split_validation(load_dataset(f"folder:{folder}", "train"), 300, seed=99)
    held.split = "test"  # what fit reports per epoch: the judge of the choice
    out = {}
    for k in sizes:
        rows = []
        for seed in range(seeds):
            h = convzoo.fit("speednet", (pool, held), epochs=epochs, augment="", val_split=k,
                            seed=seed, verbose=False)  # fmt: skip
            chosen = h.best("val_acc")
            rows.append((chosen["test_acc"], h.records[-1]["test_acc"], int(chosen["epoch"])))
        gain = float(np.mean([c - last for c, last, _ in rows]))
        out[k] = {"chosen_last_epoch": rows, "mean_gain": gain}
        print(f"  val {k:>4}: held-out acc chosen - last {gain:+.4f}  {rows}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fashion", type=int, default=6000, help="Fashion-MNIST images written")
    p.add_argument("--sizes", default="10,20,50,100,200")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        digits, fashion = digits_folder(Path(tmp)), fashion_folder(Path(tmp), args.fashion)
        print("(a) mirror flips, last epoch's validation accuracy:", flush=True)
        result["flips"] = {
            "digits": flips(digits, 20, args.seeds),
            "fashion": flips(fashion, 10, args.seeds),
        }
        print("(b) choosing an epoch on a validation split of k images (digits):", flush=True)
        sizes = [int(s) for s in args.sizes.split(",")]
        result["val_sizes"] = val_sizes(digits, sizes, 20, args.seeds)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
