"""Small synthetic data for fast tests (no files, no network)."""

import torch

from convzoo.data import ImageDataset


def toy_dataset(
    n: int,
    *,
    size: int = 16,
    num_classes: int = 4,
    channels: int = 1,
    seed: int = 0,
    split: str = "train",
    name: str = "toy",
) -> ImageDataset:
    """Each class lights up its own horizontal band of the image, plus noise: learnable in a
    few steps, and unchanged by horizontal flips (the fast recipe's augmentation)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    x = torch.randint(0, 60, (n, channels, size, size), generator=g)
    band = max(1, size // num_classes)
    for c in range(num_classes):
        x[y == c, :, c * band : (c + 1) * band, :] += 150
    return ImageDataset(
        x.clamp(0, 255).to(torch.uint8),
        y,
        [f"class{c}" for c in range(num_classes)],
        name=name,
        split=split,
    )


def toy_pair(n_train: int = 256, n_test: int = 64, **kw):
    return (toy_dataset(n_train, seed=1, **kw), toy_dataset(n_test, seed=2, split="test", **kw))


def write_image_folder(root, n_train: int = 96, n_test: int = 32, **kw):
    """``toy_pair`` as PNG files in ``root/train/<class>/`` and ``root/test/<class>/``."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    for data in toy_pair(n_train, n_test, **kw):
        for i, (img, label) in enumerate(zip(data.images, data.labels)):
            folder = root / data.split / data.classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0].numpy()).save(folder / f"{i:04d}.png")
    return root


def toy_series(
    n: int,
    *,
    length: int = 32,
    num_classes: int = 3,
    channels: int = 1,
    seed: int = 0,
    split: str = "train",
    name: str = "toy-series",
):
    """Time series (N x C x L) where each class has a bump at its own time, plus noise:
    learnable in a few steps by the 1-D models."""
    from convzoo.data import SequenceDataset

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    x = 0.3 * torch.randn(n, channels, length, generator=g)
    width = max(1, length // num_classes)
    for c in range(num_classes):
        x[y == c, :, c * width : (c + 1) * width] += 2.0
    return SequenceDataset(x, y, [f"class{c}" for c in range(num_classes)], name=name, split=split)


def toy_series_pair(n_train: int = 96, n_test: int = 48, **kw):
    return (
        toy_series(n_train, seed=1, **kw),
        toy_series(n_test, seed=2, split="test", **kw),
    )
